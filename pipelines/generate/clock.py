"""Integer minutes since the Unix epoch: the generator's only notion of time.

Simulating in whole minutes keeps the arithmetic exact (no float drift between two
runs) and cheap; values become FHIR ``dateTime`` strings with an explicit UTC offset
only when a resource is written, because FHIR requires an offset on any dateTime
that carries a time.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta

from pipelines.periods import Month

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = 1
HOUR = 60
DAY = 1440
_EPOCH_DATE = date(1970, 1, 1)
#: 1970-01-15 (mid-January) is day 14: the peak of winter pressure in the seasonality curve.
_WINTER_PEAK_DAY = 14.0
_YEAR_DAYS = 365.2425


_TIMES = tuple(f"T{m // 60:02d}:{m % 60:02d}:00+00:00" for m in range(DAY))
_DAYS: dict[int, str] = {}


def iso(minute: int) -> str:
    """FHIR dateTime with seconds and offset, e.g. ``2026-10-03T14:05:00+00:00``.

    Built from a per-day string cache: formatting datetimes dominated the run time.
    """
    d, m = divmod(minute, DAY)
    day = _DAYS.get(d)
    if day is None:
        day = _DAYS[d] = (_EPOCH_DATE + timedelta(days=d)).isoformat()
    return day + _TIMES[m]


def iso_date(minute: int) -> str:
    return (_EPOCH_DATE + timedelta(days=minute // DAY)).isoformat()


def minute_of(d: date | datetime) -> int:
    if not isinstance(d, datetime):
        d = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return int((d - EPOCH).total_seconds()) // 60


def day_start(minute: int) -> int:
    return minute - minute % DAY


def weekday(minute: int) -> int:
    """Monday 0 .. Sunday 6 (1970-01-01 was a Thursday)."""
    return (minute // DAY + 3) % 7


def add_working_days(minute: int, days: int) -> int:
    """Complaint standards count working days: weekends do not run the clock."""
    m = minute
    left = days
    while left > 0:
        m += DAY
        if weekday(m) < 5:
            left -= 1
    return m


def season(minute: int, amplitude: float) -> float:
    """Multiplier peaking mid-January (winter pressures), trough mid-July."""
    d = minute / DAY
    return 1.0 + amplitude * math.cos(2.0 * math.pi * (d - _WINTER_PEAK_DAY) / _YEAR_DAYS)


def month_periods(end_period: str, months: int) -> list[str]:
    """The ``months`` consecutive ``YYYY-MM`` periods ending at ``end_period``, oldest first."""
    if months < 1:
        raise ValueError(f"months must be >= 1, got {months}")
    return [m.label for m in Month.parse(end_period).window(months)]


def period_starts(periods: list[str]) -> list[int]:
    """Start minute of each period plus the start of the month after the last one."""
    months = [Month.parse(p) for p in periods]
    return [minute_of(m.start) for m in months] + [minute_of(months[-1].end)]


def batch_index(bounds: list[int], minute: int) -> int:
    """Index of the period holding ``minute``, or -1 when outside the window."""
    i = bisect_right(bounds, minute) - 1
    return i if 0 <= i < len(bounds) - 1 else -1
