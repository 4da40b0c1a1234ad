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
  Where the contract has a code without a system (route, observation value), the code alone is
  matched when no coding rows are supplied.
* Positive orders (comfort measures, the order a Task rejected) exclude ``doNotPerform`` requests:
  an order not to do something is never the order.

Every value set is referenced by its VSAC canonical URL (``VALUESETS``); the expansions are
licensed content that CareQI does not ship, so they come from the folders named by
``CAREQI_VALUESET_DIR`` and a missing one is a :class:`ValueSetError` naming every gap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from pipelines.compute.model import Period
from pipelines.compute.valuesets import ValueSetIndex
from pipelines.errors import MissingValueSets
from pipelines.tables import TABLES, coding_record_keys, empty_frame, latest_delivery, record_keys

log = logging.getLogger(__name__)

_VSAC = "http://cts.nlm.nih.gov/fhir/ValueSet/"

#: CQL value-set name -> canonical URL (the YAML lists the same URLs under ``references``).
VALUESETS: dict[str, str] = {
    name: _VSAC + oid
    for name, oid in {
        "Encounter Inpatient": "2.16.840.1.113883.3.666.5.307",
        "Emergency Department Visit": "2.16.840.1.113883.3.117.1.7.1.292",
        "Observation Services": "2.16.840.1.113762.1.4.1111.143",
        "Intensive Care Unit": "2.16.840.1.113762.1.4.1029.206",
        "Obstetrical or Pregnancy Related Conditions": "2.16.840.1.113883.3.117.1.7.1.263",
        "Obstetrics VTE": "2.16.840.1.113883.3.117.1.7.1.264",
        "Venous Thromboembolism": "2.16.840.1.113883.3.117.1.7.1.279",
        "Mental Health Diagnoses": "2.16.840.1.113883.3.464.1003.105.12.1004",
        "Hemorrhagic Stroke": "2.16.840.1.113883.3.117.1.7.1.212",
        "Ischemic Stroke": "2.16.840.1.113883.3.117.1.7.1.247",
        "General Surgery": "2.16.840.1.113883.3.117.1.7.1.255",
        "Gynecological Surgery": "2.16.840.1.113883.3.117.1.7.1.257",
        "Hip Fracture Surgery": "2.16.840.1.113883.3.117.1.7.1.258",
        "Hip Replacement Surgery": "2.16.840.1.113883.3.117.1.7.1.259",
        "Intracranial Neurosurgery": "2.16.840.1.113883.3.117.1.7.1.260",
        "Knee Replacement Surgery": "2.16.840.1.113883.3.117.1.7.1.261",
        "Urological Surgery": "2.16.840.1.113883.3.117.1.7.1.272",
        "Comfort Measures": "1.3.6.1.4.1.33895.1.3.0.45",
        "General or Neuraxial Anesthesia": "2.16.840.1.113883.3.666.5.1743",
        "Low Dose Unfractionated Heparin for VTE Prophylaxis": "2.16.840.1.113762.1.4.1045.39",
        "Low Molecular Weight Heparin for VTE Prophylaxis": "2.16.840.1.113883.3.117.1.7.1.219",
        "Injectable Factor Xa Inhibitor for VTE Prophylaxis": "2.16.840.1.113883.3.117.1.7.1.211",
        "Warfarin": "2.16.840.1.113883.3.117.1.7.1.232",
        "Rivaroxaban for VTE Prophylaxis": "2.16.840.1.113762.1.4.1110.50",
        "Oral Factor Xa Inhibitor for VTE Prophylaxis or VTE Treatment": "2.16.840.1.113883.3.117.1.7.1.134",
        "Subcutaneous route": "2.16.840.1.113883.3.117.1.7.1.223",
        "Intravenous route": "2.16.840.1.113883.3.117.1.7.1.222",
        "Unfractionated Heparin": "2.16.840.1.113883.3.117.1.7.1.218",
        "Direct Thrombin Inhibitor": "2.16.840.1.113883.3.117.1.7.1.205",
        "Glycoprotein IIb IIIa Inhibitors": "2.16.840.1.113762.1.4.1045.41",
        "Application of Intermittent Pneumatic Compression Devices": "2.16.840.1.113762.1.4.1110.65",
        "Application of Venous Foot Pumps": "2.16.840.1.113762.1.4.1110.64",
        "Application of Graduated Compression Stockings": "2.16.840.1.113762.1.4.1110.66",
        "Intermittent pneumatic compression devices": "2.16.840.1.113883.3.117.1.7.1.214",
        "Venous foot pumps": "2.16.840.1.113883.3.117.1.7.1.230",
        "Graduated compression stockings": "2.16.840.1.113883.3.117.1.7.1.256",
        "Atrial Fibrillation or Flutter": "2.16.840.1.113883.3.117.1.7.1.202",
        "Low Risk": "2.16.840.1.113883.3.117.1.7.1.400",
        "INR": "2.16.840.1.113883.3.117.1.7.1.213",
        "Medical Reason For Not Providing Treatment": "2.16.840.1.113883.3.117.1.7.1.473",
        "Patient Refusal": "2.16.840.1.113883.3.117.1.7.1.93",
    }.items()
}

