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
# Each retrieve is asked of a whole table (the evaluation's Retrieve indexes those once) and
# only the rows kept, with the columns the logic reads, are taken from it.
def _rows(table: pd.DataFrame, keep: np.ndarray, columns: Iterable[str], **flags: np.ndarray) -> pd.DataFrame:
    """The kept rows' ``columns``, with per-row ``flags`` (whole-table masks) as columns."""
    rows = table.loc[keep, list(columns)].reset_index(drop=True)
    return rows.assign(**{name: flag[keep] for name, flag in flags.items()})


def _verified_conditions(t: Retrieve, refs: Iterable[str]) -> pd.DataFrame:
    """Conditions (problem list, health concern or encounter diagnosis) in any of the sets,
    with no verification status or a non-refuted one (Status ``verified()``)."""
    cond = t.table("conditions")
    status = cond["verification_status"]
    verified = status.isna().to_numpy(dtype=bool) | isin(status, VERIFIED)
    keep = verified & t.in_valueset(cond, "conditions", refs)
    return _rows(cond, keep, ["patient_id", "onset_at", "abatement_at", "clinical_status"])


def _finished_encounters(t: Retrieve, refs: Iterable[str], where: np.ndarray | None = None) -> pd.DataFrame:
    """Finished encounters of a type in the sets (and ``where``, a mask over the table)."""
    enc = t.table("encounters")
    keep = isin(enc["status"], ["finished"]) & t.in_valueset(enc, "encounters", refs)
    return _rows(enc, keep if where is None else keep & where, ["patient_id", "start_at", "end_at"])


def _completed_procedures(t: Retrieve, refs: Iterable[str]) -> pd.DataFrame:
    proc = t.table("procedures")
    keep = isin(proc["status"], ["completed"]) & t.in_valueset(proc, "procedures", refs)
    return _rows(proc, keep, ["patient_id", "performed_start", "performed_end"])


def _orders(t: Retrieve, resource_type: str, refs: Iterable[str]) -> pd.DataFrame:
    """Active or completed orders of one request type (Status ``isInterventionOrder`` /
    ``isDeviceOrderPersonalUseDevices``) for something in the sets, never a do-not-perform
    request."""
    req = t.table("requests")
    keep = (
        isin(req["resource_type"], [resource_type])
        & isin(req["status"], ["active", "completed"])
        & isin(req["intent"], ORDER_INTENTS)
        & ~true(req["do_not_perform"])
        & t.in_valueset(req, "requests", refs)
    )
    return _rows(req, keep, ["patient_id", "authored_at"])


def _assessments(t: Retrieve, code: str, **flags: np.ndarray) -> pd.DataFrame:
    """Final assessments coded ``code``, with ``flags`` (masks over the whole table)."""
    obs = t.table("observations")
    keep = isin(obs["status"], ASSESSMENT_DONE) & t.with_code(obs, "observations", [code])
    return _rows(obs, keep, ["patient_id", "effective_at", "effective_end"], **flags)


def _answer(t: Retrieve, codes: Iterable[str] = (), valueset: str | None = None) -> np.ndarray:
    """Observations whose value (its code alone, or any coding) is one of the direct-reference
    ``codes`` or in ``valueset``: a mask over the whole table."""
    obs = t.table("observations")
    if valueset is not None:
        return t.in_valueset(obs, "observations", valueset, element="value", own=("value_code", None))
    return t.with_code(obs, "observations", codes, element="value", own=("value_code", None))


# ------------------------------------------------------------------ initial population
def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, t: Retrieve
) -> np.ndarray:
    """Aged 18-85 at the end of the period, essential hypertension overlapping its first six
    months, and a finished qualifying outpatient encounter within the period."""
    start, end = bounds(period)
    age = age_at_end(subjects, period)
    adult = (age >= 18) & (age <= 85)

    htn = _verified_conditions(t, ["Essential Hypertension"])
    six_months = np.datetime64((period.start + pd.DateOffset(months=6)).to_datetime64(), "us")
    first_half = prevalence(htn).overlaps(start, six_months)
    has_htn = patients_with(subjects, htn.loc[first_half, "patient_id"])

    outpatient = [
        "Office Visit",
        "Annual Wellness Visit",
        "Preventive Care Services Established Office Visit, 18 and Up",
        "Preventive Care Services Initial Office Visit, 18 and Up",
        "Home Healthcare Services",
        "Virtual Encounter",
        "Telephone Visits",
    ]
    enc = _finished_encounters(t, outpatient)
    in_period = fhir_period(enc["start_at"], enc["end_at"]).during(start, end)
    has_visit = patients_with(subjects, enc.loc[in_period, "patient_id"])
    return adult & has_htn & has_visit


