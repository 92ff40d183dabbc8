"""`CaptureServers`: the capture SMTP server and the capture HTTP server (Twilio API +
inbox) started together in this process, on the current event loop.

    async with CaptureServers(storage_dir=var / "capture", smtp_port=0, http_port=0) as cap:
        cap.smtp_port, cap.http_port, cap.base_url   # actual ports once started
        cap.mail.list(), cap.sms.list()              # reader API over what was captured

Emails are stored under `<storage_dir>/mail/`, SMS under `<storage_dir>/sms/`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cobro.devkit.capture_http import CaptureSmsServer
from cobro.devkit.capture_replies import CustomerMailbox
from cobro.devkit.capture_sms import CapturedSms, SmsStore
from cobro.devkit.capture_smtp import CaptureSmtpServer, MailStore
from cobro.templating import TEMPLATES_DIR


class CaptureServers:
    """Both capture servers; port 0 means "pick a free port".

    `account_sid`/`auth_token` are the credentials the Twilio API accepts (default: the
    `twilio_account_sid`/`twilio_auth_token` settings). `smtp_auth` is an optional
    `(username, password)` the SMTP server then requires. `auto_deliver` moves accepted
    SMS to `sent` then `delivered` (see `cobro.devkit.capture_sms` for failure injection).
    `incoming_url`: where a customer's SMS to us is POSTed (`customer_sends`), signed as
    Twilio signs it. `templates_dir`: where WhatsApp ContentSids are looked up to show a
    template message as text (default the shipped templates tree). `inbound_smtp`: (host,
    port) of the inbound SMTP server the customer's answers to captured emails go to
    (`customer_replies`, `POST /_capture/mail/{id}/reply`).
    """

    def __init__(
        self,
        storage_dir: Path,
        smtp_port: int = 0,
        http_port: int = 0,
        host: str = "127.0.0.1",
        account_sid: str | None = None,
        auth_token: str | None = None,
        smtp_auth: tuple[str, str] | None = None,
        auto_deliver: bool = True,
        incoming_url: str | None = None,
        templates_dir: Path | None = None,
        inbound_smtp: tuple[str, int] | None = None,
    ):
        if account_sid is None or auth_token is None:
            from cobro.settings import get_settings

            settings = get_settings()
            account_sid = account_sid or settings.twilio_account_sid
            auth_token = auth_token or settings.twilio_auth_token.get_secret_value()
        self.storage_dir = Path(storage_dir)
        self.host = host
        self.account_sid = account_sid
        self.mail = MailStore(self.storage_dir / "mail")
        self.sms = SmsStore(self.storage_dir / "sms")
        self.mailbox = CustomerMailbox(self.mail, inbound_smtp)
        self.smtp = CaptureSmtpServer(self.mail, host=host, port=smtp_port, auth=smtp_auth)
        self.http = CaptureSmsServer(
            self.sms,
            account_sid=account_sid,
            auth_token=auth_token,
            host=host,
            port=http_port,
            mail_store=self.mail,
            auto_deliver=auto_deliver,
            incoming_url=incoming_url,
            templates_dir=templates_dir or TEMPLATES_DIR,
            mailbox=self.mailbox,
        )

    @property
    def smtp_port(self) -> int:
        if self.smtp.port is None:
            raise RuntimeError("capture servers not started")
        return self.smtp.port

    @property
    def http_port(self) -> int:
        if self.http.port is None:
            raise RuntimeError("capture servers not started")
        return self.http.port

    @property
    def base_url(self) -> str:
        """The inbox and the Twilio API base URL (`twilio_base_url`)."""
        return f"http://{self.host}:{self.http_port}"

    async def set_sms_status(
        self, sid: str, status: str, error_code: int | None = None
    ) -> CapturedSms:
        """Failure injection: force an SMS status (fires its StatusCallback)."""
        return await self.http.set_status(sid, status, error_code)

    async def customer_sends(self, sender: str, body: str) -> tuple[str, int]:
        """A customer's SMS to our number (e.g. "STOP"): its sid and the webhook's status."""
        return await self.http.twilio.receive(sender, body)

    async def customer_replies(
        self, mail_id: str, kind: str = "human", text: str | None = None
    ) -> tuple[int, str]:
        """The customer's side answers a captured email (`human`, `auto` or `bounce`): the
        inbound SMTP server's (code, message)."""
        return await self.mailbox.answer(mail_id, kind, text)

    async def start(self) -> None:
        await self.smtp.start()
        try:
            await self.http.start()
        except BaseException:
            await self.smtp.stop()
            raise

    async def stop(self) -> None:
        try:
            await self.http.stop()
        finally:
            with contextlib.suppress(Exception):
                await self.smtp.stop()

    async def __aenter__(self) -> CaptureServers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
