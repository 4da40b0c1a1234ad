"""CMS1017 Hospital Harm - Falls with Injury (eCQM 0.2.000, QI-Core 6): population functions.

Encounter-based ratio measure. The logic follows the published CQL
(cqframework/ecqm-content-qicore-2025, ``CMS1017FHIRHHFI.cql`` with ``CQMCommon`` 4.1.000),
re-expressed as vectorised pandas; the CQMCommon building blocks (retrieves by value set,
``hospitalizationWithObservation()``, linked claim diagnoses) and the timestamp, coding and
claim-link conventions are those of :mod:`pipelines.compute.ecqm`.

Faithful to the CQL as published, including two precedence effects (CQL ``and`` binds
tighter than ``or``):

* "fall not present on admission" holds when a linked claim diagnosis has NO
  present-on-admission indicator (whatever its code), or has indicator N/U and a fall code;
* "major/moderate injury not present on admission" likewise holds for a linked claim
  diagnosis without indicator, whatever its code.

Numerator exclusion: the measure's "Numerator Exclusions" is the same expression as its
"Denominator Exclusions" (a fall present on admission). In a ratio measure the numerator is
not nested in the denominator minus its exclusions (see :mod:`pipelines.compute.engine`), so
an encounter with a fall present on admission that also meets the numerator criteria is in
the denominator exclusion, the numerator and the numerator exclusion, as the reference
engine (fqm-execution >= 1.8.0) reports it; its fall is not counted either way.

Known mismatches with the shared MADiE deck (expected values are entered by the measure
developer, not computed): DENEXPass-Enc1FallPOAEnc2FallNPOAAndInjuryNPOA (its Claims
reference ``Encounter/DENEXPass-Enc1FallPOAEnc2FallNPOAAndInjuryNPOA-2``, absent from the
bundle), DENEXFail-MajorInjuryPOAandNPOA (no claim diagnosis of a fall not present on
admission, which "Encounter With A Fall Not Present On Admission" requires) and
NUMEXPass-1stEncExcluded2ndEncNumHit (counts the excluded encounter in the numerator
exclusion without it meeting the numerator, as fqm-execution did before 1.8.0, while
DENEXPass-FallPOAisW and DENEXPass-FallDxPOAByIndicatorW expect the later behaviour).

The three value sets missing from the shared copy (Abnormal Weight Loss 1258.2, Malnutrition
1272.1, Osteoporosis 1200.147) feed risk-variable definitions only, never a population.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.compute import ecqm
from pipelines.compute.model import Period

INPATIENT_FALLS = "Inpatient Falls"
MAJOR_INJURIES = "Major Injuries"
MODERATE_INJURIES = "Moderate Injuries"
POA_YES = "Present on Admission or Clinically Undetermined"
POA_NO = "Not Present On Admission or Documentation Insufficient to Determine"
MAX_STAY_DAYS = 120


def qualifying_encounter(subjects: pd.DataFrame, r: ecqm.Retrieve, period: Period) -> np.ndarray:
    """ "Qualifying Encounter": a CQMCommon inpatient encounter whose hospitalization (with any
    immediately prior observation stay and emergency department visit) lasts at most 120
    calendar days, of a patient aged 18 or over on the day the encounter itself started."""

    def short_stay_adult(stays: pd.DataFrame) -> np.ndarray:
        length = ecqm.days(stays["end_at"]) - ecqm.days(ecqm.hospitalization_start(stays, r))
        short = ~np.isnat(length) & (length <= np.timedelta64(MAX_STAY_DAYS, "D"))
        return short & ecqm.adult_at_start(stays, r)

    return ecqm.refine(ecqm.inpatient_encounter(subjects, r, period), subjects, short_stay_adult)


def _claim_poa(subjects: pd.DataFrame, r: ecqm.Retrieve) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    linked = ecqm.linked_claim_diagnoses(subjects, r)
    poa_null = linked["present_on_admission"].isna().to_numpy(dtype=bool)
    return linked, poa_null, ecqm.poa_in(linked, r, POA_YES), ecqm.poa_in(linked, r, POA_NO)


def fall_present_on_admission(subjects: pd.DataFrame, r: ecqm.Retrieve) -> np.ndarray:
    """``hasDiagnosisPresentOnAdmission("Inpatient Falls")``: a linked claim diagnosis coded as an
    inpatient fall (diagnosisCodeableConcept only) with present-on-admission indicator Y or W.
    Asked by the denominator and the numerator exclusions alike: found once per encounter."""

    def of(stays: pd.DataFrame) -> np.ndarray:
        linked, _, poa_yes, _ = _claim_poa(stays, r)
        fall = ecqm.diagnosis_code_in(linked, r, INPATIENT_FALLS, via_condition=False)
        return ecqm.any_per_row(len(stays), linked["__row"].to_numpy()[poa_yes & fall])

    return r.per_record("cms1017 fall present on admission", subjects, "encounter_id", of)


def _fall_documented(subjects: pd.DataFrame, r: ecqm.Retrieve) -> np.ndarray:
    """ "Encounter Where A Fall Occurred": Encounter.reasonCode, or a Condition the encounter
    names in reasonReference, coded as an inpatient fall; or an AdverseEvent coded as an
    inpatient fall dated (date, else recordedDate) during the hospitalization."""
    n = len(subjects)
    by_reason = ecqm.encounter_diagnosis(subjects, r, [INPATIENT_FALLS])

    events = r.table("adverse_events")
    falls = events[ecqm.isin(events["adverse_event_id"], r.ids_in("adverse_events", INPATIENT_FALLS))]
    when = pd.DataFrame(
        {"patient_id": falls["patient_id"], "at": falls["occurred_at"].fillna(falls["recorded_at"])}
    ).dropna(subset=["at"])
    left = pd.DataFrame(
        {
            "__row": np.arange(n),
            "patient_id": subjects["patient_id"].to_numpy(),
            "low": ecqm.hospitalization_start(subjects, r),
            "high": ecqm.ts(subjects["end_at"]),
        }
    )
    m = left.merge(when, on="patient_id", how="inner")
    at = ecqm.ts(m["at"])
    during = (at >= ecqm.ts(m["low"])) & (at <= ecqm.ts(m["high"]))
    by_event = ecqm.any_per_row(n, m["__row"].to_numpy()[during])
    return by_reason | by_event


def fall_with_injury_not_present_on_admission(subjects: pd.DataFrame, r: ecqm.Retrieve) -> np.ndarray:
    """The numerator criteria (before population nesting), see the module docstring."""
    n = len(subjects)
    linked, poa_null, _, poa_no = _claim_poa(subjects, r)
    fall = ecqm.diagnosis_code_in(linked, r, INPATIENT_FALLS, via_condition=False)
    injury = ecqm.diagnosis_code_in(linked, r, MAJOR_INJURIES, via_condition=True) | ecqm.diagnosis_code_in(
        linked, r, MODERATE_INJURIES, via_condition=True
    )
    rows = linked["__row"].to_numpy()
    fall_not_poa = ecqm.any_per_row(n, rows[poa_null | (poa_no & fall)])
    injury_not_poa = ecqm.any_per_row(n, rows[poa_null | (poa_no & injury)])
    return _fall_documented(subjects, r) & fall_not_poa & injury_not_poa


# ------------------------------------------------------------------ populations
def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, terms: ecqm.Retrieve
) -> np.ndarray:
    """ "Qualifying Encounter"."""
    return qualifying_encounter(subjects, terms, period)


def denominator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, terms: ecqm.Retrieve
) -> np.ndarray:
    """ "Encounter With A Fall Present On Admission"."""
    return fall_present_on_admission(subjects, terms)


def numerator(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, terms: ecqm.Retrieve
) -> np.ndarray:
    """A documented fall, a fall not present on admission, and a major or moderate injury not
    present on admission, all for the encounter."""
    return fall_with_injury_not_present_on_admission(subjects, terms)


def numerator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, terms: ecqm.Retrieve
) -> np.ndarray:
    """ "Numerator Exclusions": the same "Encounter With A Fall Present On Admission"."""
    return fall_present_on_admission(subjects, terms)
