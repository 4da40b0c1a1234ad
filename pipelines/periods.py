"""Reporting months.

A period is a calendar month written ``YYYY-MM``. It names both the export batch that
delivered records and the month an indicator reports on. Keeping the arithmetic in
one place avoids the classic off-by-one of "month before the run date".
"""

from __future__ import annotations

import re
from datetime import date, datetime

from pipelines.errors import ConfigError

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_period(text: str) -> tuple[int, int]:
    """``"2026-10"`` -> ``(2026, 10)``; anything else is a ConfigError naming the format."""
    m = _PERIOD.match(str(text).strip())
    if not m:
        raise ConfigError(f"period must look like YYYY-MM (e.g. 2026-10), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def validate_period(text: str) -> str:
    year, month = parse_period(text)
    return f"{year:04d}-{month:02d}"


def shift(period: str, months: int) -> str:
    """The period ``months`` months after (negative: before) ``period``."""
    year, month = parse_period(period)
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def bounds(period: str) -> tuple[date, date]:
    """First day of the month and first day of the next month (half-open interval)."""
    year, month = parse_period(period)
    start = date(year, month, 1)
    ny, nm = parse_period(shift(period, 1))
    return start, date(ny, nm, 1)


def window(end: str, months: int) -> list[str]:
    """The ``months`` periods ending at ``end``, oldest first."""
    return [shift(end, -k) for k in range(months - 1, -1, -1)]


def span(first: str, last: str) -> list[str]:
    """Every period from ``first`` to ``last`` inclusive."""
    fy, fm = parse_period(first)
    ly, lm = parse_period(last)
    n = (ly * 12 + lm) - (fy * 12 + fm)
    if n < 0:
        raise ConfigError(f"period range is backwards: {first} .. {last}")
    return [shift(first, k) for k in range(n + 1)]


def previous_month(moment: datetime | date) -> str:
    """The month before ``moment``: a run on 2026-11-05 reports on 2026-10."""
    return shift(f"{moment.year:04d}-{moment.month:02d}", -1)


__all__ = ["bounds", "parse_period", "previous_month", "shift", "span", "validate_period", "window"]
