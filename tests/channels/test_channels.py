"""Email and SMS senders against the real capture servers; SMS segment arithmetic."""

from __future__ import annotations

import hashlib
import logging
import socket
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from pydantic import SecretStr

from cobro.channels.email import (
    EmailError,
    PermanentEmailError,
    SmtpConfig,
    TemporaryEmailError,
    build_email,
    message_id_for,
    send_email,
    wire_bytes,
)
from cobro.channels.sms import (
    InvalidPhoneNumberError,
    PermanentSmsError,
    SmsError,
    TemporarySmsError,
    TwilioConfig,
    fetch_sms,
    fetch_sms_async,
    make_client,
    normalize_e164,
    send_sms,
    send_sms_async,
    sms_segments,
)
from cobro.devkit.capture import CaptureServers
from cobro.devkit.capture_smtp import CaptureSmtpServer
from cobro.settings import Settings
from tests.helpers.capture import CAPTURE_ACCOUNT_SID, CAPTURE_AUTH_TOKEN, CAPTURE_MAIL_FROM


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- SMS segments (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),  # 2 x 153
        ("a" * 307, ("GSM-7", 3)),
        ("Relance : facture n°42 échue, merci de régler.", ("UCS-2", 1)),  # "°" is not GSM
        ("Relance : facture échue, merci de régler. @£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ", ("GSM-7", 1)),
        ("{" * 80, ("GSM-7", 1)),  # extension characters count double: 160 septets
        ("{" * 81, ("GSM-7", 2)),  # 162 septets
        ("€" * 80, ("GSM-7", 1)),
        ("a" * 159 + "€", ("GSM-7", 2)),  # 161 septets
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),  # the escape pair is never split
        ("ж" * 70, ("UCS-2", 1)),
        ("ж" * 71, ("UCS-2", 2)),
        ("ж" * 134, ("UCS-2", 2)),  # 2 x 67
        ("ж" * 135, ("UCS-2", 3)),
        ("a" * 69 + "ж", ("UCS-2", 1)),  # one non-GSM character switches everything
        ("a" * 70 + "ж", ("UCS-2", 2)),
        ("😀" * 35, ("UCS-2", 1)),  # 70 UTF-16 code units
        ("😀" * 36, ("UCS-2", 2)),
        ("ж" * 66 + "😀" + "ж" * 66, ("UCS-2", 3)),  # the surrogate pair is never split
    ],
)
def test_sms_segments(text: str, expected: tuple[str, int]) -> None:
    assert sms_segments(text) == expected


def test_normalize_e164() -> None:
    assert normalize_e164("+33612345678") == "+33612345678"
    assert normalize_e164(" +33 6 12 34 56 78 ") == "+33612345678"
    for bad in ("0612345678", "+1202555012", "+33", "not a number", ""):
        with pytest.raises(InvalidPhoneNumberError) as error:
            normalize_e164(bad)
        assert repr(bad) in str(error.value)
        assert error.value.permanent and error.value.number == bad


# -- SMS through the real twilio client ---------------------------------------------------


