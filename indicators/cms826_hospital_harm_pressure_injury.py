"""CMS826 Hospital Harm - Pressure Injury (eCQM 0.3.000, QI-Core 6): population functions.

Encounter-based proportion measure. The logic follows the published CQL
(cqframework/ecqm-content-qicore-2025, ``CMS826FHIRHHPI.cql`` with ``CQMCommon`` 4.1.000);
it is re-expressed here as vectorised pandas over the tidy tables, never copied.

The eCQM building blocks it shares with CMS1017 (coding lookup, hospitalization with
observation and ED, claim diagnoses with POA) are in :mod:`pipelines.compute.cql_blocks`, which
also documents the timestamp, coding and claim-link conventions.

Choices the tidy tables force, documented once here:

* Timestamps are the facility's local wall-clock time (UTC unless configured). CQL takes
  ``date from`` in the value's own offset; the CMS test decks use ``+00:00`` throughout
  and are read in UTC. Age is whole years from the birth date to the local date on which
  the encounter starts.
* "ends during day of Measurement Period" is ``period.start <= end_at < period.end``.
* A CodeableConcept is in a value set when ANY of its codings is (``codings`` table), with
  the record's first coding as a fallback for frames that carry no ``codings`` rows.
* ``claim_diagnoses.encounter_id`` links a Claim.diagnosis to the encounter of the claim
  item that points at it (else the claim's first item); CQL keeps a diagnosis whose
  sequence is in ``diagnosisSequence`` of an item referencing the encounter. The two agree
  unless a claim lists diagnoses that no item points at.
* Claim.diagnosis.onAdmission is matched against the POA value sets with the CMS POA code
  system (``tables.POA_SYSTEM``), the only system those value sets contain.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.compute.cql_blocks import (
    EMERGENCY_DEPARTMENT_VISIT,
    ENCOUNTER_INPATIENT,
    FINAL_STATUSES,
    OBSERVATION_SERVICES,
    POA_NO,
    POA_YES,
    VS,
    age_at_start,
    any_per_subject,
    diagnosis_present_on_admission,
    hospitalization_start,
    ids_in_valueset,
    inpatient_encounter,
    record_codes,
    require_valuesets,
    table,
)
from pipelines.compute.model import Period
from pipelines.compute.valuesets import ValueSetIndex

DEEP_TISSUE_DIAGNOSES = VS + "2.16.840.1.113762.1.4.1147.194"
STAGE_2_4_UNSTAGEABLE_DIAGNOSES = VS + "2.16.840.1.113762.1.4.1147.196"
STAGE_2_4_UNSTAGEABLE_FINDINGS = VS + "2.16.840.1.113762.1.4.1147.113"

#: Every value set the population functions use, by CQL name (the YAML lists the same).
VALUESETS: dict[str, str] = {
    "Encounter Inpatient": ENCOUNTER_INPATIENT,
    "Emergency Department Visit": EMERGENCY_DEPARTMENT_VISIT,
    "Observation Services": OBSERVATION_SERVICES,
    "Present on Admission or Clinically Undetermined": POA_YES,
    "Not Present On Admission or Documentation Insufficient to Determine": POA_NO,
    "Pressure Injury Deep Tissue Diagnoses": DEEP_TISSUE_DIAGNOSES,
    "Pressure Injury Stage 2, 3, 4, or Unstageable Diagnoses": STAGE_2_4_UNSTAGEABLE_DIAGNOSES,
    "Pressure Injury Stage 2, 3, 4 or Unstageable": STAGE_2_4_UNSTAGEABLE_FINDINGS,
}

LOINC = "http://loinc.org"
SKIN_FINDINGS = "8709-8"  # LOINC Physical findings of Skin


def skin_exams_with_pressure_injury(
    data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> pd.DataFrame:
    """Observations "Physical findings of Skin" (LOINC 8709-8), final/amended/corrected, effective
    during the measurement period, whose value is a stage 2, 3, 4 or unstageable pressure injury.
    Returns patient_id and ``exam_start`` (start of the effective time)."""
    obs = table(data, "observations")
    code_ids = record_codes(data, "observations", elements=("code",))
    is_skin = code_ids["system"].eq(LOINC) & code_ids["code"].eq(SKIN_FINDINGS)
    skin_ids = code_ids.loc[is_skin.fillna(False).to_numpy(dtype=bool), "record_id"]
    value_codes = record_codes(data, "observations", elements=("value", "valueCodeableConcept"), first=None)
    value_hit = pd.Index(ids_in_valueset(value_codes, valuesets, STAGE_2_4_UNSTAGEABLE_FINDINGS))
    # value_code carries no system in the tidy table: compare it with the value set's codes.
    vs_codes = {c for _, c in valuesets.codes(STAGE_2_4_UNSTAGEABLE_FINDINGS)}
    value_ok = obs["observation_id"].isin(value_hit) | obs["value_code"].isin(vs_codes)
    start = obs["effective_at"]
    end = obs["effective_end"].fillna(start)
    during = start.ge(period.start) & end.lt(period.end)
    ok = obs["observation_id"].isin(skin_ids) & obs["status"].isin(FINAL_STATUSES) & value_ok & during
    ok = ok.to_numpy(dtype=bool, na_value=False)
    return pd.DataFrame({"patient_id": obs.loc[ok, "patient_id"], "exam_start": obs.loc[ok, "effective_at"]})


def skin_exam_between(
    subjects: pd.DataFrame,
    data: Mapping[str, pd.DataFrame],
    period: Period,
    valuesets: ValueSetIndex,
    *,
    from_hours: float,
    until_hours: float | None,
) -> np.ndarray:
    """A qualifying skin exam starts during [hospitalization start + from_hours, hospitalization
    start + until_hours] (closed; ``until_hours`` None: up to the encounter's end)."""
    exams = skin_exams_with_pressure_injury(data, period, valuesets)
    hstart = hospitalization_start(subjects, data, valuesets)
    low = hstart + pd.Timedelta(hours=from_hours)
    high = (
        subjects["end_at"].reset_index(drop=True) if until_hours is None else hstart + pd.Timedelta(hours=until_hours)
    )
    left = pd.DataFrame(
        {
            "__row": np.arange(len(subjects)),
            "patient_id": subjects["patient_id"].to_numpy(),
            "low": low,
            "high": high,
        }
    )
    m = left.merge(exams, on="patient_id", how="inner")
    ok = m["exam_start"].ge(m["low"]) & m["exam_start"].le(m["high"])
    return any_per_subject(len(subjects), m.loc[ok.to_numpy(dtype=bool, na_value=False), "__row"].to_numpy())


# ------------------------------------------------------------------ populations
def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """ "Encounter with Age 18 and Older": an inpatient encounter (type in Encounter Inpatient),
    finished, ending in the measurement period, of a patient aged 18 or over on the day it starts."""
    require_valuesets(valuesets, VALUESETS, "CMS826")
    age = age_at_start(subjects, data)
    return inpatient_encounter(subjects, data, period, valuesets) & (np.nan_to_num(age, nan=-1.0) >= 18)


def denominator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """A deep tissue or stage 2, 3, 4 / unstageable pressure injury present on admission: by the
    claim's POA indicator (Y or W), or by a skin exam within the first 72 hours of the
    hospitalization (the 24-hour window for stage 2-4 lies inside it; the CQL uses the stage
    2-4 finding value set for both windows)."""
    by_indicator = diagnosis_present_on_admission(
        subjects, data, valuesets, DEEP_TISSUE_DIAGNOSES, POA_YES
    ) | diagnosis_present_on_admission(subjects, data, valuesets, STAGE_2_4_UNSTAGEABLE_DIAGNOSES, POA_YES)
    by_exam = skin_exam_between(subjects, data, period, valuesets, from_hours=0, until_hours=72)
    return by_indicator | by_exam


def numerator(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """A new deep tissue or stage 2, 3, 4 / unstageable pressure injury: a claim diagnosis not
    present on admission (POA N or U), or a skin exam showing one after the first 24 hours of
    the hospitalization (the after-72-hours window lies inside it)."""
    by_indicator = diagnosis_present_on_admission(
        subjects, data, valuesets, DEEP_TISSUE_DIAGNOSES, POA_NO
    ) | diagnosis_present_on_admission(subjects, data, valuesets, STAGE_2_4_UNSTAGEABLE_DIAGNOSES, POA_NO)
    by_exam = skin_exam_between(subjects, data, period, valuesets, from_hours=24, until_hours=None)
    return by_indicator | by_exam
