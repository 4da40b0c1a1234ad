"""CMS826 Hospital Harm - Pressure Injury (eCQM 0.3.000, QI-Core 6): population functions.

Encounter-based proportion measure. The logic follows the published CQL
(cqframework/ecqm-content-qicore-2025, ``CMS826FHIRHHPI.cql`` with ``CQMCommon`` 4.1.000);
it is re-expressed here as vectorised pandas over the tidy tables, never copied. The
CQMCommon building blocks (inpatient encounter, hospitalization with observation and ED,
claim diagnoses present on admission) and the timestamp, coding and claim-link
conventions are those of :mod:`pipelines.compute.ecqm`. Value sets and the skin-findings
code are named as the CQL names them; the YAML declares their canonicals.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.compute import ecqm
from pipelines.compute.model import Period

FINAL_STATUSES = ("final", "amended", "corrected")
POA_YES = "Present on Admission or Clinically Undetermined"
POA_NO = "Not Present On Admission or Documentation Insufficient to Determine"
DEEP_TISSUE = "Pressure Injury Deep Tissue Diagnoses"
STAGE_2_4_DIAGNOSES = "Pressure Injury Stage 2, 3, 4, or Unstageable Diagnoses"
STAGE_2_4_FINDINGS = "Pressure Injury Stage 2, 3, 4 or Unstageable"
SKIN_FINDINGS = "Physical findings of Skin"


def skin_exams_with_pressure_injury(r: ecqm.Retrieve, period: Period) -> pd.DataFrame:
    """Observations "Physical findings of Skin", final/amended/corrected, effective during the
    measurement period, whose value is a stage 2, 3, 4 or unstageable pressure injury.
    Returns patient_id and ``exam_start`` (start of the effective time); found once per
    evaluation, for the denominator exclusion and the numerator alike."""
    return r.once("cms826 skin exams with a pressure injury", lambda: _skin_exams(r, period))


def _skin_exams(r: ecqm.Retrieve, period: Period) -> pd.DataFrame:
    obs = r.table("observations")
    skin = r.with_code(obs, "observations", [SKIN_FINDINGS])
    # value_code carries no system in the tidy table: it is matched on the code alone.
    value = r.in_valueset(obs, "observations", STAGE_2_4_FINDINGS, element="value", own=("value_code", None))
    lo, hi = ecqm.bounds(period)
    start = ecqm.ts(obs["effective_at"])
    end = np.where(np.isnat(ecqm.ts(obs["effective_end"])), start, ecqm.ts(obs["effective_end"]))
    ok = skin & ecqm.isin(obs["status"], FINAL_STATUSES) & value & (start >= lo) & (end < hi)
    return pd.DataFrame({"patient_id": obs["patient_id"].to_numpy()[ok], "exam_start": start[ok]})


def skin_exam_between(
    subjects: pd.DataFrame, r: ecqm.Retrieve, period: Period, *, from_hours: int, until_hours: int | None
) -> np.ndarray:
    """A qualifying skin exam starts during [hospitalization start + from_hours, hospitalization
    start + until_hours] (closed; ``until_hours`` None: up to the encounter's end)."""
    exams = skin_exams_with_pressure_injury(r, period)
    hstart = ecqm.hospitalization_start(subjects, r)
    low = hstart + from_hours * ecqm.HOUR
    high = ecqm.ts(subjects["end_at"]) if until_hours is None else hstart + until_hours * ecqm.HOUR
    left = pd.DataFrame(
        {"__row": np.arange(len(subjects)), "patient_id": subjects["patient_id"].to_numpy(), "low": low, "high": high}
    )
    m = left.merge(exams, on="patient_id", how="inner")
    at = ecqm.ts(m["exam_start"])
    ok = (at >= ecqm.ts(m["low"])) & (at <= ecqm.ts(m["high"]))
    return ecqm.any_per_row(len(subjects), m["__row"].to_numpy()[ok])


def _present_on_admission(subjects: pd.DataFrame, r: ecqm.Retrieve, poa: str) -> np.ndarray:
    """A deep tissue or stage 2-4 / unstageable pressure injury diagnosis with the POA indicator in ``poa``."""
    return ecqm.diagnosis_present_on_admission(subjects, r, DEEP_TISSUE, poa) | ecqm.diagnosis_present_on_admission(
        subjects, r, STAGE_2_4_DIAGNOSES, poa
    )


# ------------------------------------------------------------------ populations
def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, r: ecqm.Retrieve
) -> np.ndarray:
    """ "Encounter with Age 18 and Older": an inpatient encounter (type in Encounter Inpatient),
    finished, ending in the measurement period, of a patient aged 18 or over on the day it starts."""
    return ecqm.refine(ecqm.inpatient_encounter(subjects, r, period), subjects, lambda s: ecqm.adult_at_start(s, r))


def denominator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, r: ecqm.Retrieve
) -> np.ndarray:
    """A deep tissue or stage 2, 3, 4 / unstageable pressure injury present on admission: by the
    claim's POA indicator (Y or W), or by a skin exam within the first 72 hours of the
    hospitalization (the 24-hour window for stage 2-4 lies inside it; the CQL uses the stage
    2-4 finding value set for both windows)."""
    by_exam = skin_exam_between(subjects, r, period, from_hours=0, until_hours=72)
    return _present_on_admission(subjects, r, POA_YES) | by_exam


def numerator(subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, r: ecqm.Retrieve) -> np.ndarray:
    """A new deep tissue or stage 2, 3, 4 / unstageable pressure injury: a claim diagnosis not
    present on admission (POA N or U), or a skin exam showing one after the first 24 hours of
    the hospitalization (the after-72-hours window lies inside it)."""
    by_exam = skin_exam_between(subjects, r, period, from_hours=24, until_hours=None)
    return _present_on_admission(subjects, r, POA_NO) | by_exam
