"""`cobro sync now [--full] [--wait] [--json]` and `cobro schedule apply|pause|unpause|show`:
the insurer sync on demand (with a progress bar of pages and records) and its daily Schedule."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import typer

from cobro.cli.common import TemporalUnreachable, describe, fail, run_with_temporal

sync_app = typer.Typer(help="The insurer sync (covers, limits, grades).", no_args_is_help=True)
schedule_app = typer.Typer(
    help="The daily insurer sync Schedule in Temporal.", no_args_is_help=True
)


@sync_app.command("now")
def sync_now(
    full: bool = typer.Option(False, "--full", help="fetch every cover, not only the changes"),
    wait: bool = typer.Option(False, "--wait", help="wait for the end, with a progress bar"),
    no_classify: bool = typer.Option(
        False, "--no-classify", help="do not classify the portfolio afterwards"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Run one insurer sync now (DailySync workflow), then classify the portfolio."""
    from cobro.settings import get_settings
    from workflows.daily_sync import DailySync, DailySyncInput

    settings = get_settings()
    workflow_id = f"daily-sync-now-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    ui = (
        f"http://{settings.temporal_address.rpartition(':')[0]}:{settings.temporal_ui_port}"
        f"/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"
    )

    async def go(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        handle = await client.start_workflow(
            DailySync.run,
            DailySyncInput(full=full, classify=not no_classify),
            id=workflow_id,
            task_queue=settings.temporal_sync_queue,
        )
        if not wait:
            return {"workflow_id": workflow_id, "url": ui, "status": "started"}
        return await _follow(handle, quiet=as_json)

    try:
        result = run_with_temporal(go)
    except TemporalUnreachable as exc:
        fail(str(exc))
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        fail(f"sync {workflow_id} failed: {getattr(cause, 'message', None) or exc}")
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    elif not wait:
        typer.echo(f"started {workflow_id}: {ui}")
    else:
        s = result.get("summary", {})
        typer.echo(
            f"sync {s.get('status')} ({s.get('kind')}): {s.get('fetched', 0)} fetched, "
            f"{s.get('created', 0)} created, {s.get('updated', 0)} updated, "
            f"{s.get('unchanged', 0)} unchanged, {s.get('quarantined', 0)} quarantined, "
            f"{s.get('unmatched', 0)} unmatched, {s.get('expired', 0)} expired "
            f"in {s.get('duration_s')} s; {result.get('classified', 0)} customers classified"
        )


async def _follow(handle, quiet: bool) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from dataclasses import asdict

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from workflows.daily_sync import DailySync

    result_task = asyncio.ensure_future(handle.result())
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pages · {task.fields[records]} records · {task.fields[status]}"),
        disable=quiet,
        transient=False,
    ) as bar:
        task = bar.add_task("insurer sync", total=None, records=0, status="starting")
        while not result_task.done():
            try:
                p = await handle.query(DailySync.progress)
                bar.update(
                    task,
                    completed=p.pages_done,
                    total=p.total_pages or None,
                    records=p.counts.get("fetched", 0),
                    status=p.status,
                )
            except Exception:  # the query may race the start or the end
                pass
            await asyncio.wait({result_task}, timeout=0.5)
        final = result_task.result()
        bar.update(
            task,
            completed=final.pages_done,
            total=final.total_pages or 1,
            status=final.status,
            records=final.counts.get("fetched", 0),
        )
    return asdict(final)


def _print_schedule(info: Any, as_json: bool, verb: str) -> None:
    from dataclasses import asdict

    if as_json:
        typer.echo(json.dumps(asdict(info), indent=2))
        return
    state = "paused" if info.paused else "active"
    typer.echo(f"{verb} schedule {info.schedule_id}: {info.spec}, {state} ({info.note})")
    for t in info.next_runs:
        typer.echo(f"  next run: {t}")


@schedule_app.command("apply")
def schedule_apply(as_json: bool = typer.Option(False, "--json")) -> None:
    """Create or update the daily sync Schedule (COBRO_SYNC_TIME in COBRO_SYNC_TIMEZONE)."""
    from cobro.settings import get_settings
    from cobro.sync_schedule import apply_schedule, parse_time

    settings = get_settings()
    try:
        parse_time(settings.sync_time)
    except ValueError as exc:
        fail(str(exc))

    try:
        info = run_with_temporal(lambda client: apply_schedule(client, settings))
    except Exception as exc:
        fail(describe(exc))
    _print_schedule(info, as_json, "created" if info.created else "updated")


def _pause(paused: bool, note: str, as_json: bool) -> None:
    from cobro.sync_schedule import set_paused

    try:
        info = run_with_temporal(lambda client: set_paused(client, paused, note))
    except Exception as exc:
        fail(describe(exc))
    _print_schedule(info, as_json, "paused" if paused else "unpaused")


@schedule_app.command("pause")
def schedule_pause(
    note: str = typer.Option("", "--note", help="why (shown in the Temporal UI)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Pause the daily sync."""
    _pause(True, note, as_json)


@schedule_app.command("unpause")
def schedule_unpause(
    note: str = typer.Option("", "--note"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """Resume the daily sync."""
    _pause(False, note, as_json)


@schedule_app.command("show")
def schedule_show(as_json: bool = typer.Option(False, "--json")) -> None:
    """The daily sync Schedule: spec, state, next runs."""
    from cobro.sync_schedule import describe_schedule

    try:
        info = run_with_temporal(describe_schedule)
    except Exception as exc:
        fail(describe(exc))
    _print_schedule(info, as_json, "")


def register(app: typer.Typer) -> None:
    app.add_typer(sync_app, name="sync")
    app.add_typer(schedule_app, name="schedule")
