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

Pure: frames in, a frame out, population at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AGE_BANDS = ((0, "0-17"), (18, "18-44"), (45, "45-64"), (65, "65-74"), (75, "75-84"), (85, "85+"))
COMORBIDITY_BANDS = ((0, "0"), (1, "1"), (2, "2-3"), (4, "4+"))
ADMISSION_TYPES = {"EM": "emergency", "UR": "urgent", "EL": "elective"}
UNKNOWN = "unknown"


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


__all__ = ["ADMISSION_TYPES", "AGE_BANDS", "COMORBIDITY_BANDS", "case_mix"]
