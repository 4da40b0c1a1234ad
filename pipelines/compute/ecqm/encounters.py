"""Encounters as CQMCommon sees them: inpatient encounters, the hospitalization that
includes an immediately prior observation stay and emergency visit, and ages."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from pipelines.compute.dates import completed_years
from pipelines.compute.ecqm.columns import HOUR, eq, strs, ts
from pipelines.compute.ecqm.retrieve import Retrieve
from pipelines.compute.model import Period
from pipelines.strings import isin

#: ``encounter_diagnoses.element`` of the rows that carry Encounter.reasonReference.
REASON_REFERENCE = "reasonReference"


def of_type(encounters: pd.DataFrame, r: Retrieve, name: str) -> np.ndarray:
    """Encounters whose Encounter.type has a coding in the value set (the retrieve's code path)."""
    return r.in_valueset(encounters, "encounters", name)


def inpatient_encounter(subjects: pd.DataFrame, r: Retrieve, period: Period) -> np.ndarray:
    """CQMCommon "Inpatient Encounter": type in Encounter Inpatient, finished, ending in the period."""
    end = ts(subjects["end_at"])
    lo, hi = (np.datetime64(t.to_datetime64(), "us") for t in (period.start, period.end))
    return eq(subjects["status"], "finished") & of_type(subjects, r, "Encounter Inpatient") & (end >= lo) & (end < hi)


def age_at_start(subjects: pd.DataFrame, r: Retrieve) -> np.ndarray:
    """CQL ``AgeInYearsAt(date from start of Encounter.period)``: completed years on the day
    the encounter starts; NaN when the birth date or the start is unknown."""
    birth = r.lookup("patients", subjects["patient_id"], "birth_date")
    start = pd.Series(ts(subjects["start_at"])).dt.normalize()
    return completed_years(birth, start)


def adult_at_start(subjects: pd.DataFrame, r: Retrieve, years: int = 18) -> np.ndarray:
    """Aged ``years`` or over on the day the encounter starts (an unknown age is not)."""
    return np.nan_to_num(age_at_start(subjects, r), nan=-1.0) >= years


def encounter_diagnosis(stays: pd.DataFrame, r: Retrieve, names: Iterable[str]) -> np.ndarray:
    """CQMCommon 4.1 ``encounterDiagnosis()`` in the value sets: an Encounter.reasonCode,
    or a Condition the encounter names in Encounter.reasonReference, coded in one of
    ``names``. Only reasonReference counts: the CQL follows neither Encounter.diagnosis nor
    Condition.encounter."""
    names = tuple(names)
    by_code = isin(stays["encounter_id"], r.keys_in("encounters", "reason", names))
    links = r.table("encounter_diagnoses")
    links = links[eq(links["element"], REASON_REFERENCE)]
    links = links[isin(links["condition_id"], r.ids_in("conditions", names))]
    return by_code | isin(stays["encounter_id"], strs(links["encounter_id"]))


def age_at_end(subjects: pd.DataFrame, period: Period) -> np.ndarray:
    """Patient-based measures: ``AgeInYearsAt(date from end of "Measurement Period")`` from
    the subject's own birth date; NaN without one."""
    birth = pd.Series(ts(subjects["birth_date"]))
    last_day = pd.Series(period.end - pd.Timedelta(days=1), index=birth.index)
    return completed_years(birth, last_day)


def _prior_visit_start(stays: pd.DataFrame, anchor: np.ndarray, visits: pd.DataFrame) -> np.ndarray:
    """Start of the latest-ending visit that ends 1 hour or less on or before ``anchor``.

    CQMCommon ``hospitalizationWithObservation``: ``Last(... ends 1 hour or less on or before
    start ... sort by end of period)``; NaT where there is none (or its start is unknown).
    """
    n = len(stays)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    if n == 0 or visits.empty:
        return out
    left = pd.DataFrame({"__row": np.arange(n), "patient_id": stays["patient_id"].to_numpy(), "anchor": anchor})
    m = left.merge(visits[["patient_id", "start_at", "end_at"]], on="patient_id", how="inner")
    end, anc = ts(m["end_at"]), m["anchor"].to_numpy(dtype="datetime64[us]")
    ok = (end <= anc) & (end >= anc - HOUR)
    m = m[ok]
    if m.empty:
        return out
    last = m.sort_values(["__row", "end_at"], kind="stable").drop_duplicates("__row", keep="last")
    out[last["__row"].to_numpy()] = ts(last["start_at"])
    return out


def hospitalization_start(stays: pd.DataFrame, r: Retrieve) -> np.ndarray:
    """Start of CQMCommon ``hospitalizationWithObservation()``: the start of an emergency
    department visit ending <= 1 hour before the (observation stay before the) encounter,
    else of an observation stay ending <= 1 hour before it, else of the encounter itself.
    The hospitalization ends when the encounter does. Each encounter's is found once per
    evaluation, whichever populations ask (``stays`` has ``encounter_id``)."""
    return r.per_record("hospitalization_start", stays, "encounter_id", lambda s: _hospitalization_start(s, r))


def _hospitalization_start(stays: pd.DataFrame, r: Retrieve) -> np.ndarray:
    enc = r.table("encounters")
    finished = eq(enc["status"], "finished")
    visit = ["patient_id", "start_at", "end_at"]
    obs = enc.loc[finished & of_type(enc, r, "Observation Services"), visit]
    ed = enc.loc[finished & of_type(enc, r, "Emergency Department Visit"), visit]
    start = ts(stays["start_at"])
    obs_start = _prior_visit_start(stays, start, obs)
    visit_start = np.where(np.isnat(obs_start), start, obs_start)
    ed_start = _prior_visit_start(stays, visit_start, ed)
    return np.where(np.isnat(ed_start), visit_start, ed_start)


__all__ = [
    "REASON_REFERENCE",
    "adult_at_start",
    "age_at_end",
    "age_at_start",
    "encounter_diagnosis",
    "hospitalization_start",
    "inpatient_encounter",
    "of_type",
]
