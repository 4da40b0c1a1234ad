"""The rows a regulator export is built from: one reporting period, aggregates only.

A period is a month, a calendar quarter or a calendar year
(:class:`~pipelines.periods.MeasurementPeriod`). Each row is completed with what its
score is made of (:func:`score_counts`), so a regulator can recompute every score.

Exports start from ``indicator_results`` (never from ``indicator_subjects``) and keep
only the contract's aggregate columns, so record ids, patient ids or free text that a
caller may have left on the frame cannot reach a file. Stratifiers whose name says
they are identifiers are refused outright: a "stratum" per patient would be a
patient list in disguise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from pipelines.compute.model import Indicator
from pipelines.errors import ExportError
from pipelines.periods import MeasurementPeriod
from pipelines.tables import ALL_FACILITIES, FINAL, INDICATOR_RESULTS, OVERALL, POPULATIONS, STATES

SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Column / stratifier names that would identify a person or a record.
IDENTIFYING = frozenset(
    {
        "subject_id",
        "patient_id",
        "encounter_id",
        "response_id",
        "complaint_id",
        "adverse_event_id",
        "condition_id",
        "procedure_id",
        "medication_id",
        "observation_id",
        "record_id",
        "comment",
        "description",
        "complainant_id",
        "payload",
        "birth_date",
        "name",
    }
)
KEY = ["indicator_id", "facility_id", "stratifier", "stratum"]
AGGREGATE_COLUMNS = [c.name for c in INDICATOR_RESULTS.columns]


def indicator_index(indicators: Sequence[Indicator]) -> dict[str, Indicator]:
    """The indicators by id; an id that cannot name a file or a FHIR resource is refused."""
    out: dict[str, Indicator] = {}
    for ind in indicators:
        if not SAFE_ID_RE.match(ind.id):
            raise ExportError(f"indicator id {ind.id!r} is not usable in a file name or FHIR id ([A-Za-z0-9._-])")
        out[ind.id] = ind
    return out


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable order: indicator, then the system row, then facilities; within each the
    unstratified row first, then stratifiers and strata alphabetically."""
    keys = pd.DataFrame(
        {
            "i": frame["indicator_id"],
            "f0": frame["facility_id"] != ALL_FACILITIES,
            "f": frame["facility_id"],
            "s0": frame["stratifier"] != OVERALL[0],
            "s": frame["stratifier"],
            "t": frame["stratum"],
        }
    )
    order = keys.sort_values(list(keys.columns), kind="mergesort").index
    return frame.loc[order].reset_index(drop=True)


def score_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``scoring`` set, plus what each row's score is made of:
    proportion - performance numerator (numerator - exclusions) and denominator
    (denominator - exclusions); ratio - events and exposure (``numerator_events``,
    ``denominator_value``); continuous - the observation count (measure population -
    exclusions). Counts that do not apply to a scoring stay missing."""
    out = frame.copy()
    kind = out["scoring"].astype(str)
    prop, ratio, cont = kind == "proportion", kind == "ratio", kind == "continuous"
    na = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["performance_numerator"] = (out["numerator"] - out["numerator_exclusion"]).where(prop, na)
    out["performance_denominator"] = (out["denominator"] - out["denominator_exclusion"]).where(prop, na)
    out["events"] = out["numerator_events"].where(ratio, na)
    out["exposure"] = out["denominator_value"].where(ratio, pd.NA)
    out["observations"] = (out["denominator"] - out["denominator_exclusion"]).where(cont, na)
    return out


def period_results(results: pd.DataFrame, indicators: Sequence[Indicator], period: str) -> pd.DataFrame:
    """The reporting period's aggregate rows, typed, checked, completed with their
    score counts (:func:`score_counts`) and sorted."""
    period = MeasurementPeriod.parse(period).label
    index = indicator_index(indicators)
    optional = ("numerator_events", "denominator_value", "censored", "state", "state_reason")
    missing = [c for c in AGGREGATE_COLUMNS if c not in results.columns and c not in optional]
    if missing:
        raise ExportError(f"indicator results lack column(s) {', '.join(missing)}")
    frame = results[results["period"].astype("string") == period].copy()
    for col in AGGREGATE_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.NA
    frame = frame[AGGREGATE_COLUMNS]
    for col in ("indicator_id", "period", "facility_id", "stratifier", "stratum", "status", "state", "state_reason"):
        frame[col] = frame[col].astype("string")
    frame["state"] = frame["state"].fillna(FINAL)
    unknown_states = sorted(set(frame["state"]) - set(STATES))
    if unknown_states:
        raise ExportError(f"indicator results hold unknown state(s) {unknown_states}; expected {', '.join(STATES)}")
    for col in POPULATIONS:
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any() or (values < 0).any():
            raise ExportError(f"indicator results: {col} must be a non-negative count in every row")
        frame[col] = values.astype("Int64")
    for col in ("numerator_events", "censored"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    for col in ("denominator_value", "measure_score", "ci_low", "ci_high", "target"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Float64")
    unknown = sorted(set(frame["indicator_id"].dropna()) - set(index))
    if unknown:
        raise ExportError(f"results hold indicator(s) with no definition: {', '.join(unknown)}")
    bad = sorted(set(frame["stratifier"].dropna().str.lower()) & IDENTIFYING)
    if bad:
        raise ExportError(f"refusing to export strata by identifying field(s): {', '.join(bad)}")
    if frame[KEY].isna().any().any():
        raise ExportError("indicator results have rows with a missing indicator, facility or stratum")
    dup = frame.duplicated(KEY)
    if dup.any():
        raise ExportError(f"indicator results hold {int(dup.sum())} duplicate row(s) for {period}")
    frame["scoring"] = frame["indicator_id"].map({i: index[i].scoring.value for i in index}).astype("string")
    return sort_rows(score_counts(frame))


__all__ = ["IDENTIFYING", "KEY", "indicator_index", "period_results", "score_counts", "sort_rows"]