LOINC = "http://loinc.org"
VTE_RISK_LOINC = "72136-5"  # direct-reference code "Risk for venous thromboembolism"
TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
FINAL_RESULT = ("final", "amended", "corrected")
PRINCIPAL_DIAGNOSIS = "principal"  # ex-diagnosistype
PRIMARY_PROCEDURE = "primary"  # ex-procedure-type

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

#: ``codings.element`` names under which each coded element may arrive (the extractor names
#: elements after FHIR; the aliases keep this module working across its naming choices).
ELEMENTS: dict[str, tuple[str, ...]] = {
    "code": ("code",),
    "medication": ("code", "medication", "medicationCodeableConcept"),
    "type": ("type",),
    "reason": ("reasonCode", "reason"),
    "route": ("route", "dosage.route", "dosageInstruction.route"),
    "status_reason": ("statusReason", "status_reason"),
    "refused": ("reasonRefused", "doNotPerformReason", "reasonCode", "reason"),
    "value": ("value", "valueCodeableConcept"),
    "diagnosis": ("diagnosis", "code", "diagnosisCodeableConcept"),
    "procedure": ("procedure", "code", "procedureCodeableConcept"),
}

_DAY = np.timedelta64(1, "D")
_HOUR = pd.Timedelta(hours=1)


