"""Patient factors for risk adjustment, from what the warehouse holds for every stay.

Case mix is why crude outcome rates mislead: a hospital that admits older, sicker
patients as emergencies has more readmissions for reasons that are not its care. The
factors are the ones HSMR/SHMI-style models use and the warehouse can always derive:

* ``age_band`` at admission (bands of the NHS Digital SHMI specification: under 18,
  18-44, 45-64, 65-74, 75-84, 85 and over);
* ``sex`` (administrative gender as recorded);
* ``comorbidity_band``: distinct diagnoses on the patient's record before the stay
  ended (a count, the simplest comorbidity burden measure; 0, 1, 2-3, 4+), standing in
  for a Charlson index when the coding does not support one;
* ``admission_type``: emergency, urgent or elective (Encounter.priority);
* ``service``: the specialty that cared for the patient.

Pure: frames in, a frame out, population at once. :func:`case_mix_by_shard` takes the
same frames one patient shard at a time, so a million-patient system's history never has
to be in memory at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

import numpy as np
import pandas as pd

from pipelines.strings import isin

AGE_BANDS = ((0, "0-17"), (18, "18-44"), (45, "45-64"), (65, "65-74"), (75, "75-84"), (85, "85+"))
COMORBIDITY_BANDS = ((0, "0"), (1, "1"), (2, "2-3"), (4, "4+"))
ADMISSION_TYPES = {"EM": "emergency", "UR": "urgent", "EL": "elective"}
UNKNOWN = "unknown"

K = TypeVar("K", bound=Hashable)


def _band(values: pd.Series, bands: tuple[tuple[int, str], ...]) -> pd.Series:
    v = values.to_numpy(dtype=np.float64, na_value=np.nan)
    edges = np.array([b for b, _ in bands], dtype=np.float64)
    idx = np.searchsorted(edges, v, side="right") - 1
    labels = np.array([label for _, label in bands], dtype=object)
    out = np.where(np.isnan(v) | (idx < 0), UNKNOWN, labels[np.clip(idx, 0, len(labels) - 1)])
    return pd.Series(out, index=values.index, dtype="string")


def case_mix(
    subjects: pd.DataFrame, encounters: pd.DataFrame, patients: pd.DataFrame, conditions: pd.DataFrame
) -> pd.DataFrame:
    """One row per subject (an encounter): ``subject_id`` and the five factors.

    Needs ``subjects[subject_id, service]``, ``encounters[encounter_id, patient_id,
    start_at, end_at, priority]``, ``patients[patient_id, birth_date, gender]`` and
    ``conditions[patient_id, code, onset_at, recorded_at]``."""
    enc = encounters[["encounter_id", "patient_id", "start_at", "end_at", "priority"]].drop_duplicates("encounter_id")
    s = subjects[["subject_id", "service"]].merge(enc, left_on="subject_id", right_on="encounter_id", how="left")
    pat = patients[["patient_id", "birth_date", "gender"]].drop_duplicates("patient_id")
    s = s.merge(pat, on="patient_id", how="left")
    start = pd.to_datetime(s["start_at"])
    birth = pd.to_datetime(s["birth_date"])
    age = (start.dt.year - birth.dt.year) - (
        (start.dt.month < birth.dt.month) | ((start.dt.month == birth.dt.month) & (start.dt.day < birth.dt.day))
    ).astype("Int64")
    cond = conditions[["patient_id", "code", "onset_at", "recorded_at"]].dropna(subset=["patient_id", "code"])
    when = pd.to_datetime(cond["onset_at"]).fillna(pd.to_datetime(cond["recorded_at"]))
    cond = cond.assign(when=when)
    pairs = s[["subject_id", "patient_id", "end_at"]].dropna(subset=["patient_id"]).merge(cond, on="patient_id")
    before = pairs[pairs["when"].isna() | (pairs["when"] <= pd.to_datetime(pairs["end_at"]))]
    counts = before.drop_duplicates(["subject_id", "code"]).groupby("subject_id").size()
    comorbid = s["subject_id"].map(counts).fillna(0)
    return pd.DataFrame(
        {
            "subject_id": s["subject_id"].astype("string"),
            "age_band": _band(age.astype("Float64"), AGE_BANDS).to_numpy(),
            "sex": s["gender"].astype("string").str.lower().fillna(UNKNOWN).to_numpy(),
            "comorbidity_band": _band(comorbid.astype("Float64"), COMORBIDITY_BANDS).to_numpy(),
            "admission_type": s["priority"]
            .astype("string")
            .str.upper()
            .map(ADMISSION_TYPES)
            .fillna(UNKNOWN)
            .to_numpy(),
            "service": s["service"].astype("string").fillna(UNKNOWN).to_numpy(),
        }
    )


def case_mix_by_shard(
    subjects: Mapping[K, pd.DataFrame], shards: Iterable[Mapping[str, pd.DataFrame]]
) -> dict[K, pd.DataFrame]:
    """:func:`case_mix` of each subject set, the records read one patient shard at a time.

    A subject's factors come from its encounter, that encounter's patient and the
    patient's conditions, which all sit in the patient's shard
    (:mod:`pipelines.load.shards`). So each subject is scored against the shard holding
    its encounter, and the rows are put back in the subjects' order: the result equals
    :func:`case_mix` over the whole system, row for row, while memory holds one shard's
    records (plus the subjects) at a time. A subject whose encounter is in no shard
    gets what :func:`case_mix` gives it: unknown factors. ``shards`` yields mappings
    with ``encounters``, ``patients`` and ``conditions``; it is read once.
    """
    pending = {key: np.ones(len(s), dtype=bool) for key, s in subjects.items()}
    parts: dict[K, list[pd.DataFrame]] = {key: [] for key in subjects}
    empty: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None
    for shard in shards:
        encounters, patients, conditions = shard["encounters"], shard["patients"], shard["conditions"]
        if empty is None:
            empty = (encounters.iloc[:0], patients.iloc[:0], conditions.iloc[:0])
        held = encounters["encounter_id"]
        for key, s in subjects.items():
            # Arrow's hash lookup: pandas' isin boxes every id of the shard (35 s of the
            # report at 250,000 patients)
            hit = pending[key] & isin(s["subject_id"], held)
            if hit.any():
                part = case_mix(s[hit], encounters, patients, conditions)
                part.index = np.flatnonzero(hit)
                parts[key].append(part)
                pending[key] &= ~hit
    if empty is None:
        raise ValueError("case_mix_by_shard needs at least one shard")
    out: dict[K, pd.DataFrame] = {}
    for key, s in subjects.items():
        rest = pending[key]
        if rest.any() or not parts[key]:
            part = case_mix(s[rest], *empty)
            part.index = np.flatnonzero(rest)
            parts[key].append(part)
        out[key] = pd.concat(parts[key]).sort_index().reset_index(drop=True)
    return out


__all__ = ["ADMISSION_TYPES", "AGE_BANDS", "COMORBIDITY_BANDS", "case_mix", "case_mix_by_shard"]