async def test_send_sms_reaches_the_capture_server(
    capture_servers: CaptureServers, twilio_config: TwilioConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cobro.channels.sms")
    body = "Rappel : votre facture n°42 est échue depuis 5 jours. " * 2
    sid = await send_sms_async(
        to="+33 6 12 34 56 78", body=body, config=twilio_config, idempotency_key="inv-42:due"
    )
    stored = capture_servers.sms.get(sid)
    assert stored.message["to"] == "+33612345678"
    assert stored.message["from"] == twilio_config.sms_from
    assert stored.message["body"] == body
    assert stored.message["num_segments"] == "2"
    assert "encoding=UCS-2 segments=2" in caplog.text and "key=inv-42:due" in caplog.text
    assert CAPTURE_AUTH_TOKEN not in caplog.text
    status = await fetch_sms_async(sid, twilio_config)
    assert status.sid == sid and status.to == "+33612345678" and status.num_segments == 2
    assert status.status in {"queued", "sent", "delivered"}


async def test_send_sms_with_callback_and_service(
    capture_servers: CaptureServers, twilio_config: TwilioConfig
) -> None:
    sid = await send_sms_async(
        to="+4915112345678",
        body="hi",
        config=twilio_config,
        messaging_service_sid="MG" + "1" * 32,
        status_callback="http://127.0.0.1:9/unused",
    )
    stored = capture_servers.sms.get(sid)
    assert stored.message["from"] is None and stored.message["status"] == "accepted"
    assert stored.status_callback == "http://127.0.0.1:9/unused"


async def test_invalid_number_is_rejected_before_sending(
    capture_servers: CaptureServers, twilio_config: TwilioConfig
) -> None:
    with pytest.raises(InvalidPhoneNumberError, match=r"'\+1202555012' is not a valid E\.164"):
        await send_sms_async(to="+1202555012", body="x", config=twilio_config)
    with pytest.raises(PermanentSmsError, match="body is empty"):
        await send_sms_async(to="+33612345678", body="", config=twilio_config)
    assert capture_servers.sms.list() == []


async def test_wrong_token_is_a_permanent_error(capture_servers: CaptureServers) -> None:
    config = TwilioConfig(
        account_sid=CAPTURE_ACCOUNT_SID,
        auth_token=SecretStr("not-the-token"),
        sms_from="+15005550006",
        base_url=capture_servers.base_url,
    )
    with pytest.raises(PermanentSmsError) as error:
        await send_sms_async(to="+33612345678", body="x", config=config)
    assert (error.value.code, error.value.status) == (20003, 401)
    assert "not-the-token" not in str(error.value)


@pytest.mark.parametrize(
    ("to", "error_class", "code"),
    [
        ("+15005550009", PermanentSmsError, 21614),
        ("+15005550001", PermanentSmsError, 21211),
        ("+15005550004", PermanentSmsError, 21610),
        ("+15005550500", TemporarySmsError, 20500),
        ("+15005550429", TemporarySmsError, 20429),
    ],
)
async def test_provider_errors_are_classified(
    twilio_config: TwilioConfig, to: str, error_class: type[SmsError], code: int
) -> None:
    with pytest.raises(SmsError) as error:
        await send_sms_async(to=to, body="x", config=twilio_config)
    assert type(error.value) is error_class and error.value.code == code


async def test_sms_connection_refused_is_temporary() -> None:
    config = TwilioConfig(
        account_sid=CAPTURE_ACCOUNT_SID,
        auth_token=SecretStr(CAPTURE_AUTH_TOKEN),
        sms_from="+15005550006",
        base_url=f"http://127.0.0.1:{_closed_port()}",
        timeout=5,
    )
    with pytest.raises(TemporarySmsError, match="ConnectionError"):
        await send_sms_async(to="+33612345678", body="x", config=config)
    with pytest.raises(TemporarySmsError):
        await fetch_sms_async("SM" + "0" * 32, config)


async def test_fetch_unknown_sid_is_permanent(twilio_config: TwilioConfig) -> None:
    with pytest.raises(PermanentSmsError) as error:
        await fetch_sms_async("SM" + "0" * 32, twilio_config)
    assert error.value.code == 20404


def test_client_points_at_base_url_and_config_from_settings() -> None:
    settings = Settings(
        twilio_account_sid="AC" + "2" * 32,
        twilio_auth_token=SecretStr("s3cr3t-t0ken"),
        twilio_base_url="http://127.0.0.1:18026/",
        sms_from="+15005550006",
    )
    config = TwilioConfig.from_settings(settings)
    assert config.base_url == "http://127.0.0.1:18026/"
    assert "s3cr3t-t0ken" not in repr(config)
    client = make_client(config)
    assert client.api.base_url == "http://127.0.0.1:18026"
    real = make_client(
        TwilioConfig.from_settings(settings.model_copy(update={"twilio_base_url": ""}))
    )
    assert real.api.base_url == "https://api.twilio.com"
    assert callable(send_sms) and callable(fetch_sms)


# -- email through aiosmtplib -----------------------------------------------------------


def test_message_id_is_derived_from_the_idempotency_key() -> None:
    expected = hashlib.sha256(b"inv-42:pre_due").hexdigest()[:32]
    assert message_id_for("inv-42:pre_due") == f"<{expected}@cobro>"
    assert message_id_for("inv-42:pre_due") == message_id_for("inv-42:pre_due")
    assert message_id_for("inv-42:due") != message_id_for("inv-42:pre_due")


async def test_send_email_stores_text_html_and_headers(
    capture_servers: CaptureServers, smtp_config: SmtpConfig
) -> None:
    message_id = await send_email(
        to="Comptabilité <ap@customer.example>",
        subject="Facture 42 : échéance dans 5 jours",
        text="Bonjour,\nla facture 42 (1 234,56 €) arrive à échéance.",
        html="<p>Bonjour,</p><p>la facture <b>42</b> arrive à échéance.</p>",
        idempotency_key="inv-42:pre_due",
        unsubscribe=["mailto:unsubscribe@cobro.localhost", "https://cobro.localhost/u/abc"],
        config=smtp_config,
    )
    assert message_id == message_id_for("inv-42:pre_due")
    [summary] = capture_servers.mail.find(message_id=message_id)
    assert summary.envelope_from == "collections@cobro.localhost"
    assert summary.envelope_to == ("ap@customer.example",)
    assert summary.subject == "Facture 42 : échéance dans 5 jours"
    mail = capture_servers.mail.get(summary.id)
    assert mail.header("From") == CAPTURE_MAIL_FROM
    assert mail.header("Content-Type").startswith("multipart/alternative")
    assert mail.text is not None and "1 234,56 €" in mail.text
    assert mail.html is not None and "<b>42</b>" in mail.html
    assert mail.header("List-Unsubscribe") == (
        "<mailto:unsubscribe@cobro.localhost>, <https://cobro.localhost/u/abc>"
    )
    assert mail.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert mail.header("Date")


async def test_retried_send_is_recognisable_and_survives_restart(tmp_path: Path) -> None:
    kwargs = {"account_sid": CAPTURE_ACCOUNT_SID, "auth_token": CAPTURE_AUTH_TOKEN}
    async with CaptureServers(tmp_path / "capture", **kwargs) as first:
        config = SmtpConfig(port=first.smtp_port)
        sent = await send_email(
            to="ap@customer.example", subject="s", text="t", idempotency_key="k", config=config
        )
    async with CaptureServers(tmp_path / "capture", **kwargs) as second:
        assert [m.message_id for m in second.mail.list()] == [sent]
        mail = second.mail.get(second.mail.list()[0].id)
        assert mail.html is None and mail.text == "t\n"
        assert mail.header("List-Unsubscribe") == (
            "<mailto:collections@cobro.localhost?subject=unsubscribe>"
        )
        assert mail.header("List-Unsubscribe-Post") is None
        again = await send_email(
            to="ap@customer.example",
            subject="s",
            text="t",
            idempotency_key="k",
            config=SmtpConfig(port=second.smtp_port),
        )
        assert again == sent
        assert len(second.mail.find(message_id=sent)) == 2


async def test_email_connection_refused_is_temporary() -> None:
    config = SmtpConfig(port=_closed_port(), timeout=5)
    with pytest.raises(TemporaryEmailError) as error:
        await send_email(
            to="a@example.com", subject="s", text="t", idempotency_key="k", config=config
        )
    assert not error.value.permanent


@pytest.mark.parametrize(
    ("to", "error_class", "code"),
    [
        ("reject-550@customer.example", PermanentEmailError, 550),
        ("reject-553@customer.example", PermanentEmailError, 553),
        ("reject-451@customer.example", TemporaryEmailError, 451),
    ],
)
async def test_refused_recipients_are_classified(
    capture_servers: CaptureServers,
    smtp_config: SmtpConfig,
    to: str,
    error_class: type[EmailError],
    code: int,
) -> None:
    with pytest.raises(EmailError) as error:
        await send_email(to=to, subject="s", text="t", idempotency_key="k", config=smtp_config)
    assert type(error.value) is error_class and error.value.code == code
    assert to in str(error.value)
    assert capture_servers.mail.list() == []


async def test_partial_refusal_still_sends(
    capture_servers: CaptureServers, smtp_config: SmtpConfig, caplog: pytest.LogCaptureFixture
) -> None:
    message_id = await send_email(
        to=["ap@customer.example", "reject-550@customer.example"],
        subject="s",
        text="t",
        idempotency_key="k2",
        config=smtp_config,
    )
    [summary] = capture_servers.mail.find(message_id=message_id)
    assert summary.envelope_to == ("ap@customer.example",)
    assert "recipient 2 of 2 refused: 550" in caplog.text  # the log names no address
    ours = [r.getMessage() for r in caplog.records if r.name == "cobro.channels.email"]
    assert ours and not any("reject-550@" in m for m in ours)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": "not-an-address"},
        {"to": "a@b"},
        {"to": "a@example.com\r\nBcc: victim@example.com"},
        {"subject": "hi\r\nBcc: victim@example.com"},
        {"idempotency_key": ""},
    ],
)
async def test_bad_input_is_permanent_without_connecting(kwargs: dict) -> None:
    args = {"to": "a@example.com", "subject": "s", "text": "t", "idempotency_key": "k", **kwargs}
    # nothing listens on this port: a connection attempt would be a temporary error
    with pytest.raises(PermanentEmailError):
        await send_email(**args, config=SmtpConfig(port=_closed_port()))


