"""Reporting months: the one month type.

A period is a calendar month written ``YYYY-MM``. It names both the export batch that
delivered records and the month an indicator reports on. Keeping the arithmetic in
one place avoids the classic off-by-one of "month before the run date", and keeps
every bad month failing the same way (:class:`~pipelines.errors.PeriodError`, one
message).

Years are limited to :data:`MIN_YEAR` .. :data:`MAX_YEAR`. A hospital reports on
months of its own history; ``0000-01`` or ``9999-12`` is a typo, and letting one
through used to load a batch and then crash on year 0 or on ``10000-02``.

Timestamps in the warehouse are the facility's local wall-clock time (see
:mod:`pipelines.tables`), so a month's bounds are local midnights too.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pipelines.errors import PeriodError

#: Sensible years for a reporting month (and for every shift of one).
MIN_YEAR = 1900
MAX_YEAR = 2199

#: The shape of a month, ``YYYY-MM`` (also the DAG's ``period`` param schema).
MONTH_PATTERN = r"^(\d{4})-(0[1-9]|1[0-2])$"
_PERIOD = re.compile(MONTH_PATTERN)


def _message(text: object) -> str:
    return (
        f"period must be a month written YYYY-MM between {MIN_YEAR}-01 and {MAX_YEAR}-12 (e.g. 2026-10), got {text!r}"
    )


@dataclass(frozen=True, order=True)
class Month:
    """One calendar month; ordered, hashable, and printed as ``YYYY-MM``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (MIN_YEAR <= self.year <= MAX_YEAR and 1 <= self.month <= 12):
            raise PeriodError(_message(f"{self.year:04d}-{self.month:02d}"))

    @classmethod
    def parse(cls, text: object) -> Month:
        """``"2026-10"`` -> ``Month(2026, 10)``; anything else is a PeriodError."""
        if isinstance(text, Month):
            return text
        m = _PERIOD.match(str(text).strip()) if isinstance(text, str) else None
        if not m:
            raise PeriodError(_message(text))
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, moment: datetime | date) -> Month:
        """The month a date falls in."""
        return cls(moment.year, moment.month)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def __str__(self) -> str:
        return self.label

    @property
    def index(self) -> int:
        return self.year * 12 + self.month - 1

    def shift(self, months: int) -> Month:
        """The month ``months`` later (negative: earlier); PeriodError outside the range."""
        index = self.index + months
        year, month = divmod(index, 12)
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise PeriodError(f"{self.label} shifted by {months} months leaves the years {MIN_YEAR}..{MAX_YEAR}")
        return Month(year, month + 1)

    @property
    def start(self) -> date:
        """First day of the month."""
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        """First day of the next month (the bounds are half-open)."""
        return date(self.year + 1, 1, 1) if self.month == 12 else date(self.year, self.month + 1, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    def window(self, months: int) -> list[Month]:
        """The ``months`` months ending with this one, oldest first."""
        return [self.shift(-k) for k in range(months - 1, -1, -1)]

    @property
    def long_label(self) -> str:
        """``October 2026``."""
        return f"{calendar.month_name[self.month]} {self.year}"

    @property
    def short_label(self) -> str:
        """``Oct 26``."""
        return f"{calendar.month_abbr[self.month]} {str(self.year)[2:]}"


_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
#: What a regulator package can cover: a month, a calendar quarter or a calendar year.
REPORTING_PERIOD_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$"


@dataclass(frozen=True)
class MeasurementPeriod:
    """What an indicator is evaluated or reported over: a reporting month (``YYYY-MM``),
    a calendar quarter (``YYYY-Qn``, for quarterly regulator returns) or, for the annual
    CMS eCQMs, a calendar year (``YYYY``; the decks use 2026-01-01 .. 2026-12-31).
    ``start`` inclusive, ``end`` exclusive."""

    label: str
    start: date
    end: date

    @classmethod
    def parse(cls, text: object) -> MeasurementPeriod:
        if isinstance(text, MeasurementPeriod):
            return text
        if isinstance(text, Month):
            return cls(text.label, text.start, text.end)
        y = _YEAR.match(str(text).strip()) if isinstance(text, str) else None
        if y:
            year = int(y.group(1))
            if not MIN_YEAR <= year <= MAX_YEAR:
                raise PeriodError(
                    f"measurement year must be between {MIN_YEAR} and {MAX_YEAR} (YYYY), "
                    f"or a month YYYY-MM; got {text!r}"
                )
            return cls(f"{year:04d}", date(year, 1, 1), date(year + 1, 1, 1))
        q = _QUARTER.match(str(text).strip()) if isinstance(text, str) else None
        if q:
            first = Month(int(q.group(1)), 3 * int(q.group(2)) - 2)
            return cls(f"{first.year:04d}-Q{q.group(2)}", first.start, first.shift(2).end)
        if isinstance(text, str) and not _PERIOD.match(text.strip()):
            raise PeriodError(
                f"period must be a month YYYY-MM, a quarter YYYY-Qn or a year YYYY (e.g. 2026-10, 2026-Q4, 2026); "
                f"got {text!r}"
            )
        month = Month.parse(text)
        return cls(month.label, month.start, month.end)

    @property
    def annual(self) -> bool:
        return len(self.label) == 4

    @property
    def kind(self) -> str:
        """``month``, ``quarter`` or ``year``."""
        return "year" if self.annual else "quarter" if "Q" in self.label else "month"

    @property
    def months(self) -> list[Month]:
        """The calendar months the period covers, oldest first."""
        first = Month.of(self.start)
        last = Month.of(date.fromordinal(self.end.toordinal() - 1))
        return [first.shift(k) for k in range(last.index - first.index + 1)]

    @property
    def last_day(self) -> date:
        return date.fromordinal(self.end.toordinal() - 1)

    @classmethod
    def from_inclusive(cls, first: date, last: date) -> MeasurementPeriod:
        """The period whose first and last days (inclusive, as MADiE writes them) these
        are: a calendar year or a calendar month; any other span is a PeriodError rather
        than something silently widened."""
        year = cls.parse(f"{first.year:04d}")
        if (first, last) == (year.start, date(first.year, 12, 31)):
            return year
        month = Month.of(first)
        if (first, last) == (month.start, month.last_day):
            return cls.parse(month)
        raise PeriodError(
            f"measurement period {first}..{last} is neither a calendar year nor a calendar month; "
            "the indicator engine evaluates only those"
        )


def parse_period(text: object) -> tuple[int, int]:
    """``"2026-10"`` -> ``(2026, 10)``."""
    m = Month.parse(text)
    return m.year, m.month


def validate_period(text: object) -> str:
    """The canonical ``YYYY-MM`` spelling of a period, or a PeriodError."""
    return Month.parse(text).label


def shift(period: str, months: int) -> str:
    """The period ``months`` months after (negative: before) ``period``."""
    return Month.parse(period).shift(months).label


def bounds(period: str) -> tuple[date, date]:
    """First day of the month and first day of the next month (half-open interval)."""
    m = Month.parse(period)
    return m.start, m.end


def window(end: str, months: int) -> list[str]:
    """The ``months`` periods ending at ``end``, oldest first."""
    return [m.label for m in Month.parse(end).window(months)]


def span(first: str, last: str) -> list[str]:
    """Every period from ``first`` to ``last`` inclusive."""
    a, b = Month.parse(first), Month.parse(last)
    n = b.index - a.index
    if n < 0:
        raise PeriodError(f"period range is backwards: {a} .. {b}")
    return [a.shift(k).label for k in range(n + 1)]


#: A day, ``YYYY-MM-DD`` (the daily feedback run's unit).
DAY_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
_DAY = re.compile(DAY_PATTERN)


def validate_day(text: object) -> str:
    """The canonical ``YYYY-MM-DD`` spelling of a day, or a PeriodError."""
    if isinstance(text, date) and not isinstance(text, datetime):
        text = text.isoformat()
    if not isinstance(text, str) or not _DAY.match(text.strip()):
        raise PeriodError(f"day must be written YYYY-MM-DD (e.g. 2026-10-15), got {text!r}")
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"no such day: {text!r}") from None
    Month.of(day)  # within the supported years
    return day.isoformat()


def month_of_day(day: str) -> str:
    """``"2026-10-15"`` -> ``"2026-10"``."""
    return Month.of(date.fromisoformat(validate_day(day))).label


def is_period(text: object) -> bool:
    """Whether ``text`` is a month label (a folder name of a monthly batch, say)."""
    return isinstance(text, str) and bool(_PERIOD.match(text))


def labels_of(moments: Any) -> Any:
    """The month label (``YYYY-MM``) of each timestamp of a pandas Series (missing stays
    missing): grouping many records by month at once."""
    return moments.dt.strftime(_LABEL_FORMAT)


_LABEL_FORMAT = "%Y-%m"


def previous_month(moment: datetime | date) -> str:
    """The month before ``moment``: a run on 2026-11-05 reports on 2026-10."""
    return Month.of(moment).shift(-1).label


__all__ = [
    "DAY_PATTERN",
    "MAX_YEAR",
    "MIN_YEAR",
    "MONTH_PATTERN",
    "REPORTING_PERIOD_PATTERN",
    "MeasurementPeriod",
    "Month",
    "bounds",
    "is_period",
    "labels_of",
    "month_of_day",
    "parse_period",
    "previous_month",
    "shift",
    "span",
    "validate_day",
    "validate_period",
    "window",
]
