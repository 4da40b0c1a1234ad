"""From subject rows to one result row per facility x stratum: counts, score, CI, status.

Scores (eCQM measure scoring, FHIR MeasureReport ``measureScore``):

* proportion: (numerator - numerator exclusions) / (denominator - denominator
  exclusions), as a fraction 0..1; the report multiplies by ``multiplier`` (100) to
  show a percentage. Wilson 95% interval.
* ratio: sum of ``numerator_events`` over numerator subjects not excluded, divided by
  the summed ``denominator_value`` (exposure, e.g. patient-days) of denominator subjects
  not excluded, times ``multiplier`` (per 1,000). Garwood exact Poisson interval.
* continuous: median or mean of ``observation`` over the measure population minus its
  exclusions (stored in the ``denominator`` / ``denominator_exclusion`` columns).
  Order-statistic interval for the median, Student-t for the mean.

A zero denominator gives a NaN score and status ``grey``. Subjects without a facility
are kept under facility ``unknown`` (and a missing stratum value under ``unknown``), so
every subject is counted in exactly one row of each breakdown.

The interval and status functions come from :mod:`pipelines.analyse` (pure statistics,
no dependency back on compute).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.analyse.intervals import grouped_mean, grouped_median, grouped_quantile, poisson_rate, wilson
from pipelines.analyse.status import rag_status
from pipelines.compute import model as m
from pipelines.compute.dates import DEFAULT_CALENDARS
from pipelines.compute.engine import evaluate
from pipelines.compute.valuesets import ValueSetIndex
from pipelines.tables import (
    ALL_FACILITIES,
    FINAL,
    INDICATOR_RESULTS,
    INDICATOR_SUBJECTS,
    OVERALL,
    POPULATIONS,
    PROVISIONAL,
)
from pipelines.workdays import WorkingCalendars

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
_KEYS = ["facility_id", "stratifier", "stratum"]


def _typed(df: pd.DataFrame, spec_dtypes: Mapping[str, str], columns: Sequence[str]) -> pd.DataFrame:
    return (
        pd.DataFrame({c: df[c].astype(spec_dtypes[c]) for c in columns})
        if len(df)
        else pd.DataFrame({c: pd.Series(dtype=spec_dtypes[c]) for c in columns})
    )


def _long(indicator: m.Indicator, s: pd.DataFrame) -> pd.DataFrame:
    """One row per subject x (facility level) x (stratification) it belongs to."""
    b = {p: s[p].fillna(False).to_numpy(dtype=bool) for p in POPULATIONS}
    counted = b["denominator"] & ~b["denominator_exclusion"]
    values = pd.DataFrame({p: b[p].astype(np.int64) for p in POPULATIONS})
    censored = s["censored"] if "censored" in s.columns else pd.Series(False, index=s.index)
    values["censored"] = censored.fillna(False).to_numpy(dtype=bool).astype(np.int64)
    if indicator.scoring is m.Scoring.RATIO:
        scored = b["numerator"] & ~b["numerator_exclusion"]
        values["events"] = np.where(scored, s["numerator_events"].to_numpy(dtype=np.float64, na_value=0.0), 0.0)
        values["exposure"] = np.where(counted, s["denominator_value"].to_numpy(dtype=np.float64, na_value=0.0), 0.0)
    if indicator.scoring is m.Scoring.CONTINUOUS:
        values["observation"] = np.where(counted, s["observation"].to_numpy(dtype=np.float64, na_value=np.nan), np.nan)
    facility = s["facility_id"].astype("string").fillna(UNKNOWN).to_numpy(dtype=object)
    levels = [np.full(len(s), ALL_FACILITIES, dtype=object), facility]
    strata = [(OVERALL[0], np.full(len(s), OVERALL[1], dtype=object))]
    strata += [
        (name, s[name].astype("string").fillna(UNKNOWN).to_numpy(dtype=object)) for name in indicator.stratifiers
    ]
    parts = []
    for fac in levels:
        for name, stratum in strata:
            part = values.copy()
            part["facility_id"], part["stratifier"], part["stratum"] = fac, name, stratum
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def scored_counts(indicator: m.Indicator, row: Mapping[str, object]) -> tuple[float, float]:
    """What one results row's score is a ratio of: (numerator - numerator exclusions,
    denominator - denominator exclusions) for a proportion, (events, exposure) for a
    ratio. Missing counts read as 0; SPC limits and funnel plots take them from here."""

    def count(name: str) -> float:
        value = row.get(name)
        try:
            f = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 0.0
        return 0.0 if np.isnan(f) else f

    if indicator.scoring is m.Scoring.RATIO:
        return count("numerator_events"), count("denominator_value")
    return count("numerator") - count("numerator_exclusion"), count("denominator") - count("denominator_exclusion")


def aggregate(indicator: m.Indicator, subjects: pd.DataFrame, period: str) -> pd.DataFrame:
    """``INDICATOR_RESULTS`` rows for one indicator and period (see module docstring)."""
    label = m.Period.parse(period).label
    s = subjects
    if "indicator_id" in s.columns and len(s):
        s = s[(s["indicator_id"] == indicator.id) & (s["period"] == label)]
    s = s.reset_index(drop=True)
    long = _long(indicator, s)
    if long.empty:  # still report the system-wide row: no data is a result (grey)
        long = pd.DataFrame(
            {
                **{p: [0] for p in POPULATIONS},
                "censored": [0],
                "facility_id": [ALL_FACILITIES],
                "stratifier": [OVERALL[0]],
                "stratum": [OVERALL[1]],
                "events": [0.0],
                "exposure": [0.0],
                "observation": [np.nan],
            }
        )
    grouped = long.groupby(_KEYS, sort=False)
    codes = grouped.ngroup().to_numpy()
    sums = [c for c in long.columns if c in (*POPULATIONS, "censored", "events", "exposure")]
    res = grouped[sums].sum().reset_index()
    n = len(res)
    out = res[_KEYS].copy()
    for p in POPULATIONS:
        out[p] = res[p].astype("Int64")
    out["numerator_events"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["denominator_value"] = pd.Series(np.nan, index=out.index, dtype="Float64")

    if indicator.scoring is m.Scoring.PROPORTION:
        x = (res["numerator"] - res["numerator_exclusion"]).to_numpy(dtype=np.float64)
        d = (res["denominator"] - res["denominator_exclusion"]).to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(d > 0, x / d, np.nan)
        low, high = wilson(x, d)
    elif indicator.scoring is m.Scoring.RATIO:
        events = res["events"].to_numpy(dtype=np.float64)
        exposure = res["exposure"].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(exposure > 0, events / exposure * indicator.multiplier, np.nan)
        low, high = poisson_rate(events, exposure, indicator.multiplier)
        out["numerator_events"] = pd.array(np.round(events).astype(np.int64), dtype="Int64")
        out["denominator_value"] = pd.array(exposure, dtype="Float64")
    else:
        obs = long["observation"].to_numpy(dtype=np.float64)
        if indicator.aggregate is m.Aggregate.MEDIAN:
            score, low, high = grouped_median(obs, codes, n)
        elif indicator.aggregate is m.Aggregate.P90:
            score, low, high = grouped_quantile(obs, codes, n, 0.9)
        else:
            score, low, high = grouped_mean(obs, codes, n)

    out["measure_score"] = pd.array(score, dtype="Float64")
    out["ci_low"] = pd.array(np.where(np.isnan(score), np.nan, low), dtype="Float64")
    out["ci_high"] = pd.array(np.where(np.isnan(score), np.nan, high), dtype="Float64")
    out["target"] = pd.array(np.full(n, indicator.target), dtype="Float64")
    out["status"] = rag_status(score, low, high, indicator.target, indicator.improvement.value)
    out["censored"] = res["censored"].astype("Int64")
    censored = res["censored"].to_numpy(dtype=np.int64)
    waiting = censored > 0
    out["state"] = np.where(waiting, PROVISIONAL, FINAL)
    follow = indicator.follow_up
    out["state_reason"] = pd.array(
        [
            f"{n:,} case{'s' if n != 1 else ''} within their {follow.days} {follow.by.value}-day follow-up"
            if follow is not None and n
            else None
            for n in censored
        ],
        dtype="string",
    )
    out.loc[waiting, "status"] = None  # shown, not graded
    out["indicator_id"] = indicator.id
    out["period"] = label

    order = {name: i for i, name in enumerate([OVERALL[0], *indicator.stratifiers])}
    out = out.assign(
        _fac=(out["facility_id"] != ALL_FACILITIES).astype(int),
        _strat=out["stratifier"].map(order),
    ).sort_values(["_fac", "facility_id", "_strat", "stratum"], kind="stable")
    return _typed(out.reset_index(drop=True), INDICATOR_RESULTS.dtypes, INDICATOR_RESULTS.column_names)


def subjects_of(
    indicators: Sequence[m.Indicator],
    data: Mapping[str, pd.DataFrame],
    period: str,
    valuesets: ValueSetIndex,
    *,
    data_end: pd.Timestamp | None = None,
    calendars: WorkingCalendars = DEFAULT_CALENDARS,
) -> pd.DataFrame:
    """Per-subject rows of every indicator in one month, typed as INDICATOR_SUBJECTS;
    ``data_end`` censors subjects whose deadline had not passed (see
    :func:`engine.evaluate`), counted in ``calendars``' working days. ``data`` may be
    one patient shard: nothing here joins across patients."""
    parts = [
        evaluate(indicator, data, period, valuesets, data_end=data_end, calendars=calendars) for indicator in indicators
    ]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return _typed(frame, INDICATOR_SUBJECTS.dtypes, INDICATOR_SUBJECTS.column_names)


def in_subject_order(subjects: pd.DataFrame) -> pd.DataFrame:
    """Subject rows in one canonical order (indicator, subject): rows evaluated shard by
    shard, in any shard count, then aggregate to the same floating-point sums."""
    return subjects.sort_values(["indicator_id", "subject_id"], kind="stable").reset_index(drop=True)


def results_of(indicators: Sequence[m.Indicator], subjects: pd.DataFrame, period: str) -> pd.DataFrame:
    """Result rows of every indicator from the subject rows of the whole system (counts
    add up; medians and means come from the combined per-subject values)."""
    ordered = in_subject_order(subjects)
    parts = [aggregate(indicator, ordered, period) for indicator in indicators]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return _typed(frame, INDICATOR_RESULTS.dtypes, INDICATOR_RESULTS.column_names)


def compute_period(
    indicators: Sequence[m.Indicator],
    data: Mapping[str, pd.DataFrame],
    period: str,
    valuesets: ValueSetIndex,
    *,
    data_end: pd.Timestamp | None = None,
    calendars: WorkingCalendars = DEFAULT_CALENDARS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(subjects, results) for every indicator in one month, all data at once."""
    subjects = in_subject_order(
        subjects_of(indicators, data, period, valuesets, data_end=data_end, calendars=calendars)
    )
    return subjects, results_of(indicators, subjects, period)


__all__ = [
    "UNKNOWN",
    "aggregate",
    "compute_period",
    "in_subject_order",
    "results_of",
    "scored_counts",
    "subjects_of",
]
