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
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.compute.model import Period
from pipelines.compute.valuesets import ValueSetIndex
from pipelines.errors import MissingValueSets
from pipelines.tables import TABLES, coding_record_keys, empty_frame, latest_delivery, record_keys

VSAC = "http://cts.nlm.nih.gov/fhir/ValueSet/"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"

#: Every value set the measure and its libraries use, by canonical URL.
VALUESETS: dict[str, str] = {
    # initial population
    "essential_hypertension": VSAC + "2.16.840.1.113883.3.464.1003.104.12.1011",
    "office_visit": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1001",
    "annual_wellness_visit": VSAC + "2.16.840.1.113883.3.526.3.1240",
    "preventive_established_18_up": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1025",
    "preventive_initial_18_up": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1023",
    "home_healthcare_services": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1016",
    "virtual_encounter": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1089",
    "telephone_visits": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1080",
    # denominator exclusions
    "encounter_inpatient": VSAC + "2.16.840.1.113883.3.666.5.307",
    "hospice_encounter": VSAC + "2.16.840.1.113883.3.464.1003.1003",
    "hospice_care_ambulatory": VSAC + "2.16.840.1.113883.3.526.3.1584",
    "hospice_diagnosis": VSAC + "2.16.840.1.113883.3.464.1003.1165",
    "pregnancy": VSAC + "2.16.840.1.113883.3.526.3.378",
    "end_stage_renal_disease": VSAC + "2.16.840.1.113883.3.526.3.353",
    "kidney_transplant_recipient": VSAC + "2.16.840.1.113883.3.464.1003.109.12.1029",
    "ckd_stage_5": VSAC + "2.16.840.1.113883.3.526.3.1002",
    "kidney_transplant": VSAC + "2.16.840.1.113883.3.464.1003.109.12.1012",
    "dialysis_services": VSAC + "2.16.840.1.113883.3.464.1003.109.12.1013",
    "esrd_monthly_outpatient_services": VSAC + "2.16.840.1.113883.3.464.1003.109.12.1014",
    "advanced_illness": VSAC + "2.16.840.1.113883.3.464.1003.110.12.1082",
    "dementia_medications": VSAC + "2.16.840.1.113883.3.464.1003.196.12.1510",
    "frailty_device": VSAC + "2.16.840.1.113883.3.464.1003.118.12.1300",
    "frailty_diagnosis": VSAC + "2.16.840.1.113883.3.464.1003.113.12.1074",
    "frailty_encounter": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1088",
    "frailty_symptom": VSAC + "2.16.840.1.113883.3.464.1003.113.12.1075",
    "palliative_care_encounter": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1090",
    "palliative_care_intervention": VSAC + "2.16.840.1.113883.3.464.1003.198.12.1135",
    "palliative_care_diagnosis": VSAC + "2.16.840.1.113883.3.464.1003.1167",
    # numerator
    "emergency_department_visit": VSAC + "2.16.840.1.113883.3.464.1003.101.12.1010",
}

#: Direct-reference codes (system, code).
HOSPICE_CARE_MDS = (LOINC, "45755-6")
YES = (SNOMED, "373066001")
DISCHARGE_TO_HOSPICE = {(SNOMED, "428361000124107"), (SNOMED, "428371000124100")}
FACIT_PAL = (LOINC, "71007-9")
HOUSING_STATUS = (LOINC, "71802-3")
LIVES_IN_NURSING_HOME = (SNOMED, "160734000")
MEDICAL_EQUIPMENT_USED = (LOINC, "98181-1")
BLOOD_PRESSURE_PANELS = {(LOINC, "85354-9"), (LOINC, "55284-4")}

#: Status.cql filters.
ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
ASSESSMENT_DONE = ("final", "amended", "corrected")
SYMPTOM_STATUSES = ("preliminary", "final", "amended", "corrected")
VERIFIED = ("confirmed", "unconfirmed", "provisional", "differential")
ACTIVE_LIKE = ("active", "recurrence", "relapse")
#: Encounter classes whose readings the numerator ignores (CMS165 "Qualifying ... Reading").
ACUTE_CLASSES = ("EMER", "IMP", "ACUTE", "NONAC", "PRENC", "SS")

