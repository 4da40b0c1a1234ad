"""CMS1017 Hospital Harm - Falls with Injury (eCQM 0.2.000, QI-Core 6): population functions.

Encounter-based ratio measure. The logic follows the published CQL
(cqframework/ecqm-content-qicore-2025, ``CMS1017FHIRHHFI.cql`` with ``CQMCommon`` 4.1.000),
re-expressed as vectorised pandas; the shared building blocks (coding lookup,
``hospitalizationWithObservation()``, linked claim diagnoses) are in
:mod:`pipelines.compute.cql_blocks`, which documents the timestamp, coding and claim-link
conventions.

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

from pipelines.compute import cql_blocks as E
from pipelines.compute.model import Period
from pipelines.compute.valuesets import ValueSetIndex

VS = E.VS
INPATIENT_FALLS = VS + "2.16.840.1.113762.1.4.1147.171"
MAJOR_INJURIES = VS + "2.16.840.1.113762.1.4.1147.120"
MODERATE_INJURIES = VS + "2.16.840.1.113762.1.4.1248.205"
POA_YES = E.POA_YES
POA_NO = E.POA_NO
MAX_STAY_DAYS = 120

#: Every value set the population functions use, by CQL name (the YAML lists the same).
VALUESETS: dict[str, str] = {
    "Encounter Inpatient": E.ENCOUNTER_INPATIENT,
    "Emergency Department Visit": E.EMERGENCY_DEPARTMENT_VISIT,
    "Observation Services": E.OBSERVATION_SERVICES,
    "Inpatient Falls": INPATIENT_FALLS,
    "Major Injuries": MAJOR_INJURIES,
    "Moderate Injuries": MODERATE_INJURIES,
    "Present on Admission or Clinically Undetermined": POA_YES,
    "Not Present On Admission or Documentation Insufficient to Determine": POA_NO,
}

#: ``encounter_diagnoses.element`` of rows that carry Encounter.reasonReference (the CQL's
#: ``encountersDiagnosis()`` follows reasonReference, not Encounter.diagnosis).
REASON_REFERENCE_ELEMENT = "reasonReference"


def _reason_conditions(data: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """(encounter_id, condition_id) pairs of Encounter.reasonReference.

    Only reasonReference counts: the CQL's ``encountersDiagnosis()`` does not follow
    Encounter.diagnosis nor Condition.encounter, so a fall Condition that merely names the
    stay (or that the stay lists as a diagnosis) does not document a fall for it.
    """
    refs = E.table(data, "encounter_diagnoses")
    refs = refs.loc[
        refs["element"].eq(REASON_REFERENCE_ELEMENT).fillna(False).to_numpy(dtype=bool),
        ["encounter_id", "condition_id"],
    ]
    pairs = refs.astype("string")
    return pairs.dropna().drop_duplicates(ignore_index=True)


def qualifying_encounter(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """ "Qualifying Encounter": a CQMCommon inpatient encounter whose hospitalization (with any
    immediately prior observation stay and emergency department visit) lasts at most 120
    calendar days, of a patient aged 18 or over on the day the encounter itself started."""
    hstart = E.hospitalization_start(subjects, data, valuesets)
    end = subjects["end_at"].reset_index(drop=True)
    days = (end.dt.normalize() - hstart.dt.normalize()).dt.days
    short = days.le(MAX_STAY_DAYS).to_numpy(dtype=bool, na_value=False)
    age = E.age_at_start(subjects, data)
    adult = np.nan_to_num(age, nan=-1.0) >= 18
    return E.inpatient_encounter(subjects, data, period, valuesets) & short & adult


def _claim_poa(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], valuesets: ValueSetIndex
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    linked = E.linked_claim_diagnoses(subjects, data)
    poa_null = linked["present_on_admission"].isna().to_numpy(dtype=bool)
    return linked, poa_null, E.poa_in(linked, valuesets, POA_YES), E.poa_in(linked, valuesets, POA_NO)


def fall_present_on_admission(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], valuesets: ValueSetIndex
) -> np.ndarray:
    """``hasDiagnosisPresentOnAdmission("Inpatient Falls")``: a linked claim diagnosis coded as an
    inpatient fall (diagnosisCodeableConcept only) with present-on-admission indicator Y or W."""
    linked, _, poa_yes, _ = _claim_poa(subjects, data, valuesets)
    fall = E.diagnosis_code_in(linked, data, valuesets, INPATIENT_FALLS, via_condition=False)
    return E.any_per_subject(len(subjects), linked.loc[poa_yes & fall, "__row"].to_numpy())


def _fall_documented(subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], valuesets: ValueSetIndex) -> np.ndarray:
    """ "Encounter Where A Fall Occurred": Encounter.reasonCode, or a Condition the encounter
    names in reasonReference, coded as an inpatient fall; or an AdverseEvent coded as an
    inpatient fall dated (date, else recordedDate) during the hospitalization."""
    n = len(subjects)
    reason = E.record_codes(data, "encounters", elements=("reasonCode",), first=None)
    by_reason_code = subjects["encounter_id"].isin(E.ids_in_valueset(reason, valuesets, INPATIENT_FALLS))

    fall_conditions = E.ids_in_valueset(
        E.record_codes(data, "conditions", elements=("code",)), valuesets, INPATIENT_FALLS
    )
    by_condition = subjects["encounter_id"].isin(
        _reason_conditions(data).loc[lambda d: d["condition_id"].isin(fall_conditions), "encounter_id"]
    )

    events = E.table(data, "adverse_events")
    fall_events = events[
        events["adverse_event_id"].isin(
            E.ids_in_valueset(
                E.record_codes(data, "adverse_events", elements=("event", "code")), valuesets, INPATIENT_FALLS
            )
        )
    ]
    when = pd.DataFrame(
        {
            "patient_id": fall_events["patient_id"],
            "at": fall_events["occurred_at"].fillna(fall_events["recorded_at"]),
        }
    )
    left = pd.DataFrame(
        {
            "__row": np.arange(n),
            "patient_id": subjects["patient_id"].to_numpy(),
            "low": E.hospitalization_start(subjects, data, valuesets),
            "high": subjects["end_at"].reset_index(drop=True),
        }
    )
    m = left.merge(when.dropna(subset=["at"]), on="patient_id", how="inner")
    during = (m["at"].ge(m["low"]) & m["at"].le(m["high"])).to_numpy(dtype=bool, na_value=False)
    by_event = E.any_per_subject(n, m.loc[during, "__row"].to_numpy())
    return (
        by_reason_code.to_numpy(dtype=bool, na_value=False)
        | by_condition.to_numpy(dtype=bool, na_value=False)
        | by_event
    )


def fall_with_injury_not_present_on_admission(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], valuesets: ValueSetIndex
) -> np.ndarray:
    """The numerator criteria (before population nesting), see the module docstring."""
    n = len(subjects)
    linked, poa_null, _, poa_no = _claim_poa(subjects, data, valuesets)
    fall = E.diagnosis_code_in(linked, data, valuesets, INPATIENT_FALLS, via_condition=False)
    injury = E.diagnosis_code_in(linked, data, valuesets, MAJOR_INJURIES, via_condition=True) | E.diagnosis_code_in(
        linked, data, valuesets, MODERATE_INJURIES, via_condition=True
    )
    rows = linked["__row"].to_numpy()
    fall_not_poa = E.any_per_subject(n, rows[poa_null | (poa_no & fall)])
    injury_not_poa = E.any_per_subject(n, rows[poa_null | (poa_no & injury)])
    return _fall_documented(subjects, data, valuesets) & fall_not_poa & injury_not_poa


# ------------------------------------------------------------------ populations
def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """ "Qualifying Encounter"."""
    E.require_valuesets(valuesets, VALUESETS, "CMS1017")
    return qualifying_encounter(subjects, data, period, valuesets)


def denominator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """ "Encounter With A Fall Present On Admission"."""
    return fall_present_on_admission(subjects, data, valuesets)


def numerator(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """A documented fall, a fall not present on admission, and a major or moderate injury not
    present on admission, all for the encounter."""
    return fall_with_injury_not_present_on_admission(subjects, data, valuesets)


def numerator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """ "Numerator Exclusions": the same "Encounter With A Fall Present On Admission"."""
    return fall_present_on_admission(subjects, data, valuesets)
