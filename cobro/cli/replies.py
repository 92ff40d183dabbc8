"""`cobro replies serve|ingest|deliverable`: customers' email replies and bounces."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cobro.cli.common import fail, run_async
from cobro.i18n import gettext as _

replies_app = typer.Typer(help="Customers' email replies and bounces (the inbound SMTP server).")


def _engine():  # type: ignore[no-untyped-def]
    from cobro.db import default_engine, upgrade
    from cobro.settings import get_settings

    upgrade(get_settings().resolved_database_url)
    return default_engine()


@replies_app.command("serve")
def serve(
    host: str = typer.Option(None, "--host", help="default COBRO_INBOUND_SMTP_HOST (127.0.0.1)"),
    port: int = typer.Option(None, "--port", help="default COBRO_INBOUND_SMTP_PORT (8028)"),
) -> None:
    """Receive replies and bounces for COBRO_REPLY_DOMAIN over SMTP until Ctrl-C (run it
    behind the MX of the reply subdomain)."""
    import asyncio

    from cobro.observability.logs import configure_logging
    from cobro.replies.inbound_smtp import serve_inbound
    from cobro.settings import get_settings
    from cobro.shutdown import stop_on_signals

    configure_logging()
    settings = get_settings()
    updates = {
        k: v for k, v in (("inbound_smtp_host", host), ("inbound_smtp_port", port)) if v is not None
    }
    settings = settings.model_copy(update=updates)
    if not settings.reply_domain:
        fail(_("COBRO_REPLY_DOMAIN is empty: there is no reply domain to receive mail for"))
    engine = _engine()

    async def main() -> None:
        where = f"smtp://{settings.inbound_smtp_host}:{settings.inbound_smtp_port}"
        typer.echo(
            _("replies for @%(domain)s on %(url)s (Ctrl-C to stop)")
            % {"domain": settings.reply_domain, "url": where}
        )
        await serve_inbound(settings, stop_on_signals(), engine)

    try:
        asyncio.run(main())
    except OSError as exc:
        fail(
            _("cannot serve on %(host)s:%(port)s: %(error)s")
            % {"host": settings.inbound_smtp_host, "port": settings.inbound_smtp_port, "error": exc}
        )


@replies_app.command("ingest")
def ingest(
    file: Path = typer.Argument(..., help="one message as received (.eml)"),
    to: list[str] = typer.Option([], "--to", help="the envelope recipient(s), if known"),
    sender: str | None = typer.Option(
        None, "--from", help="the envelope sender (empty for a bounce)"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Record one message by hand, as the inbound server would."""
    from cobro.replies.incoming_email import receive_email
    from cobro.settings import get_settings

    try:
        raw = file.read_bytes()
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
    engine = _engine()
    settings = get_settings()
    done = run_async(lambda: receive_email(engine, settings, raw, sender, to))
    if as_json:
        out = {
            "outcome": done.outcome,
            "kind": done.kind,
            "message_id": done.message_id,
            "customers": list(done.accounts),
            "paused_until": done.paused_until.isoformat() if done.paused_until else None,
            "bounced": list(done.bounced),
            "unsignalled": done.unsignalled,
        }
        typer.echo(json.dumps(out))
        return
    who = ", ".join(done.accounts) or _("no customer")
    line = f"{file}: {done.outcome} ({who})"
    if done.paused_until:
        line += _(", reminders paused until %(day)s") % {"day": done.paused_until}
    if done.bounced:
        line += _(", undeliverable: %(addresses)s") % {"addresses": ", ".join(done.bounced)}
    typer.echo(line)
    for account, why in done.unsignalled.items():
        typer.echo(
            _("%(account)s: recorded, the workflow was not told (%(why)s)")
            % {"account": account, "why": why},
            err=True,
        )


@replies_app.command("deliverable")
def deliverable(address: str = typer.Argument(..., help="an address marked undeliverable")) -> None:
    """Allow email to an address again (the customer fixed its mailbox)."""
    from sqlalchemy import delete

    from cobro.db import transaction
    from cobro.models import UndeliverableAddress

    with transaction(_engine()) as s:
        gone = s.execute(
            delete(UndeliverableAddress).where(
                UndeliverableAddress.address == address.strip().lower()
            )
        ).rowcount
    if not gone:
        fail(_("%(address)s is not marked undeliverable") % {"address": address})
    typer.echo(_("%(address)s: email allowed again") % {"address": address})


def register(app: typer.Typer) -> None:
    app.add_typer(replies_app, name="replies")
