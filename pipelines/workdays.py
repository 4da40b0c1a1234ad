"""Working days: which days run a complaint's clock, per facility.

Complaint standards count *working* days: in England the Complaints Regulations 2009
give three working days to acknowledge, and neither weekends nor bank holidays count.
A bank holiday differs by country and region (Scotland keeps 2 January and St Andrew's
Day, England and Wales do not; US states differ), so the calendar is a setting per
facility, like its time zone:

* ``CAREQI_HOLIDAYS``: the system's calendar, a country code with an optional
  subdivision as the ``holidays`` library names them (``GB-ENG``, ``GB-SCT``, ``US-NY``,
  ``DE-BY``), or ``none`` for Monday to Friday with no holidays. Default ``GB-ENG``.
* ``CAREQI_FACILITY_HOLIDAYS``: ``facility_id=CC-SUB`` pairs for facilities keeping
  another calendar.
* ``CAREQI_WORKWEEK``: the days that are working days, default ``Mon Tue Wed Thu Fri``.

The public holidays come from the ``holidays`` package (kept up to date by its
maintainers, with substituted days such as a Christmas falling on a Sunday) and the
arithmetic from :func:`numpy.busday_count` / :func:`numpy.busday_offset`, so a column of
a million complaints is counted at once, one call per calendar in use. Every
working-day rule (indicator criteria, follow-up deadlines, SLA breaches) goes through
:func:`working_days_between` or :func:`working_day_deadline`, so they agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported by the functions that need it: settings load fast
    import pandas as pd

DEFAULT_REGION = "GB-ENG"
DEFAULT_WORKWEEK = "Mon Tue Wed Thu Fri"
_NO_HOLIDAYS = "none"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def check_region(spec: str, where: str) -> str:
    """``CC`` or ``CC-SUB`` known to the ``holidays`` library (or ``none``), else a ConfigError."""
    spec = spec.strip()
    if spec.lower() == _NO_HOLIDAYS:
        return _NO_HOLIDAYS
    import holidays

    country, _, subdiv = spec.partition("-")
    supported = holidays.list_supported_countries()
    if country.upper() not in supported:
        raise ConfigError(f"{where}: unknown country {country!r} (use an ISO 3166 code such as GB, US, DE, or 'none')")
    if subdiv and subdiv.upper() not in {s.upper() for s in supported[country.upper()]}:
        known = ", ".join(supported[country.upper()][:12])
        raise ConfigError(f"{where}: {country.upper()} has no subdivision {subdiv!r} (known: {known}, ...)")
    return f"{country.upper()}-{subdiv.upper()}" if subdiv else country.upper()


def parse_facility_regions(text: str) -> dict[str, str]:
    """``"fac-a=GB-SCT, fac-b=US-NY"`` -> ``{"fac-a": "GB-SCT", "fac-b": "US-NY"}``."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        facility, sep, region = part.partition("=")
        if not sep or not facility.strip() or not region.strip():
            raise ConfigError(f"CAREQI_FACILITY_HOLIDAYS: expected facility_id=CC-SUB pairs, got {part!r}")
        out[facility.strip()] = check_region(region, f"CAREQI_FACILITY_HOLIDAYS ({facility.strip()})")
    return out


def check_workweek(text: str) -> str:
    """Day names (``Mon Tue ...``) as numpy's weekmask wants them, at least one."""
    days = [d.strip().title()[:3] for d in text.replace(",", " ").split()]
    unknown = [d for d in days if d not in _DAYS]
    if unknown or not days:
        raise ConfigError(f"CAREQI_WORKWEEK: expected day names such as 'Mon Tue Wed Thu Fri', got {text!r}")
    return " ".join(d for d in _DAYS if d in days)


@lru_cache(maxsize=64)
def _holidays(region: str, first_year: int, last_year: int) -> tuple[str, ...]:
    if region == _NO_HOLIDAYS:
        return ()
    import holidays

    country, _, subdiv = region.partition("-")
    found = holidays.country_holidays(country, subdiv=subdiv or None, years=range(first_year, last_year + 1))
    return tuple(sorted(str(day) for day in found))


@dataclass(frozen=True)
class WorkingCalendars:
    """The system's working-day calendar and the facilities that keep another one."""

    default: str = DEFAULT_REGION
    facilities: Mapping[str, str] = field(default_factory=dict)
    workweek: str = DEFAULT_WORKWEEK

    def region_of(self, facility_id: str | None) -> str:
        if facility_id is None:
            return self.default
        return self.facilities.get(facility_id, self.default)

    def holidays(self, region: str, first_year: int, last_year: int) -> np.ndarray:
        """Public holidays of ``region`` in those years, as ``datetime64[D]``."""
        return np.array(_holidays(region, first_year, last_year), dtype="datetime64[D]")

    def holiday_names(self, region: str, year: int) -> dict[str, str]:
        """``{"2026-12-25": "Christmas Day", ...}``: for reports and tests that say which day was skipped."""
        if region == _NO_HOLIDAYS:
            return {}
        import holidays

        country, _, subdiv = region.partition("-")
        return {str(d): n for d, n in holidays.country_holidays(country, subdiv=subdiv or None, years=year).items()}

    def _calendar(self, region: str, days: np.ndarray) -> np.busdaycalendar:
        ok = days[~np.isnat(days)]
        if not len(ok):
            return np.busdaycalendar(weekmask=self.workweek)
        years = ok.astype("datetime64[Y]").astype(np.int64) + 1970
        # A deadline can fall in the next year: take one more year than the data spans.
        first, last = int(years.min()), int(years.max()) + 1
        return np.busdaycalendar(weekmask=self.workweek, holidays=self.holidays(region, first, last))

    def _groups(self, facility: pd.Series | None, n: int) -> list[tuple[str, np.ndarray]]:
        """(region, row positions) for each calendar in use: one numpy call per calendar."""
        if facility is None or not self.facilities:
            return [(self.default, np.arange(n))]
        import pandas as pd

        regions = facility.astype("object").map(lambda f: self.region_of(None if pd.isna(f) else str(f)))
        codes = regions.to_numpy(dtype=object)
        return [(str(r), np.flatnonzero(codes == r)) for r in sorted(set(codes))]

    def days_between(self, start: np.ndarray, end: np.ndarray, facility: pd.Series | None = None) -> np.ndarray:
        """Working days in (start, end] for ``datetime64[D]`` arrays without NaT: the day
        after receipt is working day 1, and a reply on a Saturday after a Friday receipt
        has taken 0 working days. Negative when ``end`` is before ``start``."""
        out = np.zeros(len(start), dtype=np.int64)
        for region, rows in self._groups(facility, len(start)):
            if not len(rows):
                continue
            cal = self._calendar(region, np.concatenate([start[rows], end[rows]]))
            out[rows] = np.busday_count(start[rows] + 1, end[rows] + 1, busdaycal=cal)
        return out

    def deadline(self, start: np.ndarray, days: int, facility: pd.Series | None = None) -> np.ndarray:
        """The ``days``-th working day after each start day (``datetime64[D]`` without NaT);
        the start day itself when ``days`` is 0."""
        if days <= 0:
            return start.copy()
        out = np.empty(len(start), dtype="datetime64[D]")
        for region, rows in self._groups(facility, len(start)):
            if not len(rows):
                continue
            cal = self._calendar(region, start[rows])
            out[rows] = np.busday_offset(start[rows] + 1, days - 1, roll="forward", busdaycal=cal)
        return out


__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_WORKWEEK",
    "WorkingCalendars",
    "check_region",
    "check_workweek",
    "parse_facility_regions",
]
