"""Business days, holidays and send windows (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cobro.dunning.calendar import (
    BusinessCalendar,
    SendWindow,
    get_calendar,
    get_zone,
    next_send_instant,
    parse_window,
    window_opening,
)

FR = get_calendar("FR")
PARIS = get_zone("Europe/Paris")
NEW_YORK = get_zone("America/New_York")
WINDOW = SendWindow.parse("09:00-18:00")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_business_days_skip_bastille_day_and_weekend() -> None:
    # Friday 11 July 2025 + 1 business day: Sat, Sun, Monday 14 July (holiday) -> Tuesday 15.
    assert FR.add_business_days(date(2025, 7, 11), 1) == date(2025, 7, 15)
    assert FR.add_business_days(date(2025, 7, 15), -1) == date(2025, 7, 11)
    assert FR.add_business_days(date(2025, 7, 10), 7) == date(2025, 7, 22)


def test_business_days_skip_all_saints_and_armistice() -> None:
    # 2024: 1 November is a Friday, 11 November a Monday.
    assert FR.add_business_days(date(2024, 10, 31), 1) == date(2024, 11, 4)
    assert FR.add_business_days(date(2024, 11, 4), -1) == date(2024, 10, 31)
    assert FR.add_business_days(date(2024, 11, 8), 1) == date(2024, 11, 12)
    assert FR.add_business_days(date(2024, 11, 12), -5) == date(2024, 11, 4)


def test_business_days_from_a_weekend_and_zero_and_year_end() -> None:
    saturday = date(2025, 7, 5)
    assert FR.add_business_days(saturday, 1) == date(2025, 7, 7)
    assert FR.add_business_days(saturday, -1) == date(2025, 7, 4)
    assert FR.add_business_days(saturday, 0) == saturday
    assert FR.add_business_days(date(2024, 12, 31), 1) == date(2025, 1, 2)  # 1 Jan
    assert FR.add_business_days(date(2025, 1, 2), -1) == date(2024, 12, 31)
    assert FR.is_holiday(date(2025, 7, 14)) and not FR.is_business_day(date(2025, 7, 14))
    assert FR.is_business_day(date(2025, 7, 15))


def test_far_dates_extend_the_table() -> None:
    cal = BusinessCalendar("DE")
    assert cal.add_business_days(date(2010, 12, 24), 1) == date(2010, 12, 27)
    assert cal.add_business_days(date(2040, 12, 24), 1) == date(2040, 12, 27)  # 25/26 Dec
    assert cal.is_holiday(date(2040, 10, 3))


def _naive_add(d: date, n: int, country: str) -> date:
    hols = holidays.country_holidays(country, years=range(d.year - 2, d.year + 3))
    step = 1 if n > 0 else -1
    left = abs(n)
    while left:
        d += timedelta(days=step)
        if d.weekday() < 5 and d not in hols:
            left -= 1
    return d


@settings(max_examples=150, deadline=None)
@given(
    st.dates(min_value=date(2020, 1, 1), max_value=date(2032, 12, 31)),
    st.integers(min_value=-60, max_value=60),
    st.sampled_from(["FR", "DE", "US", "ES", "GB"]),
)
def test_bisected_table_matches_day_by_day_stepping(d: date, n: int, country: str) -> None:
    assert get_calendar(country).add_business_days(d, n) == _naive_add(d, n, country)


def test_parse_window() -> None:
    assert parse_window("09:00-18:00")[0].hour == 9
    for bad in ("9-18", "18:00-09:00", "09:00-09:00", "25:00-26:00", "09:60-10:00", ""):
        with pytest.raises(ValueError, match="send window"):
            parse_window(bad)


def test_outside_window_moves_to_next_opening() -> None:
    # Friday 4 July 2025 19:30 Paris (17:30 UTC) -> Monday 7 July 09:00 Paris (07:00 UTC).
    assert next_send_instant(utc(2025, 7, 4, 17, 30), PARIS, WINDOW, FR) == utc(2025, 7, 7, 7)
    # Before opening the same day -> that day's opening.
    assert next_send_instant(utc(2025, 7, 7, 5), PARIS, WINDOW, FR) == utc(2025, 7, 7, 7)
    # Inside -> unchanged; 18:00 is already outside ([start, end)).
    assert next_send_instant(utc(2025, 7, 7, 10), PARIS, WINDOW, FR) == utc(2025, 7, 7, 10)
    assert next_send_instant(utc(2025, 7, 7, 16), PARIS, WINDOW, FR) == utc(2025, 7, 8, 7)
    # Friday 11 July evening -> Tuesday 15 (Monday 14 is a holiday).
    assert next_send_instant(utc(2025, 7, 11, 17), PARIS, WINDOW, FR) == utc(2025, 7, 15, 7)


def test_dst_spring_forward_week_paris() -> None:
    # Clocks go forward on Sunday 30 March 2025: 09:00 is 08:00 UTC on Friday 28, 07:00 UTC
    # on Monday 31.
    assert window_opening(date(2025, 3, 28), PARIS, WINDOW, FR) == utc(2025, 3, 28, 8)
    assert window_opening(date(2025, 3, 29), PARIS, WINDOW, FR) == utc(2025, 3, 31, 7)
    assert next_send_instant(utc(2025, 3, 28, 17, 30), PARIS, WINDOW, FR) == utc(2025, 3, 31, 7)
    # 17:30 UTC on Monday 31 March is 19:30 CEST: outside.
    assert not WINDOW.contains(utc(2025, 3, 31, 16, 30), PARIS, FR)
    assert WINDOW.contains(utc(2025, 3, 31, 15, 59), PARIS, FR)


def test_dst_fall_back_week_paris() -> None:
    # Clocks go back on Sunday 26 October 2025.
    assert window_opening(date(2025, 10, 24), PARIS, WINDOW, FR) == utc(2025, 10, 24, 7)
    assert window_opening(date(2025, 10, 25), PARIS, WINDOW, FR) == utc(2025, 10, 27, 8)
    assert next_send_instant(utc(2025, 10, 27, 7, 30), PARIS, WINDOW, FR) == utc(2025, 10, 27, 8)


def test_new_york_customer_with_french_calendar() -> None:
    # US DST starts Sunday 9 March 2025: 09:00 New York is 14:00 UTC before, 13:00 after.
    assert window_opening(date(2025, 3, 7), NEW_YORK, WINDOW, FR) == utc(2025, 3, 7, 14)
    assert window_opening(date(2025, 3, 8), NEW_YORK, WINDOW, FR) == utc(2025, 3, 10, 13)
    # Friday 7 March 22:30 UTC is 17:30 in New York: still inside the window.
    assert next_send_instant(utc(2025, 3, 7, 22, 30), NEW_YORK, WINDOW, FR) == utc(
        2025, 3, 7, 22, 30
    )
    # The policy calendar decides holidays: 14 July is skipped for a New York customer too.
    assert window_opening(date(2025, 7, 14), NEW_YORK, WINDOW, FR) == utc(2025, 7, 15, 13)


def test_custom_send_days() -> None:
    saturdays = SendWindow.parse("10:00-12:00", ("sat",))
    assert window_opening(date(2025, 7, 7), PARIS, saturdays, FR) == utc(2025, 7, 12, 8)
    assert saturdays.contains(utc(2025, 7, 12, 9), PARIS, FR)
    assert not saturdays.contains(utc(2025, 7, 12, 10), PARIS, FR)