# ------------------------------------------------------------------------------ data access
def _table(data: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """One row per record id (the latest batch wins), with every contract column present.

    Tables outside the contract (``claim_procedures``) are used as given when supplied.
    """
    df = data.get(name)
    spec = TABLES.get(name)
    if df is None:
        return empty_frame(spec) if spec is not None else pd.DataFrame()
    if spec is not None:
        missing = {c: pd.Series(pd.NA, index=df.index, dtype=t) for c, t in spec.dtypes.items() if c not in df}
        if missing:
            df = df.assign(**missing)
        df = latest_delivery(df, name)
    return df.reset_index(drop=True)


def _days(values: pd.Series | np.ndarray) -> np.ndarray:
    """Calendar day (UTC) of each timestamp, NaT where missing."""
    arr = pd.to_datetime(pd.Series(values), errors="coerce").to_numpy(dtype="datetime64[us]")
    return arr.astype("datetime64[D]")


def _ts(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values, errors="coerce").to_numpy(dtype="datetime64[us]")


def _isin(series: pd.Series, values: Iterable[str]) -> np.ndarray:
    return series.astype("string").isin(list(values)).to_numpy(dtype=bool, na_value=False)


def _eq(series: pd.Series, value: str) -> np.ndarray:
    return series.astype("string").eq(value).to_numpy(dtype=bool, na_value=False)


def _true(series: pd.Series) -> np.ndarray:
    return series.astype("boolean").to_numpy(dtype=bool, na_value=False)


class _Terms:
    """Value-set membership of records, over their first coding and every other coding."""

    def __init__(self, data: Mapping[str, pd.DataFrame], valuesets: ValueSetIndex) -> None:
        self.vs = valuesets
        self.codings = _table(data, "codings")

    def url(self, name: str) -> str:
        return VALUESETS[name]

    def coded_ids(self, table: str, element: str, names: Iterable[str]) -> np.ndarray:
        """Record ids of ``table`` having a coding of ``element`` in any of the value sets."""
        c = self.codings
        rows = c[_eq(c["table_name"], table) & _isin(c["element"], ELEMENTS[element])]
        if rows.empty:
            return np.array([], dtype=object)
        hit = np.zeros(len(rows), dtype=bool)
        for name in names:
            hit |= self.vs.mask(self.url(name), rows["system"], rows["code"])
        return coding_record_keys(rows.loc[hit]).to_numpy(dtype=object)

    def mask(
        self,
        frame: pd.DataFrame,
        key: str,
        table: str,
        element: str,
        names: Iterable[str] | str,
        code: str = "code",
        system: str | None = "code_system",
    ) -> np.ndarray:
        """True where the row's own (system, code), or any coding of it, is in a value set.

        ``system=None`` marks a contract column that keeps only the code (route, value):
        the code alone is matched against the set's codes.
        """
        names = (names,) if isinstance(names, str) else tuple(names)
        out = np.zeros(len(frame), dtype=bool)
        if frame.empty:
            return out
        for name in names:
            if system is None:
                codes = {c for _, c in self.vs.codes(self.url(name))}
                out |= _isin(frame[code], codes)
            else:
                out |= self.vs.mask(self.url(name), frame[system], frame[code])
        out |= _isin(record_keys(table, frame, key), self.coded_ids(table, element, names))
        return out


def _require(valuesets: ValueSetIndex) -> None:
    """Fail once, naming every missing set, instead of at the first lookup."""
    missing = [f"{name} ({url})" for name, url in VALUESETS.items() if url not in valuesets]
    if missing:
        raise MissingValueSets(
            f"CMS108 needs {len(missing)} value set(s) that are not loaded: {'; '.join(missing)} "
            "(supply the VSAC expansions through CAREQI_VALUESET_DIR)",
            [url for url in VALUESETS.values() if url not in valuesets],
        )


def _any_per_row(n: int, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[rows] = True
    return out


def _window_hits(stays: pd.DataFrame, events: pd.DataFrame, lo: str, hi: str) -> np.ndarray:
    """Per stay: some event of the same patient falls on a calendar day in [lo, hi].

    ``events`` has ``patient_id`` and ``day`` (datetime64[D]); ``lo``/``hi`` are day columns
    of ``stays``. This is CQL's ``X during day of Interval[lo, hi]`` for every pair at once.
    """
    n = len(stays)
    ev = events[["patient_id", "day"]]
    ev = ev[~np.isnat(ev["day"].to_numpy(dtype="datetime64[D]"))]
    if n == 0 or ev.empty:
        return np.zeros(n, dtype=bool)
    left = pd.DataFrame(
        {"__row": np.arange(n), "patient_id": stays["patient_id"].to_numpy(), "lo": stays[lo], "hi": stays[hi]}
    )
    m = left.merge(ev, on="patient_id", how="inner")
    day = m["day"].to_numpy(dtype="datetime64[D]")
    ok = (day >= m["lo"].to_numpy(dtype="datetime64[D]")) & (day <= m["hi"].to_numpy(dtype="datetime64[D]"))
    return _any_per_row(n, m["__row"].to_numpy()[ok])


def _events(frame: pd.DataFrame, mask: np.ndarray, at: pd.Series | np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": frame["patient_id"].to_numpy()[mask], "day": _days(pd.Series(at))[mask]})


# ------------------------------------------------------------------------- encounter facts
def _encounter_types(encounters: pd.DataFrame, terms: _Terms, name: str) -> np.ndarray:
    return terms.mask(encounters, "encounter_id", "encounters", "type", name, "type_code", "type_system")


def _condition_hits(data: Mapping[str, pd.DataFrame], terms: _Terms, names: Iterable[str]) -> np.ndarray:
    """Condition ids whose code is in any of the value sets."""
    cond = _table(data, "conditions")
    hit = terms.mask(cond, "condition_id", "conditions", "code", names)
    return cond.loc[hit, "condition_id"].astype("string").to_numpy(dtype=object)


def _has_encounter_diagnosis(
    stays: pd.DataFrame, data: Mapping[str, pd.DataFrame], terms: _Terms, names: tuple[str, ...]
) -> np.ndarray:
    """VTE ``hasEncDiagnosisOf``: a referenced Condition's code, or a reasonCode, is in a set.

    CQMCommon 4.1 ``encounterDiagnosis()`` follows Encounter.reasonReference. When the
    encounter_diagnoses table says where a row came from (an ``element`` column), only
    reasonReference rows are used; otherwise every row (diagnosis and reason references).
    """
    by_reason = _isin(stays["encounter_id"], terms.coded_ids("encounters", "reason", names))
    links = _table(data, "encounter_diagnoses")
    if "element" in links.columns:
        links = links[_isin(links["element"], ("reasonReference",))]
    links = links[_isin(links["condition_id"], _condition_hits(data, terms, names))]
    return by_reason | _isin(stays["encounter_id"], links["encounter_id"].astype("string"))


def _age_at_start(stays: pd.DataFrame, data: Mapping[str, pd.DataFrame]) -> np.ndarray:
    """CQL ``AgeInYearsAt(date from start of period)``: completed years on that date."""
    pats = _table(data, "patients")[["patient_id", "birth_date"]]
    birth = stays[["patient_id"]].merge(pats, on="patient_id", how="left")["birth_date"]
    b = pd.to_datetime(birth, errors="coerce")
    s = pd.to_datetime(stays["start_at"], errors="coerce")
    years = (s.dt.year - b.dt.year).to_numpy(dtype=np.float64, na_value=np.nan)
    before = (s.dt.month * 100 + s.dt.day) < (b.dt.month * 100 + b.dt.day)
    return years - before.to_numpy(dtype=np.float64, na_value=np.nan)


def _latest_prior_start(stays: pd.DataFrame, anchor: np.ndarray, visits: pd.DataFrame) -> np.ndarray:
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
    end, anc = _ts(m["end_at"]), m["anchor"].to_numpy(dtype="datetime64[us]")
    ok = (end <= anc) & (end >= anc - np.timedelta64(3_600_000_000, "us"))
    m = m[ok]
    if m.empty:
        return out
    last = m.sort_values(["__row", "end_at"], kind="stable").drop_duplicates("__row", keep="last")
    out[last["__row"].to_numpy()] = _ts(last["start_at"])
    return out


def _hospitalization_start(stays: pd.DataFrame, data: Mapping[str, pd.DataFrame], terms: _Terms) -> np.ndarray:
    """Start of the hospitalization: an observation stay, and an ED visit before it, that
    ended within the hour before the next part began (CQMCommon ``hospitalizationWithObservation``)."""
    enc = _table(data, "encounters")
    finished = _eq(enc["status"], "finished")
    obs = enc[finished & _encounter_types(enc, terms, "Observation Services")]
    ed = enc[finished & _encounter_types(enc, terms, "Emergency Department Visit")]
    start = _ts(stays["start_at"])
    obs_start = _latest_prior_start(stays, start, obs)
    visit_start = np.where(np.isnat(obs_start), start, obs_start)
    ed_start = _latest_prior_start(stays, visit_start, ed)
    return np.where(np.isnat(ed_start), visit_start, ed_start)


class _Stays:
    """The encounters under evaluation with the days every window is built from.

    ``d0``: day of admission (start of Encounter.period). ``hosp``: day the hospitalization
    started. ``w_adm`` = [hosp, d0 + 1] (``fromDayOfStartOfHospitalizationToDayAfterAdmission``).
    ``anes``: a completed general or neuraxial anesthesia ended on day d0 + 1, which opens the
    procedure window [d0 + 1, d0 + 2] (``CalendarDayOfOrDayAfter`` of its end).
    """

    def __init__(self, subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], valuesets: ValueSetIndex) -> None:
        _require(valuesets)
        self.data = data
        self.terms = _Terms(data, valuesets)
        self.frame = pd.DataFrame(
            {
                "encounter_id": subjects["encounter_id"].astype("string").to_numpy(dtype=object),
                "patient_id": subjects["patient_id"].astype("string").to_numpy(dtype=object),
                "start_at": _ts(subjects["start_at"]),
                "end_at": _ts(subjects["end_at"]),
            }
        )
        f = self.frame
        f["d0"] = _days(f["start_at"])
        f["d1"] = f["d0"].to_numpy(dtype="datetime64[D]") + _DAY
        f["d2"] = f["d0"].to_numpy(dtype="datetime64[D]") + 2 * _DAY
        f["hosp"] = _days(_hospitalization_start(f, data, self.terms))
        f["anes"] = self._anesthesia_next_day()
        self.n = len(f)

    def _anesthesia_next_day(self) -> np.ndarray:
        """``AnesthesiaProcedure.performed.toInterval() ends 1 day after day of start of
        QualifyingEncounter.period``, status completed (any procedure of the patient)."""
        proc = _table(self.data, "procedures")
        hit = _eq(proc["status"], "completed") & self.terms.mask(
            proc, "procedure_id", "procedures", "code", "General or Neuraxial Anesthesia"
        )
        ends = _events(proc, hit, _performed_end(proc))
        return _window_hits(self.frame, ends, "d1", "d1")

    def in_windows(self, events: pd.DataFrame, admission: str = "hosp") -> tuple[np.ndarray, np.ndarray]:
        """(hit in the admission window, hit in the procedure window)."""
        adm = _window_hits(self.frame, events, admission, "d1")
        proc = self.frame["anes"].to_numpy(dtype=bool) & _window_hits(self.frame, events, "d1", "d2")
        return adm, proc

    def any_window(self, events: pd.DataFrame, admission: str = "hosp") -> np.ndarray:
        adm, proc = self.in_windows(events, admission)
        return adm | proc


def _performed_end(proc: pd.DataFrame) -> pd.Series:
    """End of ``performed.toInterval()``: a performedDateTime is a point, so its end is its start.

    The contract keeps performedDateTime and an open performedPeriod alike (start, no end);
    both are read as a point here. CQL would give an open period no end day at all.
    """
    return proc["performed_end"].where(proc["performed_end"].notna(), proc["performed_start"])


# ----------------------------------------------------------------------- initial population
def _initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, terms: _Terms
) -> np.ndarray:
    """VTE "Encounter With Age Range And Without VTE Diagnosis Or Obstetrical Conditions"."""
    end = _ts(subjects["end_at"])
    lo = np.datetime64(period.start.to_datetime64(), "us")
    hi = np.datetime64(period.end.to_datetime64(), "us")
    inpatient = (
        _eq(subjects["status"], "finished")
        & _encounter_types(subjects, terms, "Encounter Inpatient")
        & (end >= lo)
        & (end < hi)
    )
    adult = np.nan_to_num(_age_at_start(subjects, data), nan=-1.0) >= 18
    candidates = subjects[inpatient & adult]
    excluded = _has_encounter_diagnosis(
        candidates,
        data,
        terms,
        ("Obstetrical or Pregnancy Related Conditions", "Venous Thromboembolism", "Obstetrics VTE"),
    )
    keep = set(candidates["encounter_id"].astype("string")[~excluded])
    return _isin(subjects["encounter_id"], keep)


def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """Finished inpatient encounters ending in the measurement period, patient 18 or over at
    admission, without an obstetric or VTE encounter diagnosis (reason code or reference)."""
    _require(valuesets)
    return _initial_population(subjects, data, period, _Terms(data, valuesets))


# --------------------------------------------------------------------- denominator exclusion
def _icu_stay(stays: _Stays) -> np.ndarray:
    """ "Encounter With ICU Location Stay 1 Day Or More": an ICU location (Location.type) that
    starts on or after admission, on the day of or the day after it, and spans >= 1 calendar day."""
    f, data, terms = stays.frame, stays.data, stays.terms
    locs = _table(data, "locations")
    icu = terms.mask(locs, "location_id", "locations", "type", "Intensive Care Unit", "kind_code", "kind_system")
    icu_ids = locs.loc[icu, "location_id"].astype("string")
    hist = _table(data, "encounter_locations")
    hist = hist[_isin(hist["location_id"], icu_ids)]
    left = pd.DataFrame({"__row": np.arange(stays.n), "encounter_id": f["encounter_id"]})
    m = left.merge(hist[["encounter_id", "start_at", "end_at"]], on="encounter_id", how="inner")
    if m.empty:
        return np.zeros(stays.n, dtype=bool)
    rows = m["__row"].to_numpy()
    ls, le = _ts(m["start_at"]), _ts(m["end_at"])
    ls_day, le_day = ls.astype("datetime64[D]"), le.astype("datetime64[D]")
    # An open-ended location period lasts to the end of time, so it spans >= 1 day.
    long_enough = np.isnat(le) | ((le_day - ls_day) >= _DAY)
    d0 = f["d0"].to_numpy(dtype="datetime64[D]")[rows]
    ok = (
        ~np.isnat(ls)
        & long_enough
        & (ls >= f["start_at"].to_numpy(dtype="datetime64[us]")[rows])
        & (ls_day >= d0)
        & (ls_day <= d0 + _DAY)
    )
    return _any_per_row(stays.n, rows[ok])


def _principal_diagnosis(stays: _Stays, names: tuple[str, ...]) -> np.ndarray:
    """CQMCommon ``hasPrincipalDiagnosisOf``: the claim diagnosis typed principal, on an active
    claim (use claim) whose item points at this encounter; coded, or a referenced Condition."""
    data, terms = stays.data, stays.terms
    cd = _table(data, "claim_diagnoses")
    cd = cd[_eq(cd["status"], "active") & _eq(cd["use"], "claim") & _eq(cd["diagnosis_type"], PRINCIPAL_DIAGNOSIS)]
    coded = terms.mask(cd, "claim_diagnosis_id", "claim_diagnoses", "diagnosis", names)
    referenced = _isin(cd["condition_id"], _condition_hits(data, terms, names))
    return _isin(stays.frame["encounter_id"], cd.loc[coded | referenced, "encounter_id"].astype("string"))


def _principal_procedure(stays: _Stays, names: tuple[str, ...]) -> np.ndarray:
    """VTE ``hasPrincipalProcedureOf``: the claim procedure typed primary whose sequence an item
    for this encounter lists; its code, or the referenced Procedure's code, is in a set.

    Claim.procedure is not in the table contract yet: rows come from an optional
    ``claim_procedures`` table (claim_procedure_id, claim_id, encounter_id, status, use,
    sequence, procedure_type, code, code_system, procedure_id); without it no encounter has one.
    """
    data, terms = stays.data, stays.terms
    cp = _table(data, "claim_procedures")
    if cp.empty:
        return np.zeros(stays.n, dtype=bool)
    for col in (
        "claim_procedure_id",
        "encounter_id",
        "status",
        "use",
        "procedure_type",
        "code",
        "code_system",
        "procedure_id",
    ):
        if col not in cp.columns:
            cp[col] = pd.Series(pd.NA, index=cp.index, dtype="string")
    cp = cp[_eq(cp["status"], "active") & _eq(cp["use"], "claim") & _eq(cp["procedure_type"], PRIMARY_PROCEDURE)]
    coded = terms.mask(cp, "claim_procedure_id", "claim_procedures", "procedure", names)
    proc = _table(data, "procedures")
    proc_hits = proc.loc[terms.mask(proc, "procedure_id", "procedures", "code", names), "procedure_id"]
    referenced = _isin(cp["procedure_id"], proc_hits.astype("string"))
    return _isin(stays.frame["encounter_id"], cp.loc[coded | referenced, "encounter_id"].astype("string"))


def _comfort_measures(stays: _Stays) -> np.ndarray:
    """ "Intervention Comfort Measures" (an order, or a performed procedure) from the day the
    hospitalization started to the day after admission, or on the day of / after anesthesia end."""
    data, terms = stays.data, stays.terms
    req = _table(data, "requests")
    ordered = (
        _eq(req["resource_type"], "ServiceRequest")
        & ~_true(req["do_not_perform"])
        & _isin(req["intent"], ORDER_INTENTS)
        & _isin(req["status"], ("active", "on-hold", "completed"))
        & terms.mask(req, "request_id", "requests", "code", "Comfort Measures")
    )
    proc = _table(data, "procedures")
    performed = _isin(proc["status"], ("completed", "in-progress")) & terms.mask(
        proc, "procedure_id", "procedures", "code", "Comfort Measures"
    )
    events = pd.concat(
        [_events(req, ordered, req["authored_at"]), _events(proc, performed, proc["performed_start"])],
        ignore_index=True,
    )
    return stays.any_window(events)


def denominator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """Stays under 2 calendar days; an ICU stay starting by the day after admission; principal
    diagnosis of mental disorder or stroke; principal procedure of selected surgery; comfort
    measures from the start of the hospitalization to the day after admission or surgery."""
    stays = _Stays(subjects, data, valuesets)
    f = stays.frame
    los = (_days(f["end_at"]) - f["d0"].to_numpy(dtype="datetime64[D]")) / _DAY
    short = ~np.isnan(los) & (los < 2)
    return (
        short
        | _icu_stay(stays)
        | _principal_diagnosis(stays, ("Mental Health Diagnoses", "Hemorrhagic Stroke", "Ischemic Stroke"))
        | _principal_procedure(stays, SELECTED_SURGERY)
        | _comfort_measures(stays)
    )


# ------------------------------------------------------------------------------ numerator
def _administrations(data: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    med = _table(data, "medications")
    return med[_eq(med["resource_type"], "MedicationAdministration")].reset_index(drop=True)


def _prophylaxis_received(stays: _Stays) -> np.ndarray:
    """ "Pharmacological or Mechanical VTE Prophylaxis Received", started in either window."""
    data, terms = stays.data, stays.terms
    ma = _administrations(data)
    done = _eq(ma["status"], "completed")
    ldu = terms.mask(ma, "medication_id", "medications", "medication", PHARMACOLOGICAL[0]) & terms.mask(
        ma, "medication_id", "medications", "route", "Subcutaneous route", "route_code", None
    )
    other = terms.mask(ma, "medication_id", "medications", "medication", PHARMACOLOGICAL[1:])
    proc = _table(data, "procedures")
    applied = _eq(proc["status"], "completed") & terms.mask(
        proc, "procedure_id", "procedures", "code", DEVICE_APPLICATION
    )
    events = pd.concat(
        [_events(ma, done & (ldu | other), ma["effective_start"]), _events(proc, applied, proc["performed_start"])],
        ignore_index=True,
    )
    return stays.any_window(events)


def _oral_factor_xa_with_indication(stays: _Stays) -> np.ndarray:
    """Oral factor Xa inhibitor on the day of / after admission (or anesthesia end), for a
    patient with atrial fibrillation/flutter, prior VTE, or hip/knee replacement."""
    data, terms, f = stays.data, stays.terms, stays.frame
    ma = _administrations(data)
    xa = _eq(ma["status"], "completed") & terms.mask(
        ma,
        "medication_id",
        "medications",
        "medication",
        "Oral Factor Xa Inhibitor for VTE Prophylaxis or VTE Treatment",
    )
    given = stays.any_window(_events(ma, xa, ma["effective_start"]), admission="d0")
    if not given.any():
        return given

    cond = _table(data, "conditions")
    verified = ~_isin(cond["verification_status"], ("refuted", "entered-in-error"))
    onset_start = _ts(cond["onset_at"])
    # End of onset.toInterval(): onsetDateTime is a point; onsetPeriod.end otherwise.
    onset_end = np.where(np.isnat(_ts(cond["onset_end"])), onset_start, _ts(cond["onset_end"]))
    af = verified & terms.mask(cond, "condition_id", "conditions", "code", "Atrial Fibrillation or Flutter")
    vte = (
        verified
        & _isin(cond["clinical_status"], ("inactive", "remission", "resolved"))
        & terms.mask(cond, "condition_id", "conditions", "code", "Venous Thromboembolism")
    )
    proc = _table(data, "procedures")
    hip_knee = _eq(proc["status"], "completed") & terms.mask(
        proc, "procedure_id", "procedures", "code", ("Hip Replacement Surgery", "Knee Replacement Surgery")
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
    af_hit = _any_per_row(stays.n, m["__row"].to_numpy()[_ts(m["at"]) <= _ts(m["end_at"])])
    m = pairs(cond["patient_id"], vte, onset_end)
    vte_hit = _any_per_row(stays.n, m["__row"].to_numpy()[_ts(m["at"]) < _ts(m["start_at"])])
    m = pairs(proc["patient_id"], hip_knee, _ts(proc["performed_start"]))
    hk_hit = _any_per_row(stays.n, m["__row"].to_numpy()[_ts(m["at"]) <= _ts(m["end_at"])])
    af_dx = _has_encounter_diagnosis(f, data, terms, ("Atrial Fibrillation or Flutter",))
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
    obs = _table(data, "observations")
    final = _isin(obs["status"], FINAL_RESULT)
    risk_code = (_eq(obs["code_system"], LOINC) & _eq(obs["code"], VTE_RISK_LOINC)) | _isin(
        obs["observation_id"], _direct_code_ids(terms, "observations", LOINC, VTE_RISK_LOINC)
    )
    low = final & risk_code & terms.mask(obs, "observation_id", "observations", "value", "Low Risk", "value_code", None)
    earliest = obs["effective_at"].where(obs["effective_at"].notna(), obs["effective_end"])
    inr = (
        final
        & terms.mask(obs, "observation_id", "observations", "code", "INR")
        & (obs["value_num"].astype("Float64") > 3.0).to_numpy(dtype=bool, na_value=False)
        & _inr_comparable(obs["value_unit"])
    )
    ma = _administrations(data)
    ufh_iv = terms.mask(ma, "medication_id", "medications", "medication", "Unfractionated Heparin") & terms.mask(
        ma, "medication_id", "medications", "route", "Intravenous route", "route_code", None
    )
    other = terms.mask(
        ma,
        "medication_id",
        "medications",
        "medication",
        ("Direct Thrombin Inhibitor", "Glycoprotein IIb IIIa Inhibitors"),
    )
    anticoagulant = _eq(ma["status"], "completed") & (ufh_iv | other)
    events = pd.concat(
        [
            _events(obs, low, earliest),
            _events(obs, inr, obs["issued_at"]),
            _events(ma, anticoagulant, ma["effective_start"]),
        ],
        ignore_index=True,
    )
    return stays.any_window(events)


def _direct_code_ids(terms: _Terms, table: str, system: str, code: str) -> np.ndarray:
    """:func:`tables.record_keys` of the records with a coding equal to (system, code)."""
    c = terms.codings
    hit = _eq(c["table_name"], table) & _eq(c["system"], system) & _eq(c["code"], code)
    return coding_record_keys(c.loc[hit]).to_numpy(dtype=object)


def _not_given(stays: _Stays) -> pd.DataFrame:
    """Medication and device prophylaxis documented as not given, with why and when.

    One row per (record, reason coding): ``kind`` medication | device, ``patient_id``, ``day``
    (recorded / authored), ``system``, ``code``. Stands for "No VTE Prophylaxis Medication
    Administered Or Ordered" and "No Mechanical VTE Prophylaxis Performed Or Ordered".
    """
    data, terms = stays.data, stays.terms
    med = _table(data, "medications")
    proc = _table(data, "procedures")
    req = _table(data, "requests")
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
                "rkey": record_keys(table, rows, key).to_numpy(dtype=object),
                "patient_id": rows["patient_id"].astype("string").to_numpy(dtype=object),
                "day": _days(at[mask]),
            }
        )
        if reasons_from is None:
            own = pd.DataFrame({"rid": recs["rid"], "system": rows[system].to_numpy(), "code": rows[code].to_numpy()})
            c = terms.codings
            extra = c[
                _eq(c["table_name"], table)
                & _isin(c["element"], ELEMENTS[element])
                & _isin(coding_record_keys(c), recs["rkey"])
            ]
            extra = pd.DataFrame(
                {
                    "rid": extra["record_id"].astype("string").to_numpy(dtype=object),
                    "system": extra["system"].to_numpy(),
                    "code": extra["code"].to_numpy(),
                }
            )
            reasons = pd.concat([own, extra], ignore_index=True)
        else:
            reasons = reasons_from[reasons_from["rid"].isin(recs["rid"])]
        merged = recs.drop(columns="rkey").merge(reasons, on="rid", how="inner")
        merged["kind"] = kind
        parts.append(merged)

    # MedicationAdministrationNotDone: statusReason, at recorded.
    ma = med[_eq(med["resource_type"], "MedicationAdministration")].reset_index(drop=True)
    ma_nd = _eq(ma["status"], "not-done") & terms.mask(
        ma, "medication_id", "medications", "medication", PHARMACOLOGICAL
    )
    add(
        "medication",
        ma,
        ma_nd,
        "medication_id",
        "medications",
        _recorded(ma, "effective_start"),
        "status_reason_code",
        "status_reason_system",
        "status_reason",
    )
    # MedicationNotRequested: reasonCode, at authoredOn.
    mr = med[_eq(med["resource_type"], "MedicationRequest")].reset_index(drop=True)
    mr_vte = terms.mask(mr, "medication_id", "medications", "medication", PHARMACOLOGICAL)
    mr_dnp = _true(mr["do_not_perform"]) & _isin(mr["intent"], ORDER_INTENTS) & mr_vte
    add(
        "medication",
        mr,
        mr_dnp,
        "medication_id",
        "medications",
        mr["effective_start"],
        "reason_code",
        "reason_system",
        "reason",
    )
    # ProcedureNotDone: statusReason, at recorded.
    pnd = _eq(proc["status"], "not-done") & terms.mask(proc, "procedure_id", "procedures", "code", DEVICE_APPLICATION)
    add(
        "device",
        proc,
        pnd,
        "procedure_id",
        "procedures",
        _recorded(proc, "performed_start"),
        "status_reason_code",
        "status_reason_system",
        "status_reason",
    )
    # ServiceNotRequested: reasonRefused, at authoredOn.
    sr = req[_eq(req["resource_type"], "ServiceRequest")].reset_index(drop=True)
    sr_dev = terms.mask(sr, "request_id", "requests", "code", DEVICE_ORDER) & _isin(sr["intent"], ORDER_INTENTS)
    add(
        "device",
        sr,
        sr_dev & _true(sr["do_not_perform"]),
        "request_id",
        "requests",
        sr["authored_at"],
        "reason_code",
        "reason_system",
        "refused",
    )

    # Orders a Task rejected (TaskRejected, code fulfill): the Task's statusReason, at the
    # order's authoredOn; the order itself must be active.
    task = req[_eq(req["resource_type"], "Task") & _eq(req["status"], "rejected")].reset_index(drop=True)
    fulfill = (_eq(task["code_system"], TASK_CODES) & _eq(task["code"], "fulfill")) | _isin(
        record_keys("requests", task), _direct_code_ids(terms, "requests", TASK_CODES, "fulfill")
    )
    task = task[fulfill]
    if not task.empty:
        c = terms.codings
        tc = c[
            _eq(c["table_name"], "requests")
            & _isin(c["element"], ELEMENTS["status_reason"])
            & _isin(coding_record_keys(c), record_keys("requests", task))
        ]
        task_reasons = pd.concat(
            [
                pd.DataFrame(
                    {
                        "task": task["request_id"].astype("string").to_numpy(dtype=object),
                        "system": task["reason_system"].to_numpy(),
                        "code": task["reason_code"].to_numpy(),
                    }
                ),
                pd.DataFrame(
                    {
                        "task": tc["record_id"].astype("string").to_numpy(dtype=object),
                        "system": tc["system"].to_numpy(),
                        "code": tc["code"].to_numpy(),
                    }
                ),
            ],
            ignore_index=True,
        )
        focus = pd.DataFrame(
            {
                "rid": task["focus_id"].astype("string").to_numpy(dtype=object),
                "task": task["request_id"].astype("string").to_numpy(dtype=object),
            }
        )
        by_focus = focus.merge(task_reasons, on="task")[["rid", "system", "code"]]
        mr_rej = _eq(mr["status"], "active") & mr_vte
        add(
            "medication",
            mr,
            mr_rej,
            "medication_id",
            "medications",
            mr["effective_start"],
            "reason_code",
            "reason_system",
            "reason",
            reasons_from=by_focus,
        )
        sr_rej = _eq(sr["status"], "active") & sr_dev
        add(
            "device",
            sr,
            sr_rej,
            "request_id",
            "requests",
            sr["authored_at"],
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


def _recorded(frame: pd.DataFrame, fallback: str) -> pd.Series:
    """When a not-done event was recorded: the QI-Core ``recorded`` extension (``recorded_at``),
    else the event's own time. The contract does not carry ``recorded_at`` yet; a sender that
    omits the extension still dates the event this way rather than losing it."""
    at = frame[fallback]
    if "recorded_at" in frame.columns:
        return frame["recorded_at"].where(frame["recorded_at"].notna(), at)
    return at


def _documented_reason(stays: _Stays) -> tuple[np.ndarray, np.ndarray]:
    """(medical reason for both medication and device, patient refusal of either)."""
    nd = _not_given(stays)
    if nd.empty:
        z = np.zeros(stays.n, dtype=bool)
        return z, z
    vs = stays.terms.vs
    medical = vs.mask(VALUESETS["Medical Reason For Not Providing Treatment"], nd["system"], nd["code"])
    refusal = vs.mask(VALUESETS["Patient Refusal"], nd["system"], nd["code"])
    is_med = (nd["kind"] == "medication").to_numpy(dtype=bool)
    med_adm, med_proc = stays.in_windows(nd[medical & is_med])
    dev_adm, dev_proc = stays.in_windows(nd[medical & ~is_med])
    medical_reason = (med_adm & dev_adm) | (med_proc & dev_proc)
    return medical_reason, stays.any_window(nd[refusal])


def numerator(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """Prophylaxis (pharmacological or mechanical) started from the day the hospitalization
    began to the day after admission, or on the day of / after surgery ending the day after
    admission; or an oral factor Xa inhibitor with an indication; or low VTE risk / INR > 3 /
    therapeutic anticoagulant; or a medical reason against both drug and device; or refusal."""
    stays = _Stays(subjects, data, valuesets)
    medical, refusal = _documented_reason(stays)
    return _prophylaxis_received(stays) | _oral_factor_xa_with_indication(stays) | _low_risk(stays) | medical | refusal


__all__ = ["VALUESETS", "denominator_exclusion", "initial_population", "numerator"]