# ------------------------------------------------------------------ exclusions
def _hospice(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """Hospice.cql ``Has Hospice Services``."""
    start, end = bounds(period)
    out = np.zeros(len(subjects), dtype=bool)

    to_hospice = t.with_code(
        t.table("encounters"),
        "encounters",
        DISCHARGE_TO_HOSPICE,
        element="disposition",
        own=("discharge_disposition", None),
    )
    inpatient = _finished_encounters(t, ["Encounter Inpatient"], where=to_hospice)
    ends_in_period = within(fhir_period(inpatient["start_at"], inpatient["end_at"]).end(), start, end)
    out |= patients_with(subjects, inpatient.loc[ends_in_period, "patient_id"])

    enc = _finished_encounters(t, ["Hospice Encounter"])
    overlapping = fhir_period(enc["start_at"], enc["end_at"]).overlaps(start, end)
    out |= patients_with(subjects, enc.loc[overlapping, "patient_id"])

    obs = _assessments(t, HOSPICE_CARE_MDS, yes=_answer(t, [YES]))
    overlapping = timing(obs["effective_at"], obs["effective_end"]).overlaps(start, end)
    out |= patients_with(subjects, obs.loc[obs["yes"].to_numpy(dtype=bool) & overlapping, "patient_id"])

    req = _orders(t, "ServiceRequest", ["Hospice Care Ambulatory"])
    out |= patients_with(subjects, req.loc[within(ts(req["authored_at"]), start, end), "patient_id"])

    proc = _completed_procedures(t, ["Hospice Care Ambulatory"])
    overlapping = timing(proc["performed_start"], proc["performed_end"]).overlaps(start, end)
    out |= patients_with(subjects, proc.loc[overlapping, "patient_id"])

    cond = _verified_conditions(t, ["Hospice Diagnosis"])
    out |= patients_with(subjects, cond.loc[prevalence(cond).overlaps(start, end), "patient_id"])
    return out


def _palliative(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """PalliativeCare.cql ``Has Palliative Care in the Measurement Period``."""
    start, end = bounds(period)
    obs = _assessments(t, FACIT_PAL)
    overlapping = timing(obs["effective_at"], obs["effective_end"]).overlaps(start, end)
    out = patients_with(subjects, obs.loc[overlapping, "patient_id"])

    cond = _verified_conditions(t, ["Palliative Care Diagnosis"])
    out |= patients_with(subjects, cond.loc[prevalence(cond).overlaps(start, end), "patient_id"])

    enc = _finished_encounters(t, ["Palliative Care Encounter"])
    overlapping = fhir_period(enc["start_at"], enc["end_at"]).overlaps(start, end)
    out |= patients_with(subjects, enc.loc[overlapping, "patient_id"])

    proc = _completed_procedures(t, ["Palliative Care Intervention"])
    overlapping = timing(proc["performed_start"], proc["performed_end"]).overlaps(start, end)
    out |= patients_with(subjects, proc.loc[overlapping, "patient_id"])
    return out


def _renal_or_pregnancy(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """Pregnancy or renal diagnosis overlapping the period, kidney transplant or dialysis
    ending by its end, or an ESRD monthly outpatient encounter starting by its end."""
    start, end = bounds(period)
    refs = ["Pregnancy", "End Stage Renal Disease", "Kidney Transplant Recipient", "Chronic Kidney Disease, Stage 5"]
    cond = _verified_conditions(t, refs)
    out = patients_with(subjects, cond.loc[prevalence(cond).overlaps(start, end), "patient_id"])

    proc = _completed_procedures(t, ["Kidney Transplant", "Dialysis Services"])
    ended = timing(proc["performed_start"], proc["performed_end"]).end() < end
    out |= patients_with(subjects, proc.loc[ended, "patient_id"])

    enc = _finished_encounters(t, ["ESRD Monthly Outpatient Services"])
    started = fhir_period(enc["start_at"], enc["end_at"]).start() < end
    out |= patients_with(subjects, enc.loc[started, "patient_id"])
    return out


def _frailty(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """AdvancedIllnessandFrailty.cql ``Has Criteria Indicating Frailty``."""
    start, end = bounds(period)
    dev = _orders(t, "DeviceRequest", ["Frailty Device"])
    out = patients_with(subjects, dev.loc[within(ts(dev["authored_at"]), start, end), "patient_id"])

    obs = _assessments(t, MEDICAL_EQUIPMENTUSED, device=_answer(t, valueset="Frailty Device"))
    ends_in_period = within(timing(obs["effective_at"], obs["effective_end"]).end(), start, end)
    out |= patients_with(subjects, obs.loc[obs["device"].to_numpy(dtype=bool) & ends_in_period, "patient_id"])

    cond = _verified_conditions(t, ["Frailty Diagnosis"])
    out |= patients_with(subjects, cond.loc[prevalence(cond).overlaps(start, end), "patient_id"])

    enc = _finished_encounters(t, ["Frailty Encounter"])
    overlapping = fhir_period(enc["start_at"], enc["end_at"]).overlaps(start, end)
    out |= patients_with(subjects, enc.loc[overlapping, "patient_id"])

    obs = t.table("observations")
    keep = isin(obs["status"], SYMPTOM_STATUSES) & t.in_valueset(obs, "observations", ["Frailty Symptom"])
    sym = _rows(obs, keep, ["patient_id", "effective_at", "effective_end"])
    overlapping = timing(sym["effective_at"], sym["effective_end"]).overlaps(start, end)
    out |= patients_with(subjects, sym.loc[overlapping, "patient_id"])
    return out


def _advanced_illness_or_dementia_drugs(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """Advanced illness starting, or an active dementia-medication order overlapping, the
    year before or the measurement period itself."""
    start, end = bounds(period)
    window_start = np.datetime64((period.start - pd.DateOffset(years=1)).to_datetime64(), "us")
    cond = _verified_conditions(t, ["Advanced Illness"])
    started = within(prevalence(cond).start(), window_start, end)
    out = patients_with(subjects, cond.loc[started, "patient_id"])

    med = t.table("medications")
    keep = (
        isin(med["resource_type"], ["MedicationRequest"])
        & isin(med["status"], ["active"])
        & isin(med["intent"], ORDER_INTENTS)
        & t.in_valueset(med, "medications", ["Dementia Medications"])
    )
    med = _rows(med, keep, ["patient_id", "effective_start", "effective_end"])
    overlapping = timing(med["effective_start"], med["effective_end"]).overlaps(window_start, end)
    out |= patients_with(subjects, med.loc[overlapping, "patient_id"])
    return out


def _nursing_home(subjects: pd.DataFrame, t: Retrieve, period: Period) -> np.ndarray:
    """The last housing-status assessment ending by the end of the period says the patient
    lives in a nursing home (age is checked by the caller)."""
    _, end = bounds(period)
    obs = _assessments(t, HOUSING_STATUS, nursing=_answer(t, [LIVES_IN_NURSING_HOME]))
    ended = timing(obs["effective_at"], obs["effective_end"]).end()
    obs = obs.assign(__end=ended)[ended < end]
    last = obs.sort_values("__end", kind="stable").drop_duplicates("patient_id", keep="last")
    return patients_with(subjects, last.loc[last["nursing"].to_numpy(dtype=bool), "patient_id"])


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
    obs = _rows(obs, keep, columns)
    lo, hi = ts(obs["effective_at"]), ts(obs["effective_end"])
    latest = np.where(np.isnat(hi), lo, hi)
    obs = obs.assign(__latest=latest, __day=_as_days(latest))[~np.isnat(latest)].reset_index(drop=True)

    acute = _finished_encounters(t, ["Encounter Inpatient", "Emergency Department Evaluation and Management Visit"])
    # "during day of" a period contains the day only when its start is known; a missing
    # end means the stay is still going.
    stay = fhir_period(acute["start_at"], acute["end_at"])
    acute = pd.DataFrame({"patient_id": strs(acute["patient_id"]), "__lo": stay.start(), "__hi": stay.hi_min})
    acute = acute[~np.isnat(stay.start())]
    pairs = pd.DataFrame(
        {"__row": np.arange(len(obs)), "patient_id": strs(obs["patient_id"]), "__day": obs["__day"]}
    ).merge(acute, on="patient_id", how="inner")
    day = pairs["__day"].to_numpy(dtype="datetime64[D]")
    inside = (day >= _as_days(pairs["__lo"].to_numpy(dtype=US))) & (day <= _as_days(pairs["__hi"].to_numpy(dtype=US)))
    during_acute = np.zeros(len(obs), dtype=bool)
    during_acute[pairs["__row"].to_numpy()[inside]] = True

    acute_class = isin(t.lookup("encounters", obs["encounter_id"], "class_code"), ACUTE_CLASSES)
    in_period = within(obs["__latest"].to_numpy(dtype=US), start, end)
    return obs[~during_acute | (~acute_class & in_period)].reset_index(drop=True)


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
