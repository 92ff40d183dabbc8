"""The capture HTTP server: the Twilio-compatible API of `capture_sms` and the inbox of
`inbox` (captured emails and SMS for people and scripts) on one loopback port."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette

from cobro.devkit.capture_replies import CustomerMailbox
from cobro.devkit.capture_sms import CapturedSms, SmsStore, TwilioCapture
from cobro.devkit.capture_smtp import MailStore
from cobro.devkit.inbox import inbox_routes
from cobro.devkit.loopback import EmbeddedHttpServer
from cobro.templating import TEMPLATES_DIR


def create_capture_app(
    sms_store: SmsStore,
    account_sid: str,
    auth_token: str,
    mail_store: MailStore | None = None,
    auto_deliver: bool = True,
    incoming_url: str | None = None,
    templates_dir: Path | None = TEMPLATES_DIR,
    mailbox: CustomerMailbox | None = None,
) -> tuple[Starlette, TwilioCapture]:
    """The capture HTTP app: Twilio API + inbox UI/JSON (mail included if `mail_store`),
    and the customer's answers to captured mail with `mailbox`; WhatsApp ContentSids are
    looked up in `templates_dir`."""
    twilio = TwilioCapture(
        sms_store,
        account_sid,
        auth_token,
        auto_deliver=auto_deliver,
        incoming_url=incoming_url,
        templates_dir=templates_dir,
    )
    routes = [*twilio.routes(), *inbox_routes(sms_store, mail_store)]
    if mailbox is not None:
        routes.extend(mailbox.routes())
    app = Starlette(routes=routes)
    return app, twilio


class CaptureSmsServer:
    """The capture HTTP server (Twilio API + inbox), running on the current event loop.

    `port=0` picks a free port; `.port` and `.base_url` are the actual ones once started.
    """

    def __init__(
        self,
        storage_dir: Path | SmsStore,
        account_sid: str,
        auth_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        mail_store: MailStore | None = None,
        auto_deliver: bool = True,
        incoming_url: str | None = None,
        templates_dir: Path | None = TEMPLATES_DIR,
        mailbox: CustomerMailbox | None = None,
    ):
        self.store = storage_dir if isinstance(storage_dir, SmsStore) else SmsStore(storage_dir)
        self.host = host
        self.requested_port = port
        self.app, self.twilio = create_capture_app(
            self.store,
            account_sid,
            auth_token,
            mail_store,
            auto_deliver,
            incoming_url,
            templates_dir,
            mailbox,
        )
        self._http = EmbeddedHttpServer(self.app, host, port, "capture HTTP")
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def set_status(self, sid: str, status: str, error_code: int | None = None) -> CapturedSms:
        """Force a message's status (e.g. `failed`, 30003) and fire its StatusCallback."""
        return await self.twilio.set_status(sid, status, error_code)

    async def start(self) -> None:
        if self._http.running:
            return
        self.store.root.mkdir(parents=True, exist_ok=True)
        self.port = await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    async def __aenter__(self) -> CaptureSmsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
