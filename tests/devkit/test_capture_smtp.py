"""The capture SMTP server: real aiosmtplib clients, real files, real restarts."""

from __future__ import annotations

import socket
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from cobro.devkit.capture import CaptureServers
from cobro.devkit.capture_smtp import CaptureSmtpServer, MailNotFound, MailStore


def _message(subject: str = "Invoice 42 is due", to: str = "ap@customer.example") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Collections <collections@cobro.localhost>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<m1@test>"
    msg.set_content("Plain text: please pay 1 234,56 € by Friday.")
    msg.add_alternative("<p>HTML: please pay <b>1 234,56 €</b></p>", subtype="html")
    return msg


async def test_port_zero_picks_a_free_port_and_stores_text_and_html(tmp_path: Path) -> None:
    async with CaptureSmtpServer(tmp_path / "mail") as server:
        assert server.port and server.port > 0
        await aiosmtplib.send(
            _message(), hostname="127.0.0.1", port=server.port, start_tls=False, timeout=10
        )
        [summary] = server.store.list()
        assert summary.envelope_from == "collections@cobro.localhost"
        assert summary.envelope_to == ("ap@customer.example",)
        assert summary.from_ == "Collections <collections@cobro.localhost>"
        assert summary.to == ("ap@customer.example",)
        assert summary.subject == "Invoice 42 is due"
        assert summary.message_id == "<m1@test>"
        assert summary.date is None  # the test message has no Date header
        mail = server.store.get(summary.id)
        assert mail.text is not None and "1 234,56 €" in mail.text
        assert mail.html is not None and "<b>1 234,56 €</b>" in mail.html
        assert mail.header("subject") == "Invoice 42 is due"
        assert b"Subject: Invoice 42 is due" in mail.raw
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert files == [f"{summary.id}.eml", f"{summary.id}.json"], "no temp files left"


async def test_messages_survive_a_restart_and_list_newest_first(tmp_path: Path) -> None:
    async with CaptureSmtpServer(tmp_path / "mail") as first:
        await aiosmtplib.send(_message("first"), hostname="127.0.0.1", port=first.port)
    async with CaptureSmtpServer(tmp_path / "mail") as second:
        assert [m.subject for m in second.store.list()] == ["first"]
        await aiosmtplib.send(_message("second"), hostname="127.0.0.1", port=second.port)
        assert [m.subject for m in second.store.list()] == ["second", "first"]
    # a reader needs no server at all
    assert [m.subject for m in MailStore(tmp_path / "mail").list()] == ["second", "first"]
    assert len(MailStore(tmp_path / "mail").find(message_id="<m1@test>")) == 2
    assert MailStore(tmp_path / "mail").find(to="AP@customer.example", message_id="<nope>") == []


async def test_fixed_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=rf"capture SMTP: cannot listen on 127.0.0.1:{port}"):
            await CaptureSmtpServer(tmp_path / "mail", port=port).start()


async def test_auth_is_off_by_default_and_enforced_when_configured(tmp_path: Path) -> None:
    async with CaptureSmtpServer(tmp_path / "mail", auth=("cobro", "s3cret")) as server:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await aiosmtplib.send(_message(), hostname="127.0.0.1", port=server.port)
        assert refused.value.code == 530  # authentication required
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await aiosmtplib.send(
                _message(),
                hostname="127.0.0.1",
                port=server.port,
                username="cobro",
                password="wrong",
            )
        await aiosmtplib.send(
            _message(), hostname="127.0.0.1", port=server.port, username="cobro", password="s3cret"
        )
        assert len(server.store.list()) == 1


async def test_reject_recipients_inject_smtp_failures(tmp_path: Path) -> None:
    async with CaptureSmtpServer(tmp_path / "mail") as server:
        for code in (550, 451):
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await aiosmtplib.send(
                    _message(to=f"reject-{code}@customer.example"),
                    hostname="127.0.0.1",
                    port=server.port,
                )
            assert [r.code for r in refused.value.recipients] == [code]
        assert server.store.list() == []


def test_reader_refuses_unknown_and_path_like_ids(tmp_path: Path) -> None:
    store = MailStore(tmp_path / "mail")
    for bad in ("../../etc/passwd", "20250101T000000000000Z-deadbeef", ""):
        with pytest.raises(MailNotFound):
            store.get(bad)
    assert store.list() == []


async def test_inbox_lists_and_escapes_captured_mail(capture_servers: CaptureServers) -> None:
    evil = "<script>alert('subject')</script>"
    msg = EmailMessage()
    msg["From"] = "Mallory <m@evil.example>"
    msg["To"] = "ap@customer.example"
    msg["Subject"] = evil
    msg.set_content("text <script>alert('text')</script>")
    msg.add_alternative(
        "<html><body><script>alert('html')</script><p>hi</p></body></html>", subtype="html"
    )
    await aiosmtplib.send(msg, hostname="127.0.0.1", port=capture_servers.smtp_port)
    [summary] = capture_servers.mail.list()
    async with httpx.AsyncClient(base_url=capture_servers.base_url, timeout=10) as http:
        index = await http.get("/")
        assert index.status_code == 200
        assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in index.text
        page = await http.get(f"/mail/{summary.id}")
        assert page.status_code == 200
        assert "<script" not in page.text.lower()
        assert '<iframe sandbox=""' in page.text and "srcdoc=" in page.text
        assert "&lt;script&gt;alert(&#39;html&#39;)" in page.text  # HTML part only as srcdoc
        assert "text &lt;script&gt;alert(&#39;text&#39;)" in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"]
        listing = (await http.get("/api/mail")).json()
        assert [m["subject"] for m in listing] == [evil]
        detail = (await http.get(f"/api/mail/{summary.id}")).json()
        assert detail["from"] == "Mallory <m@evil.example>"
        assert "alert('html')" in detail["html"] and "alert('text')" in detail["text"]
        assert detail["raw"].startswith("From: Mallory")
        raw = await http.get(f"/mail/{summary.id}/raw")
        assert raw.headers["content-type"].startswith("text/plain")
        assert (await http.get("/mail/nope")).status_code == 404
        assert (await http.get("/api/mail/nope")).status_code == 404
