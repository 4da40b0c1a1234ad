"""CMS165 Controlling High Blood Pressure (eCQM, QI-Core 6, version 0.5.000): population logic.

Patient-based proportion measure. Each function takes the patient subject frame and
returns one boolean per patient. The logic follows the published CQL of
CMS165FHIRControllingHighBloodPressure and the shared libraries it includes
(AdultOutpatientEncounters, Hospice, PalliativeCare, AdvancedIllnessandFrailty,
Status, QICoreCommon), rewritten as vectorised pandas: find the qualifying records
per table, then ask "does this patient have any".

How the CQL semantics are mapped (and where the tidy tables force a choice):

* A retrieve ``[Resource: "Value Set"]`` matches when ANY coding of the element is in
  the set. The tidy tables keep the first coding; the ``codings`` table keeps them all,
  so both are searched.
* Retrieves select by resource type, not by declared profile: a Condition is a
  problem-list item or an encounter diagnosis alike (the CQL unions both profiles), and
  a Condition's category is never required.
* Blood-pressure readings are Observations that are blood pressure panels (LOINC
  85354-9 / 55284-4 in any coding) or that carry a systolic or diastolic component.
  The reference engine applies no profile check at all, so it would also take any other
  Observation as a "reading" with no values; a lab result would then hide the last BP
  day. We follow the profile's meaning instead.
* ``prevalenceInterval()``: onset to abatement. An active (or recurrence / relapse)
  condition without abatement runs to the end of time; for any other condition without
  abatement the CQL query yields no interval at all, so it never overlaps anything; a
  missing onset means "since the beginning of time".
* FHIR Period -> interval (FHIRHelpers): a missing end is "still going"; a missing start
  is unknown, which cql-execution treats as an uncertainty between the beginning of time
  and the end (:class:`Interval` keeps that range, so an encounter with only an end inside
  the year still "overlaps" it, but is not "during" it). Tidy tables keep ``start`` and
  ``end`` only, so a timestamp without an end value is read as a dateTime (a point), which
  is how the test-deck resources are written.
* The numerator's qualifying readings are, as the CQL is written, a union: readings not
  taken on the day of an inpatient / emergency encounter (with NO limit to the period),
  and readings inside the period whose referenced encounter is not of an acute class.
* The measurement period is whole local days (``Period``: start inclusive, end exclusive),
  so "during day of" / "overlaps day of" the period are plain timestamp comparisons.
  "Same day" and "during day of" an encounter compare local calendar dates: timestamps
  are stored in the facility's local time (UTC unless configured; the test decks use
  +00:00 throughout and are read in UTC).
* ``medicationRequestPeriod()`` needs dosage and supply, which the tidy table does not
  keep: a dementia-medication order counts when it starts (``effective_start``, i.e.
  authoredOn) inside the look-back window, or when its ``effective_end`` reaches into it.
* Requests with ``doNotPerform`` true are orders NOT given and never count (QI-Core
  ServiceNotRequested / DeviceNotRequested profiles); a missing flag means false.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from pipelines.compute.ecqm import (
    US,
    Interval,
    Retrieve,
    age_at_end,
    bounds,
    fhir_period,
    isin,
    patients_with,
    prevalence,
    strs,
    timing,
    true,
    ts,
    within,
)
from pipelines.compute.model import Period


def _as_days(values: np.ndarray) -> np.ndarray:
    return values.astype("datetime64[D]")


#: Direct-reference codes, by the names the YAML declares them under.
HOSPICE_CARE_MDS = "Hospice care [Minimum Data Set]"
YES = "Yes (qualifier value)"
DISCHARGE_TO_HOSPICE = (
    "Discharge to healthcare facility for hospice care (procedure)",
    "Discharge to home for hospice care (procedure)",
)
FACIT_PAL = "FACIT-Pal total score"
HOUSING_STATUS = "Housing status"
LIVES_IN_NURSING_HOME = "Lives in a nursing home (finding)"
MEDICAL_EQUIPMENTUSED = "Medical equipment used"
BLOOD_PRESSURE_PANELS = ("Blood pressure panel with all children optional", "Blood pressure systolic and diastolic")

ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
ASSESSMENT_DONE = ("final", "amended", "corrected")
SYMPTOM_STATUSES = ("preliminary", "final", "amended", "corrected")
VERIFIED = ("confirmed", "unconfirmed", "provisional", "differential")
#: Encounter classes whose readings the numerator ignores (CMS165 "Qualifying ... Reading").
ACUTE_CLASSES = ("EMER", "IMP", "ACUTE", "NONAC", "PRENC", "SS")


# --------------------------------------------------------------------------- subjects
# Each criterion is a mask over a whole table: the retrieves beside it are asked of the
# table (the snapshot's index answers those by number), the intervals of a table are made
# once per evaluation, and subjects are matched to records by patient number
# (``Retrieve.having``). Only the few assessments whose answer matters are taken out.
def _verified_conditions(t: Retrieve, refs: Iterable[str]) -> np.ndarray:
    """Conditions (problem list, health concern or encounter diagnosis) in any of the sets,
    with no verification status or a non-refuted one (Status ``verified()``)."""
    cond = t.table("conditions")
    status = cond["verification_status"]
    verified = status.isna().to_numpy(dtype=bool) | isin(status, VERIFIED)
    return verified & t.in_valueset(cond, "conditions", refs)


def _finished_encounters(t: Retrieve, refs: Iterable[str]) -> np.ndarray:
    enc = t.table("encounters")
    return isin(enc["status"], ["finished"]) & t.in_valueset(enc, "encounters", refs)


def _completed_procedures(t: Retrieve, refs: Iterable[str]) -> np.ndarray:
    proc = t.table("procedures")
    return isin(proc["status"], ["completed"]) & t.in_valueset(proc, "procedures", refs)


def _orders(t: Retrieve, resource_type: str, refs: Iterable[str]) -> np.ndarray:
    """Active or completed orders of one request type (Status ``isInterventionOrder`` /
    ``isDeviceOrderPersonalUseDevices``) for something in the sets, never a do-not-perform
    request."""
    req = t.table("requests")
    return (
        isin(req["resource_type"], [resource_type])
        & isin(req["status"], ["active", "completed"])
        & isin(req["intent"], ORDER_INTENTS)
        & ~true(req["do_not_perform"])
        & t.in_valueset(req, "requests", refs)
    )


def _assessments(t: Retrieve, code: str) -> np.ndarray:
    """Final assessments coded ``code``."""
    obs = t.table("observations")
    return isin(obs["status"], ASSESSMENT_DONE) & t.with_code(obs, "observations", [code])


def _answered(t: Retrieve, assessed: np.ndarray, codes: Iterable[str] = (), valueset: str | None = None) -> np.ndarray:
    """The ``assessed`` observations whose value (its code alone, or any coding) is one of
    the direct-reference ``codes`` or in ``valueset``: asked of those few rows only."""
    rows = np.flatnonzero(assessed)
    obs = t.table("observations").iloc[rows].reset_index(drop=True)
    if valueset is not None:
        hit = t.in_valueset(obs, "observations", valueset, element="value", own=("value_code", None))
    else:
        hit = t.with_code(obs, "observations", codes, element="value", own=("value_code", None))
    out = np.zeros(len(assessed), dtype=bool)
    out[rows[hit]] = True
    return out


def _prevalence(t: Retrieve) -> Interval:
    return t.once("cms165 condition prevalence", lambda: prevalence(t.table("conditions")))


def _encounter_period(t: Retrieve) -> Interval:
    enc = t.table("encounters")
    return t.once("cms165 encounter period", lambda: fhir_period(enc["start_at"], enc["end_at"]))


def _performed(t: Retrieve) -> Interval:
    proc = t.table("procedures")
    return t.once("cms165 procedure timing", lambda: timing(proc["performed_start"], proc["performed_end"]))


def _effective(t: Retrieve) -> Interval:
    obs = t.table("observations")
    return t.once("cms165 observation timing", lambda: timing(obs["effective_at"], obs["effective_end"]))


# ------------------------------------------------------------------ initial population
def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, t: Retrieve
) -> np.ndarray:
    """Aged 18-85 at the end of the period, essential hypertension overlapping its first six
    months, and a finished qualifying outpatient encounter within the period."""
    start, end = bounds(period)
    age = age_at_end(subjects, period)
    adult = (age >= 18) & (age <= 85)

    six_months = np.datetime64((period.start + pd.DateOffset(months=6)).to_datetime64(), "us")
    htn = _verified_conditions(t, ["Essential Hypertension"]) & _prevalence(t).overlaps(start, six_months)

    outpatient = [
        "Office Visit",
        "Annual Wellness Visit",
        "Preventive Care Services Established Office Visit, 18 and Up",
        "Preventive Care Services Initial Office Visit, 18 and Up",
        "Home Healthcare Services",
        "Virtual Encounter",
        "Telephone Visits",
    ]
    visit = _finished_encounters(t, outpatient) & _encounter_period(t).during(start, end)
    return adult & t.having(subjects, "conditions", htn) & t.having(subjects, "encounters", visit)


# ------------------------------------------------------------------ exclusions
def _hospice(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """Hospice.cql ``Has Hospice Services``."""
    start, end = bounds(period)
    enc = t.table("encounters")
    stay = _encounter_period(t)
    to_hospice = t.with_code(
        enc, "encounters", DISCHARGE_TO_HOSPICE, element="disposition", own=("discharge_disposition", None)
    )
    discharged = _finished_encounters(t, ["Encounter Inpatient"]) & to_hospice & within(stay.end(), start, end)
    in_hospice = _finished_encounters(t, ["Hospice Encounter"]) & stay.overlaps(start, end)
    assessed = _assessments(t, HOSPICE_CARE_MDS) & _effective(t).overlaps(start, end)
    req = t.table("requests")
    ordered = _orders(t, "ServiceRequest", ["Hospice Care Ambulatory"]) & within(ts(req["authored_at"]), start, end)
    performed = _completed_procedures(t, ["Hospice Care Ambulatory"]) & _performed(t).overlaps(start, end)
    diagnosed = _verified_conditions(t, ["Hospice Diagnosis"]) & _prevalence(t).overlaps(start, end)
    return (
        t.having(subjects, "encounters", discharged | in_hospice)
        | t.having(subjects, "observations", _answered(t, assessed, [YES]))
        | t.having(subjects, "requests", ordered)
        | t.having(subjects, "procedures", performed)
        | t.having(subjects, "conditions", diagnosed)
    )


def _diagnosed_or_seen(
    subjects: pd.DataFrame, t: Retrieve, diagnosis: str, encounter: str, start: np.datetime64, end: np.datetime64
) -> np.ndarray:
    """A verified condition in ``diagnosis`` prevalent during [start, end], or a finished
    encounter in ``encounter`` overlapping it: the pair palliative care and frailty share."""
    return t.having(
        subjects, "conditions", _verified_conditions(t, [diagnosis]) & _prevalence(t).overlaps(start, end)
    ) | t.having(
        subjects, "encounters", _finished_encounters(t, [encounter]) & _encounter_period(t).overlaps(start, end)
    )


def _palliative(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """PalliativeCare.cql ``Has Palliative Care in the Measurement Period``."""
    start, end = bounds(period)
    return (
        t.having(subjects, "observations", _assessments(t, FACIT_PAL) & _effective(t).overlaps(start, end))
        | _diagnosed_or_seen(subjects, t, "Palliative Care Diagnosis", "Palliative Care Encounter", start, end)
        | t.having(
            subjects,
            "procedures",
            _completed_procedures(t, ["Palliative Care Intervention"]) & _performed(t).overlaps(start, end),
        )
    )


def _renal_or_pregnancy(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """Pregnancy or renal diagnosis overlapping the period, kidney transplant or dialysis
    ending by its end, or an ESRD monthly outpatient encounter starting by its end."""
    start, end = bounds(period)
    refs = ["Pregnancy", "End Stage Renal Disease", "Kidney Transplant Recipient", "Chronic Kidney Disease, Stage 5"]
    diagnosed = _verified_conditions(t, refs) & _prevalence(t).overlaps(start, end)
    performed = _completed_procedures(t, ["Kidney Transplant", "Dialysis Services"]) & (_performed(t).end() < end)
    esrd = _finished_encounters(t, ["ESRD Monthly Outpatient Services"]) & (_encounter_period(t).start() < end)
    return (
        t.having(subjects, "conditions", diagnosed)
        | t.having(subjects, "procedures", performed)
        | t.having(subjects, "encounters", esrd)
    )


def _frailty(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """AdvancedIllnessandFrailty.cql ``Has Criteria Indicating Frailty``."""
    start, end = bounds(period)
    req = t.table("requests")
    ordered = _orders(t, "DeviceRequest", ["Frailty Device"]) & within(ts(req["authored_at"]), start, end)
    obs = t.table("observations")
    equipment = _assessments(t, MEDICAL_EQUIPMENTUSED) & within(_effective(t).end(), start, end)
    symptom = isin(obs["status"], SYMPTOM_STATUSES) & t.in_valueset(obs, "observations", ["Frailty Symptom"])
    return (
        t.having(subjects, "requests", ordered)
        | t.having(
            subjects,
            "observations",
            _answered(t, equipment, valueset="Frailty Device") | (symptom & _effective(t).overlaps(start, end)),
        )
        | _diagnosed_or_seen(subjects, t, "Frailty Diagnosis", "Frailty Encounter", start, end)
    )


def _advanced_illness_or_dementia_drugs(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """Advanced illness starting, or an active dementia-medication order overlapping, the
    year before or the measurement period itself."""
    _, end = bounds(period)
    window_start = np.datetime64((period.start - pd.DateOffset(years=1)).to_datetime64(), "us")
    started = _verified_conditions(t, ["Advanced Illness"]) & within(_prevalence(t).start(), window_start, end)
    med = t.table("medications")
    ordered = (
        isin(med["resource_type"], ["MedicationRequest"])
        & isin(med["status"], ["active"])
        & isin(med["intent"], ORDER_INTENTS)
        & t.in_valueset(med, "medications", ["Dementia Medications"])
        & timing(med["effective_start"], med["effective_end"]).overlaps(window_start, end)
    )
    return t.having(subjects, "conditions", started) | t.having(subjects, "medications", ordered)


def _nursing_home(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """The last housing-status assessment ending by the end of the period says the patient
    lives in a nursing home (age is checked by the caller)."""
    _, end = bounds(period)
    ended = _effective(t).end()
    assessed = np.flatnonzero(_assessments(t, HOUSING_STATUS) & (ended < end))
    obs = t.table("observations")
    rows = pd.DataFrame({"patient_id": obs["patient_id"].to_numpy()[assessed], "__end": ended[assessed]})
    last = assessed[rows.sort_values("__end", kind="stable").drop_duplicates("patient_id", keep="last").index]
    chosen = np.zeros(len(obs), dtype=bool)
    chosen[last] = True
    return t.having(subjects, "observations", _answered(t, chosen, [LIVES_IN_NURSING_HOME]))


def denominator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, t: Retrieve
) -> np.ndarray:
    """Hospice, palliative care, pregnancy or end-stage renal disease / dialysis / kidney
    transplant; 66-80 with frailty and advanced illness (or dementia medication); 81 and
    over with frailty; 66 and over living long term in a nursing home."""
    age = age_at_end(subjects, period)
    frail = _frailty(subjects, t, period)
    advanced = _advanced_illness_or_dementia_drugs(subjects, t, period)
    frail_by_age = ((age >= 66) & (age <= 80) & frail & advanced) | ((age >= 81) & frail)
    return (
        _hospice(subjects, t, period)
        | _renal_or_pregnancy(subjects, t, period)
        | frail_by_age
        | ((age >= 66) & _nursing_home(subjects, t, period))
        | _palliative(subjects, t, period)
    )


# --------------------------------------------------------------------------- numerator
def _qualifying_readings(subjects: pd.DataFrame, t: Retrieve, period: Period) -> pd.DataFrame:
    """The subjects' blood-pressure readings the numerator may use, with the (facility-local)
    day of ``latest()``.

    As the CQL writes it, a reading qualifies if it was NOT taken on a day of a finished
    inpatient or emergency-department encounter (at any time), OR it lies within the
    measurement period and the encounter it references is not of an acute class (a
    reading with no resolvable encounter passes this test: CQL ``null in list`` is false).
    """
    start, end = bounds(period)
    obs = t.table("observations")
    is_bp = t.with_code(obs, "observations", BLOOD_PRESSURE_PANELS)
    is_bp |= obs["systolic"].notna().to_numpy(dtype=bool) | obs["diastolic"].notna().to_numpy(dtype=bool)
    keep = isin(obs["status"], ASSESSMENT_DONE) & is_bp & isin(obs["patient_id"], subjects["patient_id"])
    columns = ["patient_id", "encounter_id", "effective_at", "effective_end", "systolic", "diastolic"]
    obs = obs.loc[keep, columns].reset_index(drop=True)
    lo, hi = ts(obs["effective_at"]), ts(obs["effective_end"])
    latest = np.where(np.isnat(hi), lo, hi)
    obs = obs.assign(__latest=latest, __day=_as_days(latest))[~np.isnat(latest)].reset_index(drop=True)

    # "during day of" a period contains the day only when its start is known; a missing
    # end means the stay is still going.
    stay = _encounter_period(t)
    known = ~np.isnat(stay.start())
    known &= _finished_encounters(t, ["Encounter Inpatient", "Emergency Department Evaluation and Management Visit"])
    acute = pd.DataFrame(
        {
            "patient_id": strs(t.table("encounters")["patient_id"]).to_numpy()[known],
            "__lo": stay.start()[known],
            "__hi": stay.hi_min[known],
        }
    )
    pairs = pd.DataFrame(
        {"__row": np.arange(len(obs)), "patient_id": strs(obs["patient_id"]), "__day": obs["__day"]}
    ).merge(acute, on="patient_id", how="inner")
    day = pairs["__day"].to_numpy(dtype="datetime64[D]")
    inside = (day >= _as_days(pairs["__lo"].to_numpy(dtype=US))) & (day <= _as_days(pairs["__hi"].to_numpy(dtype=US)))
    during_acute = np.zeros(len(obs), dtype=bool)
    during_acute[pairs["__row"].to_numpy()[inside]] = True

    # Only a reading on an acute day needs its own encounter's class.
    in_period = within(obs["__latest"].to_numpy(dtype=US), start, end)
    keep = ~during_acute
    keep[during_acute] = in_period[during_acute] & ~isin(
        t.lookup("encounters", obs.loc[during_acute, "encounter_id"], "class_code"), ACUTE_CLASSES
    )
    return obs[keep].reset_index(drop=True)


def numerator(subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, t: Retrieve) -> np.ndarray:
    """On the most recent day with a qualifying reading, the lowest systolic is below 140 mmHg
    and the lowest diastolic below 90 mmHg. A reading on that day lacking a value makes
    the result unknown (CQL sorts nulls first), hence not met."""
    readings = _qualifying_readings(subjects, t, period)
    if readings.empty:
        return np.zeros(len(subjects), dtype=bool)
    last_day = readings.groupby("patient_id", sort=False)["__day"].transform("max")
    day = readings[readings["__day"] == last_day]
    day = day.assign(
        systolic_missing=day["systolic"].isna().to_numpy(dtype=bool),
        diastolic_missing=day["diastolic"].isna().to_numpy(dtype=bool),
    )
    per_patient = day.groupby("patient_id", sort=False).agg(
        systolic=("systolic", "min"),
        diastolic=("diastolic", "min"),
        systolic_missing=("systolic_missing", "max"),
        diastolic_missing=("diastolic_missing", "max"),
    )
    controlled = (
        (per_patient["systolic"] < 140)
        & (per_patient["diastolic"] < 90)
        & ~per_patient["systolic_missing"].astype(bool)
        & ~per_patient["diastolic_missing"].astype(bool)
    ).fillna(False)
    return patients_with(subjects, pd.Series(per_patient.index[controlled.to_numpy(dtype=bool)]))