#: Elements of the ``codings`` table that feed each retrieve's code path.
CODE_ELEMENTS: dict[str, tuple[str, ...]] = {
    "conditions": ("code",),
    "encounters": ("type",),
    "procedures": ("code",),
    "observations": ("code",),
    "requests": ("code", "codeCodeableConcept"),
    "medications": ("code", "medication", "medicationCodeableConcept"),
}
#: Tidy columns holding the first coding of the retrieve's code path (default code / code_system).
OWN_CODE: dict[str, tuple[str, str]] = {"encounters": ("type_code", "type_system")}
VALUE_ELEMENTS = ("value", "valueCodeableConcept")
DISPOSITION_ELEMENTS = ("dischargeDisposition", "hospitalization.dischargeDisposition")

_US = "datetime64[us]"
#: Closed interval boundaries that CQL reads as the beginning / end of time.
_MIN = np.datetime64("0001-01-01T00:00:00", "us")
_MAX = np.datetime64("9999-12-31T23:59:59", "us")
_SEP = "\x1f"


# ----------------------------------------------------------------------------- tables
class _Data:
    """The tables one population function reads, each de-duplicated once (the latest
    delivery of a record wins, as in the engine), and coding subsets cached by element."""

    def __init__(self, data: Mapping[str, pd.DataFrame]) -> None:
        self._data = data
        self._tables: dict[str, pd.DataFrame] = {}
        self._codings: dict[tuple[str, tuple[str, ...]], pd.DataFrame] = {}

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            df = self._data.get(name)
            if df is None:
                df = empty_frame(TABLES[name])
            self._tables[name] = latest_delivery(df, name)
        return self._tables[name]

    def codings(self, table: str, elements: tuple[str, ...]) -> pd.DataFrame:
        """(record_id, system, code) of every coding of the given elements of ``table``;
        ``record_id`` is the record's :func:`tables.record_keys` key."""
        if (table, elements) not in self._codings:
            cod = self.table("codings")
            cod = cod[_isin(cod["table_name"], [table]) & _isin(cod["element"], elements)]
            self._codings[(table, elements)] = pd.DataFrame(
                {
                    "record_id": _str(coding_record_keys(cod)),
                    "system": _str(cod["system"]),
                    "code": _str(cod["code"]),
                }
            ).reset_index(drop=True)
        return self._codings[(table, elements)]


def _ts(s: pd.Series) -> np.ndarray:
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, errors="coerce")
    return s.to_numpy(dtype=_US)


def _bounds(period: Period) -> tuple[np.datetime64, np.datetime64]:
    return np.datetime64(period.start.to_datetime64(), "us"), np.datetime64(period.end.to_datetime64(), "us")


def _day(values: np.ndarray) -> np.ndarray:
    return values.astype("datetime64[D]")


def _str(s: pd.Series) -> pd.Series:
    return s.astype("string")


