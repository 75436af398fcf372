"""Calendar periods in the policy's time zone: day, ISO week, month; DST days."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from handoffd.policy.periods import window_at
from handoffd.schema.policy import Period

BERLIN = ZoneInfo("Europe/Berlin")


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=BERLIN).timestamp()  # type: ignore[misc]


def test_day_week_month_bounds_are_local() -> None:
    """Periods start at local midnight (Monday for weeks, the 1st for months)."""
    now = ts(2026, 7, 15, 13, 45)  # a Wednesday
    day = window_at(Period.DAY, now, BERLIN)
    assert (day.start, day.end, day.label) == (ts(2026, 7, 15), ts(2026, 7, 16), "2026-07-15")
    week = window_at(Period.WEEK, now, BERLIN)
    assert (week.start, week.end, week.label) == (ts(2026, 7, 13), ts(2026, 7, 20), "2026-W29")
    month = window_at(Period.MONTH, now, BERLIN)
    assert (month.start, month.end, month.label) == (ts(2026, 7, 1), ts(2026, 8, 1), "2026-07")


def test_december_rolls_into_the_next_year() -> None:
    """The December month ends on January 1st of the next year."""
    month = window_at(Period.MONTH, ts(2026, 12, 31, 23, 59), BERLIN)
    assert month.end == ts(2027, 1, 1)


def test_dst_days_are_23_and_25_hours() -> None:
    """The spring-forward day is 23 h long and the fall-back day 25 h, in Berlin."""
    spring = window_at(Period.DAY, ts(2026, 3, 29, 12), BERLIN)
    autumn = window_at(Period.DAY, ts(2026, 10, 25, 12), BERLIN)
    assert spring.end - spring.start == 23 * 3600
    assert autumn.end - autumn.start == 25 * 3600


def test_seconds_left_counts_to_the_reset() -> None:
    """seconds_left is the time until the next period starts."""
    day = window_at(Period.DAY, ts(2026, 7, 15, 23, 0), BERLIN)
    assert day.seconds_left(ts(2026, 7, 15, 23, 0)) == 3600
