"""CMS108 VTE Prophylaxis (eCQM 0.3.002, QI-Core 6): population functions, vectorised.

The measure logic is the published CQL (cqframework/ecqm-content-qicore-2025,
``CMS108FHIRVTEProphylaxis``, with its libraries VTE 8.18, CQMCommon 4.1, QICoreCommon 4.0,
TJCOverall 8.23). This module re-expresses it as joins over the tidy tables; the comments
name the CQL definition each block stands for, so a reviewer can check one against the other.

Choices that the tidy tables force (documented here because they change results in corner cases):

* Times are the facility's local wall-clock time, so "day of" comparisons use local calendar
  days, as the CQL does when a site's offsets are its own (the CMS test deck is all UTC, and is
  read in UTC).
* CQL selects Conditions through the ConditionEncounterDiagnosis / ConditionProblemsHealthConcerns
  profiles. Reference engines do not filter by declared profile (MADiE test data declares
  undefined ones), so every Condition of the patient is used, whatever its category.
* Codes are matched on every coding of an element (``codings`` table) as well as the flattened
  first coding, because CQL's ``in`` on a CodeableConcept is true when ANY coding is in the set.
  Where the contract has a code without a system (route, observation value), that column is
  matched on the code alone.
* Positive orders (comfort measures, the order a Task rejected) exclude ``doNotPerform`` requests:
  an order not to do something is never the order.

The value sets and codes are named as the CQL names them; what each name is (its VSAC
canonical) is declared in ``cms108_vte_prophylaxis.yaml``. The expansions are licensed
content that CareQI does not ship: without them the measure is not computed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.compute.ecqm import (
    DAY,
    Retrieve,
    adult_at_start,
    any_per_row,
    days,
    encounter_diagnosis,
    eq,
    events,
    hospitalization_start,
    inpatient_encounter,
    isin,
    point_end,
    principal_diagnosis,
    principal_procedure,
    reasons,
    recorded,
    refine,
    true,
    ts,
    window_hits,
)
from pipelines.compute.model import Period

VTE_RISK = "Risk for venous thromboembolism"  # direct-reference code (LOINC 72136-5)
FULFILL = "Fulfill"  # direct-reference code (task-code fulfill)
ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
FINAL_RESULT = ("final", "amended", "corrected")

PHARMACOLOGICAL = (
    "Low Dose Unfractionated Heparin for VTE Prophylaxis",
    "Low Molecular Weight Heparin for VTE Prophylaxis",
    "Injectable Factor Xa Inhibitor for VTE Prophylaxis",
    "Warfarin",
    "Rivaroxaban for VTE Prophylaxis",
)
DEVICE_APPLICATION = (
    "Application of Intermittent Pneumatic Compression Devices",
    "Application of Venous Foot Pumps",
    "Application of Graduated Compression Stockings",
)
DEVICE_ORDER = (
    "Venous foot pumps",
    "Intermittent pneumatic compression devices",
    "Graduated compression stockings",
)
SELECTED_SURGERY = (
    "General Surgery",
    "Gynecological Surgery",
    "Hip Fracture Surgery",
    "Hip Replacement Surgery",
    "Intracranial Neurosurgery",
    "Knee Replacement Surgery",
    "Urological Surgery",
)


# ------------------------------------------------------------------------- encounter facts
class _Stays:
    """The encounters under evaluation with the days every window is built from.

    ``d0``: day of admission (start of Encounter.period). ``hosp``: day the hospitalization
    started. ``w_adm`` = [hosp, d0 + 1] (``fromDayOfStartOfHospitalizationToDayAfterAdmission``).
    ``anes``: a completed general or neuraxial anesthesia ended on day d0 + 1, which opens the
    procedure window [d0 + 1, d0 + 2] (``CalendarDayOfOrDayAfter`` of its end).
    """

    def __init__(self, subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], terms: Retrieve) -> None:
        self.data = data
        self.terms = terms
        self.frame = pd.DataFrame(
            {
                "encounter_id": subjects["encounter_id"].astype("string").to_numpy(dtype=object),
                "patient_id": subjects["patient_id"].astype("string").to_numpy(dtype=object),
                "start_at": ts(subjects["start_at"]),
                "end_at": ts(subjects["end_at"]),
            }
        )
        f = self.frame
        f["d0"] = days(f["start_at"])
        f["d1"] = f["d0"].to_numpy(dtype="datetime64[D]") + DAY
        f["d2"] = f["d0"].to_numpy(dtype="datetime64[D]") + 2 * DAY
        f["hosp"] = days(hospitalization_start(f, self.terms))
        # Asked by the denominator exclusion and the numerator alike: found once per stay.
        f["anes"] = terms.per_record("cms108 anesthesia ended the next day", f, "encounter_id", self._anesthesia)
        self.n = len(f)

    def _anesthesia(self, stays: pd.DataFrame) -> np.ndarray:
        """``AnesthesiaProcedure.performed.toInterval() ends 1 day after day of start of
        QualifyingEncounter.period``, status completed (any procedure of the patient)."""
        proc = self.data["procedures"]
        hit = eq(proc["status"], "completed") & self.terms.in_valueset(
            proc, "procedures", "General or Neuraxial Anesthesia"
        )
        ends = events(proc, hit, point_end(proc["performed_start"], proc["performed_end"]))
        return window_hits(stays, ends, "d1", "d1")

    def in_windows(self, found: pd.DataFrame, admission: str = "hosp") -> tuple[np.ndarray, np.ndarray]:
        """(hit in the admission window, hit in the procedure window)."""
        adm = window_hits(self.frame, found, admission, "d1")
        proc = self.frame["anes"].to_numpy(dtype=bool) & window_hits(self.frame, found, "d1", "d2")
        return adm, proc

    def any_window(self, found: pd.DataFrame, admission: str = "hosp") -> np.ndarray:
        adm, proc = self.in_windows(found, admission)
        return adm | proc


# ----------------------------------------------------------------------- initial population
def _initial_population(subjects: pd.DataFrame, period: Period, terms: Retrieve) -> np.ndarray:
    """VTE "Encounter With Age Range And Without VTE Diagnosis Or Obstetrical Conditions"."""
    excluded = ("Obstetrical or Pregnancy Related Conditions", "Venous Thromboembolism", "Obstetrics VTE")
    return refine(
        inpatient_encounter(subjects, terms, period),
        subjects,
        lambda s: adult_at_start(s, terms) & ~encounter_diagnosis(s, terms, excluded),
    )


def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, terms: Retrieve
) -> np.ndarray:
    """Finished inpatient encounters ending in the measurement period, patient 18 or over at
    admission, without an obstetric or VTE encounter diagnosis (reason code or reference)."""
    return _initial_population(subjects, period, terms)


# --------------------------------------------------------------------- denominator exclusion
def _icu_stay(stays: _Stays) -> np.ndarray:
    """ "Encounter With ICU Location Stay 1 Day Or More": an ICU location (Location.type) that
    starts on or after admission, on the day of or the day after it, and spans >= 1 calendar day."""
    f, data, terms = stays.frame, stays.data, stays.terms
    locs = data["locations"]
    icu = terms.in_valueset(locs, "locations", "Intensive Care Unit")
    icu_ids = locs.loc[icu, "location_id"].astype("string")
    hist = data["encounter_locations"]
    hist = hist[isin(hist["location_id"], icu_ids)]
    left = pd.DataFrame({"__row": np.arange(stays.n), "encounter_id": f["encounter_id"]})
    m = left.merge(hist[["encounter_id", "start_at", "end_at"]], on="encounter_id", how="inner")
    if m.empty:
        return np.zeros(stays.n, dtype=bool)
    rows = m["__row"].to_numpy()
    ls, le = ts(m["start_at"]), ts(m["end_at"])
    ls_day, le_day = ls.astype("datetime64[D]"), le.astype("datetime64[D]")
    # An open-ended location period lasts to the end of time, so it spans >= 1 day.
    long_enough = np.isnat(le) | ((le_day - ls_day) >= DAY)
    d0 = f["d0"].to_numpy(dtype="datetime64[D]")[rows]
    ok = (
        ~np.isnat(ls)
        & long_enough
        & (ls >= f["start_at"].to_numpy(dtype="datetime64[us]")[rows])
        & (ls_day >= d0)
        & (ls_day <= d0 + DAY)
    )
    return any_per_row(stays.n, rows[ok])


def _comfort_measures(stays: _Stays) -> np.ndarray:
    """ "Intervention Comfort Measures" (an order, or a performed procedure) from the day the
    hospitalization started to the day after admission, or on the day of / after anesthesia end."""
    data, terms = stays.data, stays.terms
    req = data["requests"]
    ordered = (
        eq(req["resource_type"], "ServiceRequest")
        & ~true(req["do_not_perform"])
        & isin(req["intent"], ORDER_INTENTS)
        & isin(req["status"], ("active", "on-hold", "completed"))
        & terms.in_valueset(req, "requests", "Comfort Measures", element="code", own=("code", "code_system"))
    )
    proc = data["procedures"]
    performed = isin(proc["status"], ("completed", "in-progress")) & terms.in_valueset(
        proc, "procedures", "Comfort Measures"
    )
    found = pd.concat(
        [events(req, ordered, req["authored_at"]), events(proc, performed, proc["performed_start"])],
        ignore_index=True,
    )
    return stays.any_window(found)


def denominator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, terms: Retrieve
) -> np.ndarray:
    """Stays under 2 calendar days; an ICU stay starting by the day after admission; principal
    diagnosis of mental disorder or stroke; principal procedure of selected surgery; comfort
    measures from the start of the hospitalization to the day after admission or surgery."""
    stays = _Stays(subjects, data, terms)
    f = stays.frame
    los = (days(f["end_at"]) - f["d0"].to_numpy(dtype="datetime64[D]")) / DAY
    short = ~np.isnan(los) & (los < 2)
    return (
        short
        | _icu_stay(stays)
        | principal_diagnosis(
            f["encounter_id"], stays.terms, ("Mental Health Diagnoses", "Hemorrhagic Stroke", "Ischemic Stroke")
        )
        | principal_procedure(f["encounter_id"], stays.terms, SELECTED_SURGERY)
        | _comfort_measures(stays)
    )


# ------------------------------------------------------------------------------ numerator
def _administered(med: pd.DataFrame, status: str) -> np.ndarray:
    """MedicationAdministrations of ``status``: a mask over the whole medications table, so
    that the value-set retrieves beside it are asked of the table (indexed once)."""
    return eq(med["resource_type"], "MedicationAdministration") & eq(med["status"], status)


def _prophylaxis_received(stays: _Stays) -> np.ndarray:
    """ "Pharmacological or Mechanical VTE Prophylaxis Received", started in either window."""
    data, terms = stays.data, stays.terms
    ma = data["medications"]
    done = _administered(ma, "completed")
    ldu = terms.in_valueset(ma, "medications", PHARMACOLOGICAL[0]) & terms.in_valueset(
        ma, "medications", "Subcutaneous route", element="route", own=("route_code", None)
    )
    other = terms.in_valueset(ma, "medications", PHARMACOLOGICAL[1:])
    proc = data["procedures"]
    applied = eq(proc["status"], "completed") & terms.in_valueset(proc, "procedures", DEVICE_APPLICATION)
    found = pd.concat(
        [events(ma, done & (ldu | other), ma["effective_start"]), events(proc, applied, proc["performed_start"])],
        ignore_index=True,
    )
    return stays.any_window(found)


def _oral_factor_xa_with_indication(stays: _Stays) -> np.ndarray:
    """Oral factor Xa inhibitor on the day of / after admission (or anesthesia end), for a
    patient with atrial fibrillation/flutter, prior VTE, or hip/knee replacement."""
    data, terms, f = stays.data, stays.terms, stays.frame
    ma = data["medications"]
    xa = _administered(ma, "completed") & terms.in_valueset(
        ma, "medications", "Oral Factor Xa Inhibitor for VTE Prophylaxis or VTE Treatment"
    )
    given = stays.any_window(events(ma, xa, ma["effective_start"]), admission="d0")
    if not given.any():
        return given

    cond = data["conditions"]
    verified = ~isin(cond["verification_status"], ("refuted", "entered-in-error"))
    onset_start = ts(cond["onset_at"])
    # End of onset.toInterval(): onsetDateTime is a point; onsetPeriod.end otherwise.
    onset_end = np.where(np.isnat(ts(cond["onset_end"])), onset_start, ts(cond["onset_end"]))
    af = verified & terms.in_valueset(cond, "conditions", "Atrial Fibrillation or Flutter")
    vte = (
        verified
        & isin(cond["clinical_status"], ("inactive", "remission", "resolved"))
        & terms.in_valueset(cond, "conditions", "Venous Thromboembolism")
    )
    proc = data["procedures"]
    hip_knee = eq(proc["status"], "completed") & terms.in_valueset(
        proc, "procedures", ("Hip Replacement Surgery", "Knee Replacement Surgery")
    )

    def pairs(patient: pd.Series, mask: np.ndarray, at: np.ndarray) -> pd.DataFrame:
        left = pd.DataFrame(
            {
                "__row": np.arange(stays.n),
                "patient_id": f["patient_id"],
                "start_at": f["start_at"],
                "end_at": f["end_at"],
            }
        )
        right = pd.DataFrame({"patient_id": patient.to_numpy()[mask], "at": at[mask]})
        return left.merge(right, on="patient_id", how="inner")

    m = pairs(cond["patient_id"], af, onset_start)
    af_hit = any_per_row(stays.n, m["__row"].to_numpy()[ts(m["at"]) <= ts(m["end_at"])])
    m = pairs(cond["patient_id"], vte, onset_end)
    vte_hit = any_per_row(stays.n, m["__row"].to_numpy()[ts(m["at"]) < ts(m["start_at"])])
    m = pairs(proc["patient_id"], hip_knee, ts(proc["performed_start"]))
    hk_hit = any_per_row(stays.n, m["__row"].to_numpy()[ts(m["at"]) <= ts(m["end_at"])])
    af_dx = encounter_diagnosis(f, terms, ("Atrial Fibrillation or Flutter",))
    return given & (af_hit | af_dx | vte_hit | hk_hit)


def _inr_comparable(units: pd.Series) -> np.ndarray:
    """INR is unitless: UCUM ``1`` or an annotation such as ``{INR}`` (equal to 1); a missing
    unit is taken as unitless. Any other unit cannot be compared with 3.0."""
    u = units.astype("string").str.strip()
    return (u.isna() | u.eq("1") | u.str.match(r"^\{.*\}$")).to_numpy(dtype=bool, na_value=True)


def _low_risk(stays: _Stays) -> np.ndarray:
    """ "Low Risk Indicator For VTE": a low-risk assessment, INR > 3, or a therapeutic
    anticoagulant, timed in either window."""
    data, terms = stays.data, stays.terms
    obs = data["observations"]
    final = isin(obs["status"], FINAL_RESULT)
    risk_code = terms.with_code(obs, "observations", [VTE_RISK], element="code")
    low = refine(
        final & risk_code,
        obs,
        lambda o: terms.in_valueset(o, "observations", "Low Risk", element="value", own=("value_code", None)),
    )
    earliest = obs["effective_at"].where(obs["effective_at"].notna(), obs["effective_end"])
    inr = refine(
        final & terms.in_valueset(obs, "observations", "INR"),
        obs,
        lambda o: (
            (o["value_num"].astype("Float64") > 3.0).to_numpy(dtype=bool, na_value=False)
            & _inr_comparable(o["value_unit"])
        ),
    )
    ma = data["medications"]
    ufh_iv = terms.in_valueset(ma, "medications", "Unfractionated Heparin") & terms.in_valueset(
        ma, "medications", "Intravenous route", element="route", own=("route_code", None)
    )
    other = terms.in_valueset(ma, "medications", ("Direct Thrombin Inhibitor", "Glycoprotein IIb IIIa Inhibitors"))
    anticoagulant = _administered(ma, "completed") & (ufh_iv | other)
    found = pd.concat(
        [
            events(obs, low, earliest),
            events(obs, inr, obs["issued_at"]),
            events(ma, anticoagulant, ma["effective_start"]),
        ],
        ignore_index=True,
    )
    return stays.any_window(found)


def _not_given(stays: _Stays) -> pd.DataFrame:
    """Medication and device prophylaxis documented as not given, with why and when.

    One row per (record, reason coding): ``kind`` medication | device, ``patient_id``, ``day``
    (recorded / authored), ``system``, ``code``. Stands for "No VTE Prophylaxis Medication
    Administered Or Ordered" and "No Mechanical VTE Prophylaxis Performed Or Ordered".
    """
    data, terms = stays.data, stays.terms
    med = data["medications"]
    proc = data["procedures"]
    req = data["requests"]
    parts: list[pd.DataFrame] = []

    def add(
        kind: str,
        frame: pd.DataFrame,
        mask: np.ndarray,
        key: str,
        table: str,
        at: pd.Series,
        code: str,
        system: str,
        element: str,
        reasons_from: pd.DataFrame | None = None,
    ) -> None:
        rows = frame[mask]
        if rows.empty:
            return
        recs = pd.DataFrame(
            {
                "rid": rows[key].astype("string").to_numpy(dtype=object),
                "patient_id": rows["patient_id"].astype("string").to_numpy(dtype=object),
                "day": days(at[mask]),
            }
        )
        if reasons_from is None:
            why = reasons(rows, table, key, terms, element, code, system)
        else:
            why = reasons_from[reasons_from["rid"].isin(recs["rid"])]
        merged = recs.merge(why, on="rid", how="inner")
        merged["kind"] = kind
        parts.append(merged)

    # MedicationAdministrationNotDone: statusReason, at recorded.
    vte_drug = terms.in_valueset(med, "medications", PHARMACOLOGICAL)
    ma_nd = _administered(med, "not-done") & vte_drug
    add(
        "medication",
        med,
        ma_nd,
        "medication_id",
        "medications",
        recorded(med, "effective_start"),
        "status_reason_code",
        "status_reason_system",
        "status_reason",
    )
    # MedicationNotRequested: reasonCode, at authoredOn.
    mr_vte = eq(med["resource_type"], "MedicationRequest") & vte_drug
    mr_dnp = true(med["do_not_perform"]) & isin(med["intent"], ORDER_INTENTS) & mr_vte
    add(
        "medication",
        med,
        mr_dnp,
        "medication_id",
        "medications",
        med["effective_start"],
        "reason_code",
        "reason_system",
        "reason",
    )
    # ProcedureNotDone: statusReason, at recorded.
    pnd = eq(proc["status"], "not-done") & terms.in_valueset(proc, "procedures", DEVICE_APPLICATION)
    add(
        "device",
        proc,
        pnd,
        "procedure_id",
        "procedures",
        recorded(proc, "performed_start"),
        "status_reason_code",
        "status_reason_system",
        "status_reason",
    )
    # ServiceNotRequested: reasonRefused, at authoredOn.
    sr_dev = (
        eq(req["resource_type"], "ServiceRequest")
        & terms.in_valueset(req, "requests", DEVICE_ORDER, element="code", own=("code", "code_system"))
        & isin(req["intent"], ORDER_INTENTS)
    )
    add(
        "device",
        req,
        sr_dev & true(req["do_not_perform"]),
        "request_id",
        "requests",
        req["authored_at"],
        "reason_code",
        "reason_system",
        "refused",
    )

    # Orders a Task rejected (TaskRejected, code fulfill): the Task's statusReason, at the
    # order's authoredOn; the order itself must be active.
    task = req[eq(req["resource_type"], "Task") & eq(req["status"], "rejected")].reset_index(drop=True)
    fulfill = terms.with_code(task, "requests", [FULFILL], element="code")
    task = task[fulfill]
    if not task.empty:
        task_reasons = reasons(task, "requests", "request_id", terms, "status_reason", "reason_code", "reason_system")
        task_reasons = task_reasons.rename(columns={"rid": "task"})
        focus = pd.DataFrame(
            {
                "rid": task["focus_id"].astype("string").to_numpy(dtype=object),
                "task": task["request_id"].astype("string").to_numpy(dtype=object),
            }
        )
        by_focus = focus.merge(task_reasons, on="task")[["rid", "system", "code"]]
        mr_rej = eq(med["status"], "active") & mr_vte
        add(
            "medication",
            med,
            mr_rej,
            "medication_id",
            "medications",
            med["effective_start"],
            "reason_code",
            "reason_system",
            "reason",
            reasons_from=by_focus,
        )
        sr_rej = eq(req["status"], "active") & sr_dev
        add(
            "device",
            req,
            sr_rej,
            "request_id",
            "requests",
            req["authored_at"],
            "reason_code",
            "reason_system",
            "refused",
            reasons_from=by_focus,
        )

    if not parts:
        return pd.DataFrame(
            {c: pd.Series(dtype=object) for c in ("rid", "patient_id", "day", "system", "code", "kind")}
        )
    return pd.concat(parts, ignore_index=True)


def _documented_reason(stays: _Stays) -> tuple[np.ndarray, np.ndarray]:
    """(medical reason for both medication and device, patient refusal of either)."""
    nd = _not_given(stays)
    if nd.empty:
        z = np.zeros(stays.n, dtype=bool)
        return z, z
    vs = stays.terms.vs
    medical = vs.mask("Medical Reason For Not Providing Treatment", nd["system"], nd["code"])
    refusal = vs.mask("Patient Refusal", nd["system"], nd["code"])
    is_med = (nd["kind"] == "medication").to_numpy(dtype=bool)
    med_adm, med_proc = stays.in_windows(nd[medical & is_med])
    dev_adm, dev_proc = stays.in_windows(nd[medical & ~is_med])
    medical_reason = (med_adm & dev_adm) | (med_proc & dev_proc)
    return medical_reason, stays.any_window(nd[refusal])


def numerator(subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, terms: Retrieve) -> np.ndarray:
    """Prophylaxis (pharmacological or mechanical) started from the day the hospitalization
    began to the day after admission, or on the day of / after surgery ending the day after
    admission; or an oral factor Xa inhibitor with an indication; or low VTE risk / INR > 3 /
    therapeutic anticoagulant; or a medical reason against both drug and device; or refusal."""
    stays = _Stays(subjects, data, terms)
    medical, refusal = _documented_reason(stays)
    return _prophylaxis_received(stays) | _oral_factor_xa_with_indication(stays) | _low_risk(stays) | medical | refusal


__all__ = ["denominator_exclusion", "initial_population", "numerator"]
