"""SMTP transport security against real aiosmtpd servers with a `trustme` test CA:
STARTTLS is used whenever the relay offers it (no setting needed), AUTH goes only over TLS,
and a relay that offers no TLS gets no password: the send fails, in one line, before AUTH."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from cobro.channels.email import PermanentEmailError, SmtpConfig, send_email
from tests.helpers import free_port


class Recorder:
    def __init__(self) -> None:
        self.messages: list[bool] = []  # for each message: did it arrive over TLS?
        self.logins: list[tuple[str, bool]] = []  # (username, over TLS)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(session.ssl is not None)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        self.logins.append((auth_data.login.decode(), session.ssl is not None))
        # handled=False: aiosmtpd answers a failure itself (535), as a real relay does
        return AuthResult(success=auth_data.password == b"s3cret-password", handled=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _server(recorder: Recorder, tls: ssl.SSLContext | None) -> Iterator[int]:
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        authenticator=recorder.authenticate,
        auth_require_tls=False,  # a careless relay: it would take a password in clear
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def starttls_relay(ca: trustme.CA) -> Iterator[tuple[Recorder, int]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    recorder = Recorder()
    for port in _server(recorder, context):
        yield recorder, port


@pytest.fixture
def plain_relay() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    for port in _server(recorder, None):
        yield recorder, port


def _config(port: int, ca_file: str | None = None, **kw: object) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, ca_file=ca_file, timeout=10, **kw)  # type: ignore[arg-type]


async def _send(config: SmtpConfig, key: str = "k1") -> str:
    return await send_email(
        to="ap@acme.example",
        subject="Invoice",
        text="Please pay",
        idempotency_key=key,
        config=config,
    )


async def test_starttls_is_used_whenever_offered(starttls_relay, ca_file: str) -> None:  # type: ignore[no-untyped-def]
    recorder, port = starttls_relay
    await _send(_config(port, ca_file))  # smtp_starttls not set: still TLS
    assert recorder.messages == [True]


async def test_auth_goes_over_tls_only(starttls_relay, ca_file: str, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    recorder, port = starttls_relay
    config = _config(port, ca_file, username="cobro", password=SecretStr("s3cret-password"))
    await _send(config)
    assert recorder.logins == [("cobro", True)] and recorder.messages == [True]
    assert "s3cret" not in caplog.text


async def test_no_password_to_a_relay_without_tls(plain_relay) -> None:  # type: ignore[no-untyped-def]
    recorder, port = plain_relay
    config = _config(port, username="cobro", password=SecretStr("s3cret-password"))
    with pytest.raises(PermanentEmailError) as refused:
        await _send(config)
    message = str(refused.value)
    assert "AUTH refused over a plain connection" in message and "\n" not in message
    assert "s3cret" not in message
    assert recorder.logins == [] and recorder.messages == [], "no AUTH, nothing sent"
    await _send(_config(port))  # without credentials a plain relay still works (capture)
    assert recorder.messages == [False]


async def test_a_certificate_from_another_ca_is_refused(starttls_relay) -> None:  # type: ignore[no-untyped-def]
    recorder, port = starttls_relay
    with pytest.raises(PermanentEmailError, match="TLS certificate not trusted"):
        await _send(_config(port))  # the system's roots do not know the test CA
    assert recorder.messages == []


async def test_a_wrong_password_over_starttls_is_refused_in_one_line(
    starttls_relay, ca_file: str
) -> None:  # type: ignore[no-untyped-def]
    """A relay's 535 is permanent (no retry loop with a wrong password) and names the
    settings to fix; the password is never in the message."""
    recorder, port = starttls_relay
    config = _config(port, ca_file, username="cobro", password=SecretStr("wrong-password"))
    with pytest.raises(PermanentEmailError) as refused:
        await _send(config)
    message = str(refused.value)
    assert "535" in message and "COBRO_SMTP_PASSWORD" in message and "\n" not in message
    assert "wrong-password" not in message
    assert recorder.logins and all(tls for _, tls in recorder.logins), "AUTH over TLS only"
    assert recorder.messages == [], "nothing sent"
