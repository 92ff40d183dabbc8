"""`cobro dev` (the whole embedded stack) and `cobro worker` (the Temporal worker)."""

from __future__ import annotations

import asyncio
import logging

import typer
from rich.console import Console
from rich.table import Table

from cobro.cli.common import TemporalUnreachable, describe, fail
from cobro.i18n import gettext as _
from cobro.observability.logs import configure_logging
from cobro.shutdown import stop_on_signals

console = Console(highlight=False)


def dev(
    demo: bool = typer.Option(False, "--demo", help="load the deterministic demo portfolio"),
) -> None:
    """Start the embedded stack under ./var/: Temporal dev server + UI, worker, capture
    SMTP/SMS servers and the dashboard. Ctrl-C stops everything."""
    from cobro.devkit.devstack import StackError, running_stack
    from cobro.settings import get_settings

    _configure_logging()
    settings = get_settings()
    _check_secrets(settings)

    async def main() -> None:
        stop = stop_on_signals()
        async with running_stack(settings, demo=demo) as urls:
            table = Table(title=_("Cobro is running (Ctrl-C to stop)"), show_header=False)
            for label, url in urls.lines():
                table.add_row(label, url)
            console.print(table)
            console.print(_("var dir: %(path)s") % {"path": settings.var_dir.resolve()})
            await stop.wait()
            console.print(_("stopping..."))
        console.print(_("stopped."))

    try:
        asyncio.run(main())
    except StackError as exc:
        fail(str(exc))


def worker() -> None:
    """Run the Temporal worker against COBRO_TEMPORAL_ADDRESS until SIGINT/SIGTERM."""
    from cobro.settings import get_settings
    from worker import run_worker

    _configure_logging()
    settings = get_settings()
    _check_secrets(settings)

    async def main() -> None:
        await run_worker(settings, stop_on_signals())

    try:
        asyncio.run(main())
    except (RuntimeError, TemporalUnreachable) as exc:  # e.g. refused by the frontend
        fail(f"worker cannot run: {describe(exc)}")


def serve(
    host: str = typer.Option(None, "--host", help="default COBRO_WEB_HOST (127.0.0.1)"),
    port: int = typer.Option(None, "--port", help="default COBRO_WEB_PORT (8000)"),
) -> None:
    """Serve the dashboard and the JSON API (OpenAPI at /api/openapi.json) until Ctrl-C.
    Create a login first: `cobro users add NAME --role admin`."""
    from cobro.db import upgrade
    from cobro.settings import get_settings
    from cobro.web.app import serve_web

    _configure_logging()
    settings = get_settings()
    updates = {k: v for k, v in (("web_host", host), ("web_port", port)) if v is not None}
    settings = settings.model_copy(update=updates).follow_ports()  # the public URL follows
    _check_secrets(settings)

    async def main() -> None:
        stop = stop_on_signals()
        console.print(
            f"Cobro dashboard on http://{settings.web_host}:{settings.web_port} (Ctrl-C to stop)"
        )
        await serve_web(settings, stop)

    try:
        upgrade(settings.resolved_database_url)
        asyncio.run(main())
    except OSError as exc:
        fail(f"cannot serve on {settings.web_host}:{settings.web_port}: {exc}")


def _check_secrets(settings) -> None:  # type: ignore[no-untyped-def]
    from cobro.settings import InsecureSettings, check_secrets

    try:
        check_secrets(settings)
    except InsecureSettings as exc:
        fail(str(exc))


def _configure_logging() -> None:
    from cobro.settings import get_settings

    configure_logging(get_settings().log_format)
    logging.getLogger("temporalio").setLevel(logging.WARNING)
    for noisy in ("httpx", "alembic", "twilio", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def register(app: typer.Typer) -> None:
    app.command("dev")(dev)
    app.command("worker")(worker)
    app.command("serve")(serve)
