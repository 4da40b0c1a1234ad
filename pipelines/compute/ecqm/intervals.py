"""CQL DateTime intervals over whole columns, and the measurement period's bounds.

FHIRHelpers ``ToInterval(Period)``, ``effective[x]/performed[x].toInterval()`` and
QICoreCommon ``prevalenceInterval()``, each for every row at once, with CQL's handling of
null boundaries (see :class:`Interval`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from pipelines.compute.ecqm.columns import US, ts
from pipelines.compute.model import Period
from pipelines.strings import isin

#: Closed interval boundaries that CQL reads as the beginning / end of time.
BEGINNING = np.datetime64("0001-01-01T00:00:00", "us")
END_OF_TIME = np.datetime64("9999-12-31T23:59:59", "us")
#: Clinical statuses of a condition that is still going on without an abatement.
ACTIVE_LIKE = ("active", "recurrence", "relapse")


class Interval(NamedTuple):
    """CQL DateTime intervals, one per row, as the range each boundary may take.

    A known boundary has ``min == max``; a closed null boundary is the beginning or end
    of time; an open null boundary is unknown, i.e. anywhere between the other boundary
    and the end of time (cql-execution ``toClosed`` turns it into an Uncertainty). A
    comparison is true only when it holds for every possible value, so "unknown" reads
    as false, as CQL's null does in a ``where``. A null interval is NaT throughout.
    """

    lo_min: np.ndarray
    lo_max: np.ndarray
    hi_min: np.ndarray
    hi_max: np.ndarray

    def overlaps(self, start: np.datetime64, end_excl: np.datetime64) -> np.ndarray:
        return (self.lo_max < end_excl) & (self.hi_min >= start)

    def during(self, start: np.datetime64, end_excl: np.datetime64) -> np.ndarray:
        return (self.lo_min >= start) & (self.hi_max < end_excl)

    def start(self) -> np.ndarray:
        """``start of``: null for an unknown (open null) start."""
        return np.where(self.lo_min == self.lo_max, self.lo_min, np.datetime64("NaT", "us"))

    def end(self) -> np.ndarray:
        """``end of``: null for an unknown (open null) end."""
        return np.where(self.hi_min == self.hi_max, self.hi_min, np.datetime64("NaT", "us"))


def bounds(period: Period) -> tuple[np.datetime64, np.datetime64]:
    """The measurement period as [start, end) in microseconds."""
    return np.datetime64(period.start.to_datetime64(), "us"), np.datetime64(period.end.to_datetime64(), "us")


def fhir_period(start: pd.Series, end: pd.Series) -> Interval:
    """FHIRHelpers ``ToInterval(Period)``: ``[start, end]``, a missing end being the end of
    time (still going); without a start, ``(null, end]`` whose start is unknown. A row with
    neither is taken as having no period at all (null)."""
    s, e = ts(start), ts(end)
    lo_min = np.where(np.isnat(s) & ~np.isnat(e), BEGINNING, s)
    lo_max = np.where(np.isnat(s), e, s)
    hi = np.where(np.isnat(e) & ~np.isnat(s), END_OF_TIME, e)
    return Interval(lo_min, lo_max, hi, hi)


def timing(start: pd.Series, end: pd.Series) -> Interval:
    """``effective[x]`` / ``performed[x]`` ``.toInterval()``. The tidy tables keep a dateTime
    in the start column with no end, so a start without an end is a point in time; an
    end is a Period's end."""
    s, e = ts(start), ts(end)
    return fhir_period(pd.Series(s), pd.Series(np.where(np.isnat(e), s, e)))


def within(values: np.ndarray, start: np.datetime64, end_excl: np.datetime64) -> np.ndarray:
    return (values >= start) & (values < end_excl)


def prevalence(conditions: pd.DataFrame) -> Interval:
    """QICoreCommon ``prevalenceInterval()``: ``[onset, abatement]``; no onset is the beginning
    of time; an active (recurrence, relapse) condition without abatement lasts to the end
    of time; any other condition without abatement has NO interval (the CQL query over a
    null abatement returns null), so it never overlaps or starts anywhere."""
    onset, abatement = ts(conditions["onset_at"]), ts(conditions["abatement_at"])
    active = isin(conditions["clinical_status"], ACTIVE_LIKE)
    exists = active | ~np.isnat(abatement)
    lo = np.where(exists, np.where(np.isnat(onset), BEGINNING, onset), np.datetime64("NaT", "us"))
    hi = np.where(active & np.isnat(abatement), END_OF_TIME, abatement)
    return Interval(lo, lo, hi, hi)


def point_end(start: pd.Series, end: pd.Series) -> pd.Series:
    """End of ``performed.toInterval()`` / ``effective``: a dateTime is a point, so its end
    is its start; a Period's end otherwise."""
    return end.where(end.notna(), start)


__all__ = ["ACTIVE_LIKE", "BEGINNING", "END_OF_TIME", "US", "Interval", "bounds", "fhir_period", "point_end",
           "prevalence", "timing", "within"]  # fmt: skip
