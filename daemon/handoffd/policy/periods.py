"""Calendar periods of budgets (day, ISO week, month) in the policy's IANA time zone.

A period starts at local midnight (Monday for weeks, the 1st for months) and ends at the next
one. Daylight-saving days are 23 or 25 hours long; the bounds are computed from the local
calendar and converted to UTC seconds, so they are right across the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from handoffd.schema.policy import Period


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    """One calendar period: ``[start, end)`` in Unix seconds, and its local start date."""

    period: Period
    start: float
    end: float
    label: str

    def seconds_left(self, now: float) -> float:
        return max(0.0, self.end - now)


def _local_midnight(day: date, tz: ZoneInfo) -> float:
    # datetime(..., tzinfo=ZoneInfo) resolves the local wall time with fold=0; the timestamp of
    # a local midnight that a DST jump skips is the instant just after the jump.
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def _first_day(day: date, period: Period) -> date:
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_first_day(first: date, period: Period) -> date:
    if period is Period.DAY:
        return first + timedelta(days=1)
    if period is Period.WEEK:
        return first + timedelta(days=7)
    if first.month == 12:
        return date(first.year + 1, 1, 1)
    return date(first.year, first.month + 1, 1)


def _label(first: date, period: Period) -> str:
    if period is Period.DAY:
        return first.isoformat()
    if period is Period.WEEK:
        year, week, _ = first.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{first.year}-{first.month:02d}"


def window_at(period: Period, now: float, tz: ZoneInfo) -> PeriodWindow:
    """The calendar period of ``period`` kind that contains the instant ``now``."""
    today = datetime.fromtimestamp(now, tz).date()
    first = _first_day(today, period)
    start = _local_midnight(first, tz)
    end = _local_midnight(_next_first_day(first, period), tz)
    # a skipped local midnight resolves after `now`: the period then began at the jump
    start = min(start, now)
    return PeriodWindow(period=period, start=start, end=end, label=_label(first, period))