async def test_smtp_auth_never_over_a_plain_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The capture server offers AUTH without TLS: no password is sent to it (AUTH over
    TLS, a wrong password and the logs: tests/channels/test_smtp_tls.py)."""
    caplog.set_level(logging.DEBUG)
    async with CaptureSmtpServer(tmp_path / "mail", auth=("cobro", "pa55-w0rd")) as server:
        good = SmtpConfig(port=server.port, username="cobro", password=SecretStr("pa55-w0rd"))
        with pytest.raises(PermanentEmailError) as error:
            await send_email(
                to="a@example.com", subject="s", text="t", idempotency_key="k", config=good
            )
        assert "AUTH refused over a plain connection" in str(error.value)
        assert server.store.list() == []
        assert "pa55-w0rd" not in str(error.value) and "pa55-w0rd" not in repr(good)
    assert "pa55-w0rd" not in caplog.text


def test_smtp_config_from_settings() -> None:
    settings = Settings(
        smtp_host="smtp.example.com",
        smtp_port=587,
        smtp_username="u",
        smtp_password=SecretStr("p"),
        smtp_starttls=True,
        mail_from="X <x@example.com>",
    )
    config = SmtpConfig.from_settings(settings)
    assert (config.host, config.port, config.username, config.starttls, config.use_tls) == (
        "smtp.example.com",
        587,
        "u",
        True,
        False,
    )
    assert config.password is not None and config.password.get_secret_value() == "p"
    assert config.mail_from == "X <x@example.com>"


def test_build_email_is_multipart_alternative() -> None:
    message = build_email(
        to="a@example.com",
        subject="s",
        text="t",
        html="<p>h</p>",
        idempotency_key="k",
        mail_from="Cobro <c@example.com>",
    )
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.get_payload()] == ["text/plain", "text/html"]
    assert message["Message-ID"] == message_id_for("k")


def test_the_wire_bytes_read_back_as_written() -> None:
    """Non-ASCII subject, display name, body and custom header: 7-bit on the wire (RFC 2047
    headers, quoted-printable bodies), the same text once parsed by a mail client."""
    text = "Madame, Monsieur,\n\nla facture n° F-1 (1 234,56 €) reste impayée.\n" + "x" * 200
    message = build_email(
        to="Núñez Ferretería <a@example.com>",
        subject="Rappel : facture échue — " + "très " * 30,
        text=text,
        html="<p>Impayée</p>",
        idempotency_key="k",
        mail_from="Société Générale Encaissements <c@example.com>",
        headers={"X-Cobro-Note": "réf. 42"},
    )
    data = wire_bytes(message)
    assert data.isascii() and b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998  # RFC 5322 2.1.1
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["Subject"] == "Rappel : facture échue — " + "très " * 30
    assert parsed["To"].addresses[0].display_name == "Núñez Ferretería"
    assert parsed["From"].addresses[0].addr_spec == "c@example.com"
    assert parsed["X-Cobro-Note"] == "réf. 42"

    def body(kind: str) -> str:
        return parsed.get_body((kind,)).get_content().replace("\r\n", "\n")

    assert body("plain") == text + "\n"
    assert body("html") == "<p>Impayée</p>\n"
    assert parsed["Message-ID"] == message_id_for("k")


@pytest.mark.parametrize(
    "field", [{"subject": "a\nBcc: x@example.com"}, {"headers": {"X-A": "1\r\n2"}}]
)
def test_a_line_break_in_a_header_is_refused(field: dict) -> None:
    args = {
        "to": "a@example.com",
        "subject": "s",
        "text": "t",
        "idempotency_key": "k",
        "mail_from": "c@example.com",
    } | field
    with pytest.raises(PermanentEmailError, match="line break"):
        build_email(**args)
