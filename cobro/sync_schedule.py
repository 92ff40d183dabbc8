"""The Temporal Schedule that runs DailySync every day: `cobro schedule apply` creates it or
updates it in place (time and time zone from settings, overlap SKIP, a catch-up window),
`pause` / `unpause` with a note, `show`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from cobro.settings import Settings

SCHEDULE_ID = "cobro-daily-sync"
# The workflow is named by its type (workflows/daily_sync.py): `cobro` never imports workflows.
WORKFLOW_TYPE = "DailySync"


def parse_time(value: str) -> tuple[int, int]:
    try:
        hour, minute = (int(part) for part in value.split(":"))
    except ValueError:
        raise ValueError(f"sync_time {value!r} is not HH:MM") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"sync_time {value!r} is not a time of day")
    return hour, minute


def build_schedule(settings: Settings, paused: bool = False, note: str = "") -> Schedule:
    hour, minute = parse_time(settings.sync_time)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_TYPE,
            {},  # DailySyncInput() with every default
            id="daily-sync",  # the schedule appends the scheduled time
            task_queue=settings.temporal_sync_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(hour)],
                    minute=[ScheduleRange(minute)],
                    second=[ScheduleRange(0)],
                    comment=f"daily insurer sync at {settings.sync_time}",
                )
            ],
            time_zone_name=settings.sync_timezone,
        ),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=timedelta(hours=settings.sync_catchup_window_hours),
        ),
        state=ScheduleState(paused=paused, note=note or "managed by `cobro schedule apply`"),
    )


@dataclass(frozen=True)
class ScheduleInfo:
    schedule_id: str
    created: bool
    paused: bool
    note: str
    spec: str
    next_runs: list[str]


async def apply_schedule(client: Client, settings: Settings) -> ScheduleInfo:
    """Create the schedule, or update its spec/action/policy in place (its paused state and
    note are kept)."""
    created = True
    try:
        await client.create_schedule(SCHEDULE_ID, build_schedule(settings))
    except ScheduleAlreadyRunningError:
        created = False
        handle = client.get_schedule_handle(SCHEDULE_ID)

        def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            state = current.description.schedule.state
            return ScheduleUpdate(build_schedule(settings, state.paused, state.note or ""))

        await handle.update(update)
    info = await describe_schedule(client)
    return ScheduleInfo(
        info.schedule_id, created, info.paused, info.note, info.spec, info.next_runs
    )


async def describe_schedule(client: Client) -> ScheduleInfo:
    try:
        desc = await client.get_schedule_handle(SCHEDULE_ID).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise LookupError("no daily sync schedule: run `cobro schedule apply`") from None
        raise
    sched = desc.schedule
    cal = sched.spec.calendars[0] if sched.spec.calendars else None
    spec = (
        f"daily at {cal.hour[0].start:02d}:{cal.minute[0].start:02d} {sched.spec.time_zone_name}"
        if cal
        else str(sched.spec)
    )
    return ScheduleInfo(
        SCHEDULE_ID,
        False,
        sched.state.paused,
        sched.state.note or "",
        spec,
        [t.isoformat() for t in desc.info.next_action_times[:3]],
    )


async def set_paused(client: Client, paused: bool, note: str) -> ScheduleInfo:
    handle = client.get_schedule_handle(SCHEDULE_ID)
    await describe_schedule(client)  # a clear error if it does not exist
    if paused:
        await handle.pause(note=note or "paused with `cobro schedule pause`")
    else:
        await handle.unpause(note=note or "unpaused with `cobro schedule unpause`")
    return await describe_schedule(client)
