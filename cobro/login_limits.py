"""Failed dashboard log-ins, limited per user name and per client address.

Every attempt is counted *before* its password is checked (so parallel attempts cannot
slip past the limit), and forgiven when it succeeds. A name or an address past its free
attempts must wait a delay that doubles with every failure; an attempt made during the
delay is refused without any argon2 check, and counts. A name that reaches `USER_LOCK`
failures is locked until an admin runs `cobro users unlock NAME`; an address is never
locked (a whole office behind one NAT would be), its delays only grow to `ADDRESS_MAX_S`.
Names are counted whether or not such a user exists: a lockout tells nothing about which
names do. Counts older than `FORGET_AFTER` (and not locked) start again from zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from cobro.db import transaction
from cobro.models import LoginThrottle
from cobro.types import utcnow

USER_FREE = 5  # failed attempts of a name before delays start
USER_LOCK = 10  # failed attempts of a name that lock it (admin unlock)
USER_MAX_S = 60
ADDRESS_FREE = 20  # failed attempts from one address before delays start
ADDRESS_MAX_S = 300
FORGET_AFTER = timedelta(hours=1)
KEY_LENGTH = 255


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is refused before its password is checked."""

    reason: Literal["locked", "wait"]
    retry_after_s: int  # 0 when locked: only an admin lifts it


def delay_s(failures: int, free: int, most: int) -> int:
    """Seconds to wait after the last failure, once `failures` are counted: none while
    within the free attempts, then 1, 2, 4, ... up to `most`."""
    if failures < free:
        return 0
    return min(2 ** min(failures - free, 30), most)


def _refusal(row: LoginThrottle, now: datetime) -> Refusal | None:
    if row.locked_at is not None:
        return Refusal("locked", 0)
    free, most = (USER_FREE, USER_MAX_S) if row.kind == "user" else (ADDRESS_FREE, ADDRESS_MAX_S)
    wait = delay_s(row.failures, free, most)
    left = (row.last_failure_at + timedelta(seconds=wait) - now).total_seconds()
    return Refusal("wait", max(1, int(left + 0.999))) if left > 0 else None


def _count(row: LoginThrottle, now: datetime) -> None:
    row.failures += 1
    row.last_failure_at = now
    if row.kind == "user" and row.failures >= USER_LOCK and row.locked_at is None:
        row.locked_at = now


def begin_attempt(
    engine: Engine | None, username: str, address: str, now: datetime | None = None
) -> Refusal | None:
    """Count a log-in attempt of `username` from `address`; a Refusal when it must not
    even be checked (the name is locked, or the name or the address must still wait)."""
    now = now or utcnow()
    keys = [("address", address[:KEY_LENGTH]), ("user", username[:KEY_LENGTH])]  # lock order
    with transaction(engine) as s:
        dialect = postgresql if s.bind.dialect.name == "postgresql" else sqlite
        s.execute(
            dialect.insert(LoginThrottle)
            .values([{"kind": k, "key": v, "failures": 0, "last_failure_at": now} for k, v in keys])
            .on_conflict_do_nothing()
        )
        rows = s.scalars(
            select(LoginThrottle)
            .where(
                (LoginThrottle.kind == "address") & (LoginThrottle.key == keys[0][1])
                | (LoginThrottle.kind == "user") & (LoginThrottle.key == keys[1][1])
            )
            .order_by(LoginThrottle.kind)
            .with_for_update()
        ).all()
        for row in rows:
            if row.locked_at is None and now - row.last_failure_at > FORGET_AFTER:
                row.failures = 0
        refusals = [r for r in (_refusal(row, now) for row in rows) if r is not None]
        # a lockout says more than a delay; of two delays, the longer
        refusal = min(
            refusals, key=lambda r: (r.reason != "locked", -r.retry_after_s), default=None
        )
        for row in rows:
            _count(row, now)
        return refusal


def attempt_succeeded(
    engine: Engine | None, username: str, address: str, now: datetime | None = None
) -> None:
    """The password was right: the name starts again from zero, the address gets back the
    attempt counted for it; stale counts of everyone are dropped."""
    now = now or utcnow()
    with transaction(engine) as s:
        s.execute(
            delete(LoginThrottle).where(
                LoginThrottle.kind == "user",
                LoginThrottle.key == username[:KEY_LENGTH],
                LoginThrottle.locked_at.is_(None),
            )
        )
        row = s.get(LoginThrottle, ("address", address[:KEY_LENGTH]), with_for_update=True)
        if row is not None and row.failures > 0:
            row.failures -= 1
        s.execute(
            delete(LoginThrottle).where(
                LoginThrottle.locked_at.is_(None),
                LoginThrottle.last_failure_at < now - FORGET_AFTER,
            )
        )


def unlock(engine: Engine | None, username: str) -> bool:
    """Lift the lockout (and any delay) of a user name; False when it was not locked."""
    key = username[:KEY_LENGTH]
    with transaction(engine) as s:
        row = s.get(LoginThrottle, ("user", key), with_for_update=True)
        if row is None:
            return False
        s.delete(row)
        return row.locked_at is not None


def locked_names(engine: Engine | None) -> set[str]:
    with transaction(engine) as s:
        return set(
            s.scalars(
                select(LoginThrottle.key).where(
                    LoginThrottle.kind == "user", LoginThrottle.locked_at.is_not(None)
                )
            )
        )
