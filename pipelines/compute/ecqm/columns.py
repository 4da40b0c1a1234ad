"""Vectorised column helpers every eCQM uses: timestamps, days, membership, per-row hits.

CQL's three-valued logic collapses to false here: a comparison with a missing value is
not met, so every helper returns plain booleans with nulls as False.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.compute.dates import timestamps as ts
from pipelines.strings import arrow_strings, isin

US = "datetime64[us]"
DAY = np.timedelta64(1, "D")
HOUR = np.timedelta64(1, "h")


def days(values: pd.Series | np.ndarray) -> np.ndarray:
    """The calendar day of each timestamp (the facility's local day), NaT where missing."""
    return ts(values).astype("datetime64[D]")


def strs(s: pd.Series) -> pd.Series:
    return s.astype("string")


def eq(s: pd.Series, value: str) -> np.ndarray:
    """Rows equal to ``value`` (a missing value is not)."""
    hit = pc.equal(arrow_strings(s), pa.scalar(value, pa.large_string()))
    return np.array(hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def true(s: pd.Series) -> np.ndarray:
    return s.astype("boolean").to_numpy(dtype=bool, na_value=False)


def any_per_row(n: int, rows: np.ndarray) -> np.ndarray:
    """True at the given row positions (each subject that has at least one hit)."""
    out = np.zeros(n, dtype=bool)
    out[np.asarray(rows, dtype=np.int64)] = True
    return out


def refine(mask: np.ndarray, frame: pd.DataFrame, test: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
    """``mask & test(frame)``, with ``test`` asked only of the rows ``mask`` keeps: a costly
    criterion (a join, an age) after a cheap one (a status, a retrieve already indexed)."""
    out = np.array(mask, dtype=bool)
    if out.any():
        out[out] = np.asarray(test(frame[out].reset_index(drop=True)), dtype=bool)
    return out


def events(frame: pd.DataFrame, mask: np.ndarray, at: pd.Series | np.ndarray) -> pd.DataFrame:
    """``patient_id`` and the ``day`` of each selected record (for :func:`window_hits`);
    only the selected rows are read."""
    rows = np.flatnonzero(mask)
    return pd.DataFrame(
        {"patient_id": frame["patient_id"].iloc[rows].to_numpy(), "day": days(pd.Series(at).iloc[rows])}
    )


def window_hits(stays: pd.DataFrame, found: pd.DataFrame, lo: str, hi: str) -> np.ndarray:
    """Per stay: some event of the same patient falls on a calendar day in [lo, hi].

    ``found`` has ``patient_id`` and ``day`` (datetime64[D]); ``lo``/``hi`` are day columns
    of ``stays``. This is CQL's ``X during day of Interval[lo, hi]`` for every pair at once.
    """
    n = len(stays)
    ev = found[["patient_id", "day"]]
    ev = ev[~np.isnat(ev["day"].to_numpy(dtype="datetime64[D]"))]
    if n == 0 or ev.empty:
        return np.zeros(n, dtype=bool)
    left = pd.DataFrame(
        {"__row": np.arange(n), "patient_id": stays["patient_id"].to_numpy(), "lo": stays[lo], "hi": stays[hi]}
    )
    m = left.merge(ev, on="patient_id", how="inner")
    day = m["day"].to_numpy(dtype="datetime64[D]")
    ok = (day >= m["lo"].to_numpy(dtype="datetime64[D]")) & (day <= m["hi"].to_numpy(dtype="datetime64[D]"))
    return any_per_row(n, m["__row"].to_numpy()[ok])


def patients_with(subjects: pd.DataFrame, patient_ids: pd.Series) -> np.ndarray:
    """Patient-based measures: subjects whose patient has at least one of the records."""
    return isin(subjects["patient_id"], strs(patient_ids).dropna().unique())


__all__ = [
    "DAY",
    "HOUR",
    "US",
    "any_per_row",
    "days",
    "eq",
    "events",
    "patients_with",
    "refine",
    "strs",
    "true",
    "ts",
    "window_hits",
]