def _isin(s: pd.Series, values: Iterable[str] | pd.Series | np.ndarray) -> np.ndarray:
    """Membership of a string column in a (possibly large) set of strings; nulls never match.

    Uses Arrow's hash-based ``is_in`` directly: pandas' own ``isin`` on Arrow strings boxes
    every candidate value, which dominates when matching ids against ids."""
    if not isinstance(values, pd.Series | np.ndarray):
        values = list(values)
    candidates = pa.array(pd.Series(values, dtype="string").dropna(), type=pa.large_string())
    if len(s) == 0 or len(candidates) == 0:
        return np.zeros(len(s), dtype=bool)
    column = pa.array(_str(s), type=pa.large_string())
    hit = pc.is_in(column, value_set=candidates, skip_nulls=True)
    return np.array(hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _true(s: pd.Series) -> np.ndarray:
    return s.astype("boolean").to_numpy(dtype=bool, na_value=False)


# ----------------------------------------------------------------------------- codes
def _own_coding(table: str, df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    code, system = OWN_CODE.get(table, ("code", "code_system"))
    return _str(df[system]), _str(df[code])


def _rows_in_valueset(
    t: _Data, table: str, df: pd.DataFrame, refs: Iterable[str], valuesets: ValueSetIndex
) -> np.ndarray:
    """Rows of ``df`` with ANY coding in any of the value sets (CQL retrieve by value set):
    the tidy row's own first coding, or any coding of the element in ``codings``."""
    system, code = _own_coding(table, df)
    others = t.codings(table, CODE_ELEMENTS[table])
    out = np.zeros(len(df), dtype=bool)
    hit_ids = []
    for ref in refs:
        out |= valuesets.mask(ref, system, code)
        hit_ids.append(others.loc[valuesets.mask(ref, others["system"], others["code"]), "record_id"])
    ids = pd.concat(hit_ids).unique() if hit_ids else []
    return out | _isin(record_keys(table, df), ids)


def _code_mask(system: pd.Series, code: pd.Series, codes: Iterable[tuple[str, str]]) -> np.ndarray:
    wanted = [f"{s}{_SEP}{c}" for s, c in codes]
    return (system + _SEP + code).isin(wanted).to_numpy(dtype=bool, na_value=False)


def _rows_with_code(t: _Data, table: str, df: pd.DataFrame, codes: Iterable[tuple[str, str]]) -> np.ndarray:
    """Rows with ANY coding equal to one of ``codes`` (CQL ``~`` on a direct-reference code)."""
    codes = list(codes)
    system, code = _own_coding(table, df)
    others = t.codings(table, CODE_ELEMENTS[table])
    ids = others.loc[_code_mask(others["system"], others["code"], codes), "record_id"].unique()
    return _code_mask(system, code, codes) | _isin(record_keys(table, df), ids)


def _value_is(
    t: _Data,
    obs: pd.DataFrame,
    valuesets: ValueSetIndex,
    *,
    code: tuple[str, str] | None = None,
    valueset: str | None = None,
) -> np.ndarray:
    """Observation.value (a CodeableConcept) equivalent to ``code`` or in ``valueset``.

    All value codings from ``codings`` are matched on (system, code); the tidy
    ``value_code`` carries no system, so it is matched on the code alone.
    """
    values = t.codings("observations", VALUE_ELEMENTS)
    if code is not None:
        hit = _code_mask(values["system"], values["code"], [code])
        own = _isin(obs["value_code"], [code[1]])
    else:
        assert valueset is not None
        hit = valuesets.mask(valueset, values["system"], values["code"])
        own = _isin(obs["value_code"], {c for _, c in valuesets.codes(valueset)})
    return own | _isin(obs["observation_id"], values.loc[hit, "record_id"].unique())


# ------------------------------------------------------------------------- intervals
class Interval(NamedTuple):
    """CQL DateTime intervals, one per row, as the range each boundary may take.

    A known boundary has ``min == max``; a closed null boundary is the beginning or end
    of time; an open null boundary is unknown, i.e. anywhere between the other boundary
    and the end of time (cql-execution ``toClosed`` turns it into an Uncertainty). A
    comparison is true only when it holds for every possible value, so "unknown" reads
    as false, as CQL's null does in a ``where``. A null interval is NaT throughout.
    """

    lo_min: np.ndarray
    lo_max: np.ndarray
    hi_min: np.ndarray
    hi_max: np.ndarray

    def overlaps(self, start: np.datetime64, end_excl: np.datetime64) -> np.ndarray:
        return (self.lo_max < end_excl) & (self.hi_min >= start)

    def during(self, start: np.datetime64, end_excl: np.datetime64) -> np.ndarray:
        return (self.lo_min >= start) & (self.hi_max < end_excl)

    def start(self) -> np.ndarray:
        """``start of``: null for an unknown (open null) start."""
        return np.where(self.lo_min == self.lo_max, self.lo_min, np.datetime64("NaT", "us"))

    def end(self) -> np.ndarray:
        """``end of``: null for an unknown (open null) end."""
        return np.where(self.hi_min == self.hi_max, self.hi_min, np.datetime64("NaT", "us"))


def _fhir_period(start: pd.Series, end: pd.Series) -> Interval:
    """FHIRHelpers ``ToInterval(Period)``: ``[start, end]``, a missing end being the end of
    time (still going); without a start, ``(null, end]`` whose start is unknown. A row with
    neither is taken as having no period at all (null)."""
    s, e = _ts(start), _ts(end)
    lo_min = np.where(np.isnat(s) & ~np.isnat(e), _MIN, s)
    lo_max = np.where(np.isnat(s), e, s)
    hi = np.where(np.isnat(e) & ~np.isnat(s), _MAX, e)
    return Interval(lo_min, lo_max, hi, hi)


def _timing(start: pd.Series, end: pd.Series) -> Interval:
    """``effective[x]`` / ``performed[x]`` ``.toInterval()``. The tidy tables keep a dateTime
    in the start column with no end, so a start without an end is a point in time; an
    end is a Period's end."""
    s, e = _ts(start), _ts(end)
    return _fhir_period(pd.Series(s), pd.Series(np.where(np.isnat(e), s, e)))


def _within(values: np.ndarray, start: np.datetime64, end_excl: np.datetime64) -> np.ndarray:
    return (values >= start) & (values < end_excl)


def _prevalence(conditions: pd.DataFrame) -> Interval:
    """QICoreCommon ``prevalenceInterval()``: ``[onset, abatement]``; no onset is the beginning
    of time; an active (recurrence, relapse) condition without abatement lasts to the end
    of time; any other condition without abatement has NO interval (the CQL query over a
    null abatement returns null), so it never overlaps or starts anywhere."""
    onset, abatement = _ts(conditions["onset_at"]), _ts(conditions["abatement_at"])
    active = _isin(conditions["clinical_status"], ACTIVE_LIKE)
    exists = active | ~np.isnat(abatement)
    lo = np.where(exists, np.where(np.isnat(onset), _MIN, onset), np.datetime64("NaT", "us"))
    hi = np.where(active & np.isnat(abatement), _MAX, abatement)
    return Interval(lo, lo, hi, hi)


def _require(valuesets: ValueSetIndex) -> None:
    """Fail once, naming every VSAC set that is missing, rather than at the first lookup."""
    missing = sorted(url for url in VALUESETS.values() if url not in valuesets)
    if missing:
        raise MissingValueSets(
            f"CMS165 needs {len(missing)} value set(s) that are not loaded (supply the VSAC "
            f"expansions, e.g. CAREQI_VALUESET_DIR): {', '.join(missing)}",
            missing,
        )


# --------------------------------------------------------------------------- subjects
def _patients_with(subjects: pd.DataFrame, patient_ids: pd.Series) -> np.ndarray:
    return _isin(subjects["patient_id"], _str(patient_ids).dropna().unique())


def _age_at_end(subjects: pd.DataFrame, period: Period) -> np.ndarray:
    """AgeInYearsAt(date from end of "Measurement Period"); NaN without a birth date."""
    birth = pd.Series(_ts(subjects["birth_date"]))
    last_day = period.end - pd.Timedelta(days=1)
    years = last_day.year - birth.dt.year
    before = (last_day.month * 100 + last_day.day) < (birth.dt.month * 100 + birth.dt.day)
    return (years - before.astype("Float64")).to_numpy(dtype=np.float64, na_value=np.nan)


def _verified_conditions(t: _Data, refs: Iterable[str], valuesets: ValueSetIndex) -> pd.DataFrame:
    """Conditions (problem list, health concern or encounter diagnosis) in any of the sets,
    with no verification status or a non-refuted one (Status ``verified()``)."""
    cond = t.table("conditions")
    status = cond["verification_status"]
    verified = status.isna().to_numpy(dtype=bool) | _isin(status, VERIFIED)
    cond = cond[verified].reset_index(drop=True)
    return cond[_rows_in_valueset(t, "conditions", cond, refs, valuesets)].reset_index(drop=True)


def _finished_encounters(t: _Data, refs: Iterable[str], valuesets: ValueSetIndex) -> pd.DataFrame:
    enc = t.table("encounters")
    enc = enc[_isin(enc["status"], ["finished"])].reset_index(drop=True)
    return enc[_rows_in_valueset(t, "encounters", enc, refs, valuesets)].reset_index(drop=True)


def _completed_procedures(t: _Data, refs: Iterable[str], valuesets: ValueSetIndex) -> pd.DataFrame:
    proc = t.table("procedures")
    proc = proc[_isin(proc["status"], ["completed"])].reset_index(drop=True)
    return proc[_rows_in_valueset(t, "procedures", proc, refs, valuesets)].reset_index(drop=True)


def _orders(t: _Data, resource_type: str) -> pd.DataFrame:
    """Active or completed orders of one request type (Status ``isInterventionOrder`` /
    ``isDeviceOrderPersonalUseDevices``), never a do-not-perform request."""
    req = t.table("requests")
    keep = (
        _isin(req["resource_type"], [resource_type])
        & _isin(req["status"], ["active", "completed"])
        & _isin(req["intent"], ORDER_INTENTS)
        & ~_true(req["do_not_perform"])
    )
    return req[keep].reset_index(drop=True)


def _assessments(t: _Data, code: tuple[str, str]) -> pd.DataFrame:
    obs = t.table("observations")
    obs = obs[_isin(obs["status"], ASSESSMENT_DONE)].reset_index(drop=True)
    return obs[_rows_with_code(t, "observations", obs, [code])].reset_index(drop=True)


# ------------------------------------------------------------------ initial population
def initial_population(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """Aged 18-85 at the end of the period, essential hypertension overlapping its first six
    months, and a finished qualifying outpatient encounter within the period."""
    _require(valuesets)
    t = _Data(data)
    start, end = _bounds(period)
    age = _age_at_end(subjects, period)
    adult = (age >= 18) & (age <= 85)

    htn = _verified_conditions(t, [VALUESETS["essential_hypertension"]], valuesets)
    six_months = np.datetime64((period.start + pd.DateOffset(months=6)).to_datetime64(), "us")
    first_half = _prevalence(htn).overlaps(start, six_months)
    has_htn = _patients_with(subjects, htn.loc[first_half, "patient_id"])

    outpatient = [
        VALUESETS[k]
        for k in (
            "office_visit",
            "annual_wellness_visit",
            "preventive_established_18_up",
            "preventive_initial_18_up",
            "home_healthcare_services",
            "virtual_encounter",
            "telephone_visits",
        )
    ]
    enc = _finished_encounters(t, outpatient, valuesets)
    in_period = _fhir_period(enc["start_at"], enc["end_at"]).during(start, end)
    has_visit = _patients_with(subjects, enc.loc[in_period, "patient_id"])
    return adult & has_htn & has_visit


# ------------------------------------------------------------------ exclusions
def _hospice(subjects: pd.DataFrame, t: _Data, period: Period, valuesets: ValueSetIndex) -> np.ndarray:
    """Hospice.cql ``Has Hospice Services``."""
    start, end = _bounds(period)
    out = np.zeros(len(subjects), dtype=bool)

    inpatient = _finished_encounters(t, [VALUESETS["encounter_inpatient"]], valuesets)
    dispositions = t.codings("encounters", DISPOSITION_ELEMENTS)
    wanted = {f"{s}{_SEP}{c}" for s, c in DISCHARGE_TO_HOSPICE}
    coded_hit = (dispositions["system"] + _SEP + dispositions["code"]).isin(wanted)
    to_hospice = _isin(inpatient["encounter_id"], set(dispositions.loc[coded_hit.fillna(False), "record_id"]))
    to_hospice |= _isin(inpatient["discharge_disposition"], {c for _, c in DISCHARGE_TO_HOSPICE})
    ends_in_period = _within(_fhir_period(inpatient["start_at"], inpatient["end_at"]).end(), start, end)
    out |= _patients_with(subjects, inpatient.loc[to_hospice & ends_in_period, "patient_id"])

    enc = _finished_encounters(t, [VALUESETS["hospice_encounter"]], valuesets)
    overlapping = _fhir_period(enc["start_at"], enc["end_at"]).overlaps(start, end)
    out |= _patients_with(subjects, enc.loc[overlapping, "patient_id"])

    obs = _assessments(t, HOSPICE_CARE_MDS)
    overlapping = _timing(obs["effective_at"], obs["effective_end"]).overlaps(start, end)
    yes = _value_is(t, obs, valuesets, code=YES)
    out |= _patients_with(subjects, obs.loc[yes & overlapping, "patient_id"])

    req = _orders(t, "ServiceRequest")
    req = req[_rows_in_valueset(t, "requests", req, [VALUESETS["hospice_care_ambulatory"]], valuesets)]
    out |= _patients_with(subjects, req.loc[_within(_ts(req["authored_at"]), start, end), "patient_id"])

    proc = _completed_procedures(t, [VALUESETS["hospice_care_ambulatory"]], valuesets)
    overlapping = _timing(proc["performed_start"], proc["performed_end"]).overlaps(start, end)
    out |= _patients_with(subjects, proc.loc[overlapping, "patient_id"])

    cond = _verified_conditions(t, [VALUESETS["hospice_diagnosis"]], valuesets)
    out |= _patients_with(subjects, cond.loc[_prevalence(cond).overlaps(start, end), "patient_id"])
    return out


def _palliative(subjects: pd.DataFrame, t: _Data, period: Period, valuesets: ValueSetIndex) -> np.ndarray:
    """PalliativeCare.cql ``Has Palliative Care in the Measurement Period``."""
    start, end = _bounds(period)
    obs = _assessments(t, FACIT_PAL)
    overlapping = _timing(obs["effective_at"], obs["effective_end"]).overlaps(start, end)
    out = _patients_with(subjects, obs.loc[overlapping, "patient_id"])

    cond = _verified_conditions(t, [VALUESETS["palliative_care_diagnosis"]], valuesets)
    out |= _patients_with(subjects, cond.loc[_prevalence(cond).overlaps(start, end), "patient_id"])

    enc = _finished_encounters(t, [VALUESETS["palliative_care_encounter"]], valuesets)
    overlapping = _fhir_period(enc["start_at"], enc["end_at"]).overlaps(start, end)
    out |= _patients_with(subjects, enc.loc[overlapping, "patient_id"])

    proc = _completed_procedures(t, [VALUESETS["palliative_care_intervention"]], valuesets)
    overlapping = _timing(proc["performed_start"], proc["performed_end"]).overlaps(start, end)
    out |= _patients_with(subjects, proc.loc[overlapping, "patient_id"])
    return out


def _renal_or_pregnancy(subjects: pd.DataFrame, t: _Data, period: Period, valuesets: ValueSetIndex) -> np.ndarray:
    """Pregnancy or renal diagnosis overlapping the period, kidney transplant or dialysis
    ending by its end, or an ESRD monthly outpatient encounter starting by its end."""
    start, end = _bounds(period)
    refs = [
        VALUESETS[k] for k in ("pregnancy", "end_stage_renal_disease", "kidney_transplant_recipient", "ckd_stage_5")
    ]
    cond = _verified_conditions(t, refs, valuesets)
    out = _patients_with(subjects, cond.loc[_prevalence(cond).overlaps(start, end), "patient_id"])

    proc = _completed_procedures(t, [VALUESETS["kidney_transplant"], VALUESETS["dialysis_services"]], valuesets)
    ended = _timing(proc["performed_start"], proc["performed_end"]).end() < end
    out |= _patients_with(subjects, proc.loc[ended, "patient_id"])

    enc = _finished_encounters(t, [VALUESETS["esrd_monthly_outpatient_services"]], valuesets)
    started = _fhir_period(enc["start_at"], enc["end_at"]).start() < end
    out |= _patients_with(subjects, enc.loc[started, "patient_id"])
    return out


def _frailty(subjects: pd.DataFrame, t: _Data, period: Period, valuesets: ValueSetIndex) -> np.ndarray:
    """AdvancedIllnessandFrailty.cql ``Has Criteria Indicating Frailty``."""
    start, end = _bounds(period)
    dev = _orders(t, "DeviceRequest")
    dev = dev[_rows_in_valueset(t, "requests", dev, [VALUESETS["frailty_device"]], valuesets)]
    out = _patients_with(subjects, dev.loc[_within(_ts(dev["authored_at"]), start, end), "patient_id"])

    obs = _assessments(t, MEDICAL_EQUIPMENT_USED)
    ends_in_period = _within(_timing(obs["effective_at"], obs["effective_end"]).end(), start, end)
    device = _value_is(t, obs, valuesets, valueset=VALUESETS["frailty_device"])
    out |= _patients_with(subjects, obs.loc[device & ends_in_period, "patient_id"])

    cond = _verified_conditions(t, [VALUESETS["frailty_diagnosis"]], valuesets)
    out |= _patients_with(subjects, cond.loc[_prevalence(cond).overlaps(start, end), "patient_id"])

    enc = _finished_encounters(t, [VALUESETS["frailty_encounter"]], valuesets)
    overlapping = _fhir_period(enc["start_at"], enc["end_at"]).overlaps(start, end)
    out |= _patients_with(subjects, enc.loc[overlapping, "patient_id"])

    sym = t.table("observations")
    sym = sym[_isin(sym["status"], SYMPTOM_STATUSES)].reset_index(drop=True)
    sym = sym[_rows_in_valueset(t, "observations", sym, [VALUESETS["frailty_symptom"]], valuesets)]
    overlapping = _timing(sym["effective_at"], sym["effective_end"]).overlaps(start, end)
    out |= _patients_with(subjects, sym.loc[overlapping, "patient_id"])
    return out


def _advanced_illness_or_dementia_drugs(
    subjects: pd.DataFrame, t: _Data, period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """Advanced illness starting, or an active dementia-medication order overlapping, the
    year before or the measurement period itself."""
    start, end = _bounds(period)
    window_start = np.datetime64((period.start - pd.DateOffset(years=1)).to_datetime64(), "us")
    cond = _verified_conditions(t, [VALUESETS["advanced_illness"]], valuesets)
    started = _within(_prevalence(cond).start(), window_start, end)
    out = _patients_with(subjects, cond.loc[started, "patient_id"])

    med = t.table("medications")
    med = med[
        _isin(med["resource_type"], ["MedicationRequest"])
        & _isin(med["status"], ["active"])
        & _isin(med["intent"], ORDER_INTENTS)
    ].reset_index(drop=True)
    med = med[_rows_in_valueset(t, "medications", med, [VALUESETS["dementia_medications"]], valuesets)]
    overlapping = _timing(med["effective_start"], med["effective_end"]).overlaps(window_start, end)
    out |= _patients_with(subjects, med.loc[overlapping, "patient_id"])
    return out


def _nursing_home(subjects: pd.DataFrame, t: _Data, period: Period, valuesets: ValueSetIndex) -> np.ndarray:
    """The last housing-status assessment ending by the end of the period says the patient
    lives in a nursing home (age is checked by the caller)."""
    _, end = _bounds(period)
    obs = _assessments(t, HOUSING_STATUS)
    ended = _timing(obs["effective_at"], obs["effective_end"]).end()
    obs = obs.assign(__end=ended)[ended < end]
    last = obs.sort_values("__end", kind="stable").drop_duplicates("patient_id", keep="last")
    last = last.reset_index(drop=True)
    nursing = _value_is(t, last, valuesets, code=LIVES_IN_NURSING_HOME)
    return _patients_with(subjects, last.loc[nursing, "patient_id"])


def denominator_exclusion(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """Hospice, palliative care, pregnancy or end-stage renal disease / dialysis / kidney
    transplant; 66-80 with frailty and advanced illness (or dementia medication); 81 and
    over with frailty; 66 and over living long term in a nursing home."""
    _require(valuesets)
    t = _Data(data)
    age = _age_at_end(subjects, period)
    frail = _frailty(subjects, t, period, valuesets)
    advanced = _advanced_illness_or_dementia_drugs(subjects, t, period, valuesets)
    frail_by_age = ((age >= 66) & (age <= 80) & frail & advanced) | ((age >= 81) & frail)
    return (
        _hospice(subjects, t, period, valuesets)
        | _renal_or_pregnancy(subjects, t, period, valuesets)
        | frail_by_age
        | ((age >= 66) & _nursing_home(subjects, t, period, valuesets))
        | _palliative(subjects, t, period, valuesets)
    )


# --------------------------------------------------------------------------- numerator
def _qualifying_readings(t: _Data, period: Period, valuesets: ValueSetIndex) -> pd.DataFrame:
    """Blood-pressure readings the numerator may use, with the UTC day of ``latest()``.

    As the CQL writes it, a reading qualifies if it was NOT taken on a day of a finished
    inpatient or emergency-department encounter (at any time), OR it lies within the
    measurement period and the encounter it references is not of an acute class (a
    reading with no resolvable encounter passes this test: CQL ``null in list`` is false).
    """
    start, end = _bounds(period)
    obs = t.table("observations")
    obs = obs[_isin(obs["status"], ASSESSMENT_DONE)].reset_index(drop=True)
    is_bp = _rows_with_code(t, "observations", obs, BLOOD_PRESSURE_PANELS)
    is_bp |= obs["systolic"].notna().to_numpy(dtype=bool) | obs["diastolic"].notna().to_numpy(dtype=bool)
    obs = obs[is_bp].reset_index(drop=True)
    lo, hi = _ts(obs["effective_at"]), _ts(obs["effective_end"])
    latest = np.where(np.isnat(hi), lo, hi)
    obs = obs.assign(__latest=latest, __day=_day(latest))[~np.isnat(latest)].reset_index(drop=True)

    acute = _finished_encounters(
        t, [VALUESETS["encounter_inpatient"], VALUESETS["emergency_department_visit"]], valuesets
    )
    # "during day of" a period contains the day only when its start is known; a missing
    # end means the stay is still going.
    stay = _fhir_period(acute["start_at"], acute["end_at"])
    acute = pd.DataFrame({"patient_id": _str(acute["patient_id"]), "__lo": stay.start(), "__hi": stay.hi_min})
    acute = acute[~np.isnat(stay.start())]
    pairs = pd.DataFrame(
        {"__row": np.arange(len(obs)), "patient_id": _str(obs["patient_id"]), "__day": obs["__day"]}
    ).merge(acute, on="patient_id", how="inner")
    day = pairs["__day"].to_numpy(dtype="datetime64[D]")
    inside = (day >= _day(pairs["__lo"].to_numpy(dtype=_US))) & (day <= _day(pairs["__hi"].to_numpy(dtype=_US)))
    during_acute = np.zeros(len(obs), dtype=bool)
    during_acute[pairs["__row"].to_numpy()[inside]] = True

    enc = t.table("encounters")[["encounter_id", "class_code"]]
    linked = pd.DataFrame({"encounter_id": _str(obs["encounter_id"])}).merge(
        enc.assign(encounter_id=_str(enc["encounter_id"])), on="encounter_id", how="left"
    )
    acute_class = _isin(linked["class_code"], ACUTE_CLASSES)
    in_period = _within(obs["__latest"].to_numpy(dtype=_US), start, end)
    return obs[~during_acute | (~acute_class & in_period)].reset_index(drop=True)


def numerator(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """On the most recent day with a qualifying reading, the lowest systolic is below 140 mmHg
    and the lowest diastolic below 90 mmHg. A reading on that day lacking a value makes
    the result unknown (CQL sorts nulls first), hence not met."""
    _require(valuesets)
    t = _Data(data)
    readings = _qualifying_readings(t, period, valuesets)
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
    return _patients_with(subjects, pd.Series(per_patient.index[controlled.to_numpy(dtype=bool)]))
