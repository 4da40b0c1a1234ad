"""Date arithmetic over whole columns: timestamps, day counts, bed days, ages, deadlines.

Shared by the criteria engine (``days_between``, ``derive``, ``follow_up``) and the eCQM
toolkit (:mod:`pipelines.compute.ecqm`), so that "days between", "age on a date" and
"the n-th working day" mean the same everywhere. Timestamps are facility-local
wall-clock time (:mod:`pipelines.localtime`), so a day is the local day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.compute import model as m
from pipelines.workdays import WorkingCalendars

#: Monday to Friday less England's bank holidays, unless the caller passes the configured calendars.
DEFAULT_CALENDARS = WorkingCalendars()

_DAY_US = 86_400_000_000.0


def timestamps(s: pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps as ``datetime64[us]`` (NaT where missing or unreadable)."""
    s = pd.Series(s) if not isinstance(s, pd.Series) else s
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, errors="coerce")
    return s.to_numpy(dtype="datetime64[us]")


def day_difference(
    start: pd.Series,
    end: pd.Series,
    by: m.DayCount,
    *,
    calendars: WorkingCalendars = DEFAULT_CALENDARS,
    facility: pd.Series | None = None,
) -> np.ndarray:
    """Days from ``start`` to ``end`` as floats, NaN where either is missing (see DayCount).
    Working days follow each row's facility calendar (:mod:`pipelines.workdays`)."""
    a, b = timestamps(start), timestamps(end)
    ok = ~(np.isnat(a) | np.isnat(b))
    out = np.full(len(a), np.nan)
    if not ok.any():
        return out
    a, b = a[ok], b[ok]
    if by is m.DayCount.ELAPSED:
        out[ok] = (b - a).astype("timedelta64[us]").astype(np.float64) / _DAY_US
    else:
        ad, bd = a.astype("datetime64[D]"), b.astype("datetime64[D]")
        if by is m.DayCount.CALENDAR:
            out[ok] = (bd - ad).astype(np.int64).astype(np.float64)
        else:  # working days in (start, end]
            fac = None if facility is None else pd.Series(facility).reset_index(drop=True)[ok].reset_index(drop=True)
            out[ok] = calendars.days_between(ad, bd, fac).astype(np.float64)
    return out


def days_in_period(
    start: pd.Series, end: pd.Series, period_start: pd.Timestamp, period_end: pd.Timestamp
) -> np.ndarray:
    """Occupied bed days within [period_start, period_end) by midnight census (see
    :class:`model.DeriveDaysInPeriod`); NaN where the start is missing."""
    a = timestamps(start).astype("datetime64[D]")
    b = timestamps(end).astype("datetime64[D]")
    p0 = np.datetime64(period_start.to_datetime64(), "D")
    p1 = np.datetime64(period_end.to_datetime64(), "D")
    out = np.full(len(a), np.nan)
    ok = ~np.isnat(a)
    open_stay = np.isnat(b)
    last = np.where(open_stay, p1, b)  # nights counted up to the day before discharge
    lo = np.maximum(a, p0)
    hi = np.minimum(last, p1)
    nights = np.maximum((hi - lo).astype("timedelta64[D]").astype(np.int64), 0).astype(np.float64)
    same_day = ok & ~open_stay & (a == b) & (a >= p0) & (a < p1)
    out[ok] = nights[ok]
    out[same_day] = 1.0
    return out


def completed_years(start: pd.Series, end: pd.Series) -> np.ndarray:
    """Whole years from ``start`` (birth) to ``end``: the age on that date."""
    a, b = pd.Series(timestamps(start)), pd.Series(timestamps(end))

    def part(s: pd.Series, attr: str) -> np.ndarray:
        return getattr(s.dt, attr).to_numpy(dtype=np.float64, na_value=np.nan)

    years = part(b, "year") - part(a, "year")
    before_birthday = (part(b, "month") * 100 + part(b, "day")) < (part(a, "month") * 100 + part(a, "day"))
    return years - before_birthday.astype(np.float64)


def deadline_days(
    start: pd.Series,
    days: int,
    by: m.DayCount,
    *,
    calendars: WorkingCalendars = DEFAULT_CALENDARS,
    facility: pd.Series | None = None,
) -> np.ndarray:
    """The (local) day by which a rule counted ``days`` after ``start`` must be met:
    ``days`` calendar days later, or the ``days``-th working day after the start day
    (the facility's working days; the day after receipt is working day 1, as
    ``DayCount.WORKING`` counts). NaT where ``start`` is missing."""
    d = timestamps(start).astype("datetime64[D]")
    out = np.full(len(d), np.datetime64("NaT"), dtype="datetime64[D]")
    ok = ~np.isnat(d)
    if by is m.DayCount.WORKING:
        fac = None if facility is None else pd.Series(facility).reset_index(drop=True)[ok].reset_index(drop=True)
        out[ok] = calendars.deadline(d[ok], days, fac)
    else:
        out[ok] = d[ok] + np.timedelta64(days, "D")
    return out


__all__ = ["DEFAULT_CALENDARS", "completed_years", "day_difference", "days_in_period", "deadline_days", "timestamps"]
