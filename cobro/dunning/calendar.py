"""Business days, holidays and send windows (pure, cached per country).

* `BusinessCalendar(country, subdivision)`: weekends and public holidays of one country (the
  `holidays` library), with its subdivision's own holidays when one is given (`DE`, `BY`),
  with a sorted table of business days so that `add_business_days` is a bisection rather
  than a day-by-day walk. `get_calendar(country)` returns a shared, cached instance.
* `SendWindow`: the local hours (`[start, end)`) and weekdays a message may be sent.
* `next_send_instant(t, tz, window, calendar)`: the first instant >= `t` inside the window, on
  an allowed weekday that is not a holiday (in the customer's time zone, DST-aware).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_YEARS_AROUND = 3  # years loaded on each side of the first date asked for
_MAX_SEARCH_DAYS = 400  # a window with no allowed day within a year is a configuration error


class Calendar(Protocol):
    """What the planner needs from a calendar (the bench plugs in a naive one)."""

    def is_holiday(self, d: date) -> bool: ...

    def add_business_days(self, d: date, n: int) -> date: ...


class BusinessCalendar:
    """Weekends + public holidays of `country`, with a cached table of business days."""

    def __init__(self, country: str, subdivision: str | None = None) -> None:
        self.country = country.upper()
        self.subdivision = _known_subdivision(self.country, subdivision)
        probe = holidays.country_holidays(self.country, years=2000)
        self.weekend: frozenset[int] = frozenset(getattr(probe, "weekend", {5, 6}))
        self._lock = threading.Lock()
        # (first ordinal, last ordinal, holiday ordinals, sorted business-day ordinals)
        self._table: tuple[int, int, frozenset[int], list[int]] = (1, 0, frozenset(), [])

    def _ensure(self, lo: int, hi: int) -> tuple[int, int, frozenset[int], list[int]]:
        table = self._table
        if table[0] <= lo and hi <= table[1]:
            return table
        with self._lock:
            first, last = self._table[0], self._table[1]
            lo_year = date.fromordinal(min(lo, first) if first <= last else lo).year
            hi_year = date.fromordinal(max(hi, last) if first <= last else hi).year
            lo_year, hi_year = lo_year - _YEARS_AROUND, hi_year + _YEARS_AROUND
            lo_year, hi_year = max(lo_year, 1900), min(hi_year, 2199)
            hols = holidays.country_holidays(
                self.country, subdiv=self.subdivision, years=range(lo_year, hi_year + 1)
            )
            hol_ords = frozenset(d.toordinal() for d in hols)
            start, end = date(lo_year, 1, 1).toordinal(), date(hi_year, 12, 31).toordinal()
            weekend = self.weekend
            bdays = [
                o
                for o in range(start, end + 1)
                if o not in hol_ords and (o - 1) % 7 not in weekend  # ordinal 1 is a Monday
            ]
            self._table = (start, end, hol_ords, bdays)
            return self._table

    def is_holiday(self, d: date) -> bool:
        o = d.toordinal()
        return o in self._ensure(o, o)[2]

    def is_business_day(self, d: date) -> bool:
        return d.weekday() not in self.weekend and not self.is_holiday(d)

    def add_business_days(self, d: date, n: int) -> date:
        """`n` business days after `d` (before it if `n < 0`); `d` itself when `n == 0`.

        `d` need not be a business day: +1 from a Saturday is the next business day, -1 the
        previous one.
        """
        if n == 0:
            return d
        o = d.toordinal()
        margin = abs(n) * 2 + 30
        _, _, _, bdays = self._ensure(o - margin, o + margin)
        i = bisect_right(bdays, o) + n - 1 if n > 0 else bisect_left(bdays, o) + n
        if not 0 <= i < len(bdays):  # pragma: no cover - margin always suffices
            raise ValueError(f"{d} {n:+d} business days is out of the supported range")
        return date.fromordinal(bdays[i])


@lru_cache(maxsize=256)
def get_calendar(country: str, subdivision: str | None = None) -> BusinessCalendar:
    """The shared calendar of `country` (ISO 3166-1 alpha-2), of its `subdivision` (ISO
    3166-2 code without the country, e.g. `BY`) when the `holidays` library knows it."""
    return BusinessCalendar(country, subdivision)


def _known_subdivision(country: str, subdivision: str | None) -> str | None:
    """`subdivision` if the `holidays` library knows it for `country`, else None (the
    country's national holidays)."""
    if not subdivision:
        return None
    code = subdivision.strip().upper().removeprefix(f"{country}-")
    try:
        known = holidays.list_supported_countries().get(country, [])
    except Exception:  # pragma: no cover - very old `holidays`
        return None
    return code if code in known else None


@lru_cache(maxsize=1)
def supported_countries() -> frozenset[str]:
    return frozenset(holidays.list_supported_countries())


@lru_cache(maxsize=512)
def get_zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def add_days(d: date, n: int, calendar: Calendar | None, business_days: bool) -> date:
    if business_days and calendar is not None:
        return calendar.add_business_days(d, n)
    return d + timedelta(days=n)


# ---------------------------------------------------------------------------- send windows


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local sending hours `[start, end)` on the allowed weekdays (0 = Monday)."""

    start: time
    end: time
    days: frozenset[int] = frozenset(range(5))

    @classmethod
    def parse(cls, spec: str, days: tuple[str, ...] | None = None) -> SendWindow:
        start, end = parse_window(spec)
        if days is None:
            return cls(start, end)
        return cls(start, end, frozenset(WEEKDAYS.index(d) for d in days))

    def contains(self, t: datetime, tz: ZoneInfo, calendar: Calendar) -> bool:
        """Whether aware `t` is inside the window, on an allowed, non-holiday day."""
        local = t.astimezone(tz)
        return (
            self.start <= local.time() < self.end
            and local.weekday() in self.days
            and not calendar.is_holiday(local.date())
        )


def parse_window(spec: str) -> tuple[time, time]:
    """`"09:00-18:00"` -> (09:00, 18:00); the window must not cross midnight."""
    m = _WINDOW_RE.match(spec) if isinstance(spec, str) else None
    if not m:
        raise ValueError(f"invalid send window {spec!r}: expected HH:MM-HH:MM, e.g. 09:00-18:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h2 == 24 and m2 == 0:
        h2, m2 = 23, 59
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
        raise ValueError(f"invalid send window {spec!r}: hours 00-23, minutes 00-59")
    start, end = time(h1, m1), time(h2, m2)
    if start >= end:
        raise ValueError(
            f"invalid send window {spec!r}: the start must be before the end "
            "(windows crossing midnight are not supported)"
        )
    return start, end


def _allowed_day(d: date, window: SendWindow, calendar: Calendar) -> bool:
    return d.weekday() in window.days and not calendar.is_holiday(d)


def window_opening(d: date, tz: ZoneInfo, window: SendWindow, calendar: Calendar) -> datetime:
    """Window opening (UTC) of the first allowed day on or after local date `d`."""
    for _ in range(_MAX_SEARCH_DAYS):
        if _allowed_day(d, window, calendar):
            return _local_to_utc(d, window.start, tz)
        d += timedelta(days=1)
    raise ValueError("the send window has no allowed day within a year")


def opening_on(d: date, tz: ZoneInfo, window: SendWindow) -> datetime:
    """The window's opening time (UTC) on local date `d`, whatever day it is (a declaration
    to the insurer keeps its calendar-day deadline: no send days, no holidays)."""
    return _local_to_utc(d, window.start, tz)


def next_send_instant(
    t: datetime, tz: ZoneInfo, window: SendWindow, calendar: Calendar
) -> datetime:
    """The first instant >= aware `t` inside the send window (UTC)."""
    local = t.astimezone(tz)
    d = local.date()
    if _allowed_day(d, window, calendar):
        lt = local.time()
        if lt < window.start:
            return _local_to_utc(d, window.start, tz)
        if lt < window.end:
            return t.astimezone(UTC)
    return window_opening(d + timedelta(days=1), tz, window, calendar)


def _local_to_utc(d: date, t: time, tz: ZoneInfo) -> datetime:
    # A local time in a DST gap (e.g. 02:30 on the spring-forward day) is read with the offset
    # before the change, i.e. it lands one hour later on the wall clock; an ambiguous one (fall
    # back) is its first occurrence.
    return datetime.combine(d, t, tzinfo=tz).astimezone(UTC)


def local_start_of_day(d: date, tz: ZoneInfo) -> datetime:
    return _local_to_utc(d, time(0, 0), tz)
