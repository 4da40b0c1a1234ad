"""The tidy tables every stage agrees on: one declaration per table.

This module is the contract between the rooms. Extract produces frames with exactly
these columns, validation checks them, load creates warehouse tables from them, and
compute reads them back. Changing a column here is the one place to do it.

Conventions
-----------
* Timestamps are naive (``datetime64[us]``) wall-clock times of the record's facility
  (:mod:`pipelines.localtime`): a FHIR offset is converted to the facility's zone at
  extraction, a timestamp without one is taken as local; the local day decides months,
  days of stay and working days, and SQLite and PostgreSQL store the same value.
* Text has no control characters (they become U+FFFD: PostgreSQL cannot store NUL) and
  no blank strings (FHIR has no empty values): :func:`clean_text`.
* Dates without a time (``birth_date``) are stored as midnight timestamps.
* Codes are strings; booleans are pandas ``boolean`` (nullable).
* Every source table carries provenance (``source_file``, ``source_line``) so that
  a quarantined or surprising row can be traced to the byte it came from, and the
  warehouse adds ``batch`` (the ``YYYY-MM`` export batch that delivered it).
* No names, addresses, telecoms or business identifiers are extracted at all: the
  FHIR logical ids are the only link between records, and they never leave the
  warehouse (exports aggregate; drill-down lists stay internal).

FHIR R4 mapping (what extract reads, what generate writes)
----------------------------------------------------------
patients        Patient: id, birthDate, gender, deceasedDateTime, managingOrganization.
encounters      Encounter: id, subject, status, class.code (IMP/AMB/EMER/OBSENC),
                type[0].coding[0], serviceType.coding[0].code (department), priority
                code (EM/UR/EL: emergency/urgent/elective), period.start/end,
                hospitalization.admitSource / dischargeDisposition codes,
                serviceProvider (facility: reference id + display), location[0]
                (ward: reference id + display).
conditions      Condition: id, subject, encounter, code.coding[0], clinicalStatus,
                verificationStatus, category[0], onsetDateTime (or onsetPeriod.start),
                abatementDateTime, recordedDate; present-on-admission from the extension
                ``POA_EXTENSION`` on the Condition or on the matching
                Encounter.diagnosis entry (valueCodeableConcept code Y/N/U/W).
procedures      Procedure: id, subject, encounter, code, status,
                performedDateTime or performedPeriod.
medications     MedicationAdministration (effectiveDateTime / effectivePeriod) and
                MedicationRequest (authoredOn): medicationCodeableConcept.coding[0].
observations    Observation: id, subject, encounter, code, status, effectiveDateTime,
                valueQuantity / valueCodeableConcept, and the LOINC 8480-6 / 8462-4
                components for blood pressure.
adverse_events  AdverseEvent: id, subject, encounter, event.coding[0] (what happened:
                indicators match it against value sets such as
                ``indicators/valuesets/adverse-event-fall.json``), date, recordedDate,
                location (ward), harm level from extension ``HARM_EXTENSION`` (valueCode) or else
                from severity/outcome.
organizations   Organization: id, name, type, partOf.
locations       Location: id, name, physicalType (type_code), type (kind_code, e.g. ICU),
                managingOrganization, partOf.
codings         every coding of the coded elements of the records above (CQL matches a
                CodeableConcept when ANY of its codings is in a value set).
encounter_locations / encounter_diagnoses
                Encounter.location[] with periods; Encounter.diagnosis[] (use, rank,
                POA extension) and Encounter.reasonReference[].
claim_diagnoses / claim_procedures
                Claim.diagnosis[] (onAdmission = POA, sequence, type) and
                Claim.procedure[], each tied to the encounter of the Claim.item naming it.
requests        ServiceRequest, DeviceRequest, Task: code, status, intent, doNotPerform
                and the reason, authored / execution times, Task.focus.
survey_responses, complaints: CSV files (``survey_responses.csv``, ``complaints.csv``)
                whose header is exactly the column list below (minus provenance).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

POA_EXTENSION = "http://hl7.org/fhir/us/qicore/StructureDefinition/qicore-encounter-diagnosisPresentOnAdmission"
POA_SYSTEM = "https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/HospitalAcqCond/Coding"
HARM_EXTENSION = "https://careqi.example.org/fhir/StructureDefinition/harm-level"
#: Harm levels, least to most severe (NHS NRLS / AHRQ Harm Scale style).
HARM_LEVELS = ("none", "low", "moderate", "severe", "death")

#: NDJSON file stem -> tidy table fed by it.
RESOURCE_TABLES: dict[str, str] = {
    "Patient": "patients",
    "Encounter": "encounters",
    "Condition": "conditions",
    "Procedure": "procedures",
    "MedicationAdministration": "medications",
    "MedicationRequest": "medications",
    "Observation": "observations",
    "AdverseEvent": "adverse_events",
    "Organization": "organizations",
    "Location": "locations",
    "Claim": "claim_diagnoses",
    "ServiceRequest": "requests",
    "DeviceRequest": "requests",
    "Task": "requests",
}
#: CSV file name -> tidy table.
FEEDBACK_FILES: dict[str, str] = {
    "survey_responses.csv": "survey_responses",
    "complaints.csv": "complaints",
}

PROVENANCE = (("source_file", "string"), ("source_line", "Int64"))


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # pandas dtype: string | Int64 | Float64 | boolean | datetime64[us]
    nullable: bool = True
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract.

    ``key`` is the record id column. A table fed by several FHIR resource types
    (medications: MedicationAdministration and MedicationRequest) names the column
    holding the type in ``type_column``: FHIR ids are unique per type only, so such a
    record is identified by (type, id) - :attr:`key_columns` - and two resources of
    different types with the same id are two records, not a duplicate.
    """

    name: str
    key: str
    columns: tuple[Column, ...]
    grain: str
    provenance: bool = True
    type_column: str | None = None

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The columns that identify a record within a batch."""
        return (self.type_column, self.key) if self.type_column else (self.key,)

    @property
    def column_names(self) -> list[str]:
        names = [c.name for c in self.columns]
        if self.provenance:
            names += [p for p, _ in PROVENANCE]
        return names

    @property
    def dtypes(self) -> dict[str, str]:
        d = {c.name: c.dtype for c in self.columns}
        if self.provenance:
            d.update(dict(PROVENANCE))
        return d


def _c(name: str, dtype: str = "string", nullable: bool = True, doc: str = "") -> Column:
    return Column(name, dtype, nullable, doc)


TS = "datetime64[us]"

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        TableSpec(
            "patients",
            "patient_id",
            (
                _c("patient_id", nullable=False),
                _c("birth_date", TS),
                _c("gender"),
                _c("deceased_at", TS),
                _c("organization_id"),
            ),
            "one row per patient",
        ),
        TableSpec(
            "encounters",
            "encounter_id",
            (
                _c("encounter_id", nullable=False),
                _c("patient_id", nullable=False),
                _c("status"),
                _c("class_code", doc="v3 ActCode: IMP inpatient, AMB outpatient, EMER emergency, OBSENC"),
                _c("type_code"),
                _c("type_system"),
                _c("service", doc="department / specialty (serviceType code)"),
                _c("priority", doc="EM emergency, UR urgent, EL elective"),
                _c("admit_source"),
                _c("discharge_disposition", doc="e.g. home, exp (expired), aadvice, other-hcf"),
                _c("start_at", TS),
                _c("end_at", TS),
                _c("facility_id"),
                _c("facility_name"),
                _c("ward_id"),
                _c("ward_name"),
            ),
            "one row per encounter",
        ),
        TableSpec(
            "conditions",
            "condition_id",
            (
                _c("condition_id", nullable=False),
                _c("patient_id", nullable=False),
                _c("encounter_id"),
                _c("code"),
                _c("code_system"),
                _c("clinical_status"),
                _c("verification_status"),
                _c("category", doc="encounter-diagnosis | problem-list-item"),
                _c("onset_at", TS, doc="onsetDateTime, or onsetPeriod.start"),
                _c("onset_end", TS, doc="onsetPeriod.end"),
                _c("abatement_at", TS),
                _c("recorded_at", TS),
                _c("present_on_admission", doc="Y, N, U, W or null"),
            ),
            "one row per condition",
        ),
        TableSpec(
            "procedures",
            "procedure_id",
            (
                _c("procedure_id", nullable=False),
                _c("patient_id", nullable=False),
                _c("encounter_id"),
                _c("code"),
                _c("code_system"),
                _c("status"),
                _c("performed_start", TS),
                _c("performed_end", TS),
                _c("status_reason_code", doc="statusReason (why not performed)"),
                _c("status_reason_system"),
                _c("recorded_at", TS, doc="QI-Core recorded extension (when a not-done event was documented)"),
            ),
            "one row per procedure",
        ),
        TableSpec(
            "medications",
            "medication_id",
            (
                _c("medication_id", nullable=False),
                _c("resource_type", nullable=False, doc="MedicationAdministration | MedicationRequest"),
                _c("patient_id", nullable=False),
                _c("encounter_id"),
                _c("code"),
                _c("code_system"),
                _c("status"),
                _c("effective_start", TS, doc="administration time, or authoredOn for requests"),
                _c("effective_end", TS),
                _c("intent", doc="MedicationRequest.intent"),
                _c("do_not_perform", "boolean", doc="MedicationRequest.doNotPerform"),
                _c("status_reason_code", doc="MedicationAdministration.statusReason[0] (why not given)"),
                _c("status_reason_system"),
                _c("reason_code", doc="reasonCode[0] (e.g. the reason a request says do not perform)"),
                _c("reason_system"),
                _c("route_code", doc="MedicationAdministration.dosage.route / dosageInstruction[0].route"),
                _c("recorded_at", TS, doc="QI-Core recorded extension (when a not-done event was documented)"),
            ),
            "one row per medication administration or request",
            type_column="resource_type",
        ),
        TableSpec(
            "observations",
            "observation_id",
            (
                _c("observation_id", nullable=False),
                _c("patient_id", nullable=False),
                _c("encounter_id"),
                _c("code"),
                _c("code_system"),
                _c("status"),
                _c("effective_at", TS, doc="effectiveDateTime, or effectivePeriod.start"),
                _c("effective_end", TS, doc="effectivePeriod.end"),
                _c("issued_at", TS),
                _c("category", doc="category[0].coding[0].code, e.g. vital-signs"),
                _c("value_num", "Float64"),
                _c("value_unit"),
                _c("value_code"),
                _c("systolic", "Float64"),
                _c("diastolic", "Float64"),
            ),
            "one row per observation",
        ),
        TableSpec(
            "adverse_events",
            "adverse_event_id",
            (
                _c("adverse_event_id", nullable=False),
                _c("patient_id", nullable=False),
                _c("encounter_id"),
                _c("code"),
                _c("code_system"),
                _c("occurred_at", TS),
                _c("recorded_at", TS),
                _c("harm_level", doc="one of HARM_LEVELS"),
                _c("ward_id"),
            ),
            "one row per reported adverse event",
        ),
        TableSpec(
            "organizations",
            "organization_id",
            (
                _c("organization_id", nullable=False),
                _c("name"),
                _c("type_code"),
                _c("part_of"),
            ),
            "one row per organization (facility, trust)",
        ),
        TableSpec(
            "locations",
            "location_id",
            (
                _c("location_id", nullable=False),
                _c("name"),
                _c("type_code", doc="physicalType: wa ward, bu building ..."),
                _c("kind_code", doc="Location.type[0].coding[0].code, e.g. HSLOC intensive care unit"),
                _c("kind_system"),
                _c("organization_id"),
                _c("part_of"),
            ),
            "one row per location (ward, department)",
        ),
        TableSpec(
            "survey_responses",
            "response_id",
            (
                _c("response_id", nullable=False),
                _c("encounter_id"),
                _c("facility_id", nullable=False),
                _c("ward_id"),
                _c("service"),
                _c("mode", doc="post | phone | web | sms"),
                _c("completed_on", TS),
                _c("recommend", "Int64", doc="HCAHPS-style 1 definitely no .. 4 definitely yes"),
                _c("overall_rating", "Int64", doc="0 worst .. 10 best"),
                _c("q_reliability", "Int64", doc="1..5 Likert, SERVQUAL reliability"),
                _c("q_responsiveness", "Int64", doc="1..5 Likert"),
                _c("q_assurance", "Int64", doc="1..5 Likert"),
                _c("q_empathy", "Int64", doc="1..5 Likert"),
                _c("q_tangibles", "Int64", doc="1..5 Likert"),
                _c("comment", doc="free text; may identify people, never exported"),
            ),
            "one row per returned survey",
        ),
        TableSpec(
            "complaints",
            "complaint_id",
            (
                _c("complaint_id", nullable=False),
                _c("facility_id", nullable=False),
                _c("ward_id"),
                _c("service"),
                _c("channel", doc="phone | email | letter | web | in_person"),
                _c("category"),
                _c("severity", doc="low | moderate | high"),
                _c("received_at", TS),
                _c("acknowledged_at", TS),
                _c("resolved_at", TS),
                _c("outcome", doc="upheld | partly_upheld | not_upheld | withdrawn"),
                _c("status", doc="open | acknowledged | resolved"),
            ),
            "one row per complaint",
        ),
    ]
}

#: Tables that keep what electronic clinical quality measures (eCQMs) need beyond the
#: one-row-per-resource tables above: every coding of coded elements, an encounter's
#: location history and diagnoses, claim diagnoses with present-on-admission, and
#: orders (including "do not perform" orders with their reason).
ECQM_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        TableSpec(
            "codings",
            "coding_id",
            (
                _c(
                    "coding_id",
                    nullable=False,
                    doc="<table>/<record_id>/<element>/<n> (<table>/<record_type>/<record_id>/... for typed tables)",
                ),
                _c("table_name", nullable=False, doc="tidy table of the record"),
                _c("record_id", nullable=False),
                _c("record_type", doc="resource type of the record, in tables holding several (medications, requests)"),
                _c("element", nullable=False, doc="code | type | reasonCode | category | statusReason | ..."),
                _c("system"),
                _c("code"),
            ),
            "one row per coding of a coded element of a flattened record (all codings, not just the first)",
        ),
        TableSpec(
            "encounter_locations",
            "encounter_location_id",
            (
                _c("encounter_location_id", nullable=False, doc="<encounter_id>/<n>"),
                _c("encounter_id", nullable=False),
                _c("patient_id"),
                _c("location_id"),
                _c("location_name"),
                _c("start_at", TS),
                _c("end_at", TS),
            ),
            "one row per Encounter.location entry",
        ),
        TableSpec(
            "encounter_diagnoses",
            "encounter_diagnosis_id",
            (
                _c("encounter_diagnosis_id", nullable=False, doc="<encounter_id>/<element>/<n>"),
                _c("encounter_id", nullable=False),
                _c("patient_id"),
                _c("element", doc="diagnosis (Encounter.diagnosis) | reasonReference (Encounter.reasonReference)"),
                _c("condition_id", doc="Encounter.diagnosis.condition reference id"),
                _c("use_code", doc="diagnosis.use: AD admission, DD discharge, CC, billing ..."),
                _c("rank", "Int64"),
                _c("present_on_admission", doc="Y, N, U, W or 1 from the POA extension"),
            ),
            "one row per Encounter.diagnosis or Encounter.reasonReference entry",
        ),
        TableSpec(
            "claim_diagnoses",
            "claim_diagnosis_id",
            (
                _c("claim_diagnosis_id", nullable=False, doc="<claim_id>/<n>"),
                _c("claim_id", nullable=False),
                _c("patient_id"),
                _c("encounter_id", doc="Claim.item[].encounter of the item pointing at this diagnosis, else the first"),
                _c("status"),
                _c("use"),
                _c("sequence", "Int64"),
                _c("diagnosis_type", doc="diagnosis.type[0].coding[0].code, e.g. principal"),
                _c("code", doc="diagnosisCodeableConcept.coding[0] (all codings in codings)"),
                _c("code_system"),
                _c("condition_id", doc="diagnosisReference id"),
                _c("present_on_admission", doc="diagnosis.onAdmission code: Y, N, U, W, 1"),
                _c("billable_start", TS),
                _c("billable_end", TS),
            ),
            "one row per Claim.diagnosis entry",
        ),
        TableSpec(
            "claim_procedures",
            "claim_procedure_id",
            (
                _c("claim_procedure_id", nullable=False, doc="<claim_id>/<n>"),
                _c("claim_id", nullable=False),
                _c("patient_id"),
                _c("encounter_id", doc="encounter of the Claim.item naming it (procedureSequence), else the first"),
                _c("status"),
                _c("use"),
                _c("sequence", "Int64"),
                _c("procedure_type", doc="procedure.type[0].coding[0].code, e.g. primary"),
                _c("code", doc="procedureCodeableConcept.coding[0] (all codings in codings)"),
                _c("code_system"),
                _c("procedure_id", doc="procedureReference id"),
                _c("performed_at", TS, doc="procedure.date"),
            ),
            "one row per Claim.procedure entry",
        ),
        TableSpec(
            "requests",
            "request_id",
            (
                _c("request_id", nullable=False),
                _c("resource_type", nullable=False, doc="ServiceRequest | DeviceRequest | Task"),
                _c("patient_id"),
                _c("encounter_id"),
                _c("code", doc="code / codeCodeableConcept .coding[0]"),
                _c("code_system"),
                _c("status"),
                _c("intent"),
                _c("do_not_perform", "boolean", doc="doNotPerform, or the R4 DeviceRequest modifierExtension"),
                _c("reason_code", doc="reasonCode[0] (or Task.statusReason)"),
                _c("reason_system"),
                _c("authored_at", TS, doc="authoredOn, or Task.executionPeriod.start"),
                _c("end_at", TS, doc="Task.executionPeriod.end"),
                _c("focus_id", doc="Task.focus reference id"),
            ),
            "one row per ServiceRequest, DeviceRequest or Task",
            type_column="resource_type",
        ),
    ]
}
TABLES.update(ECQM_TABLES)


#: Rows that could not be accepted, with why and from where. Written by extract
#: (unparseable input) and by validation (failed expectations).
QUARANTINE = TableSpec(
    "quarantine",
    "record_id",
    (
        _c("table_name", nullable=False),
        _c("record_id"),
        _c("stage", nullable=False, doc="extract | validate"),
        _c("reasons", nullable=False, doc="'; '-joined failed checks, each 'check: explanation'"),
        _c("payload", doc="the raw line or row as JSON, truncated to 2,000 characters"),
    ),
    "one row per rejected record",
)

#: read = accepted + quarantined, per table and batch.
RECONCILIATION = TableSpec(
    "reconciliation",
    "table_name",
    (
        _c("table_name", nullable=False),
        _c("rows_read", "Int64", nullable=False),
        _c("rows_accepted", "Int64", nullable=False),
        _c("rows_quarantined", "Int64", nullable=False),
        _c("balanced", "boolean", nullable=False),
    ),
    "one row per table per batch",
    provenance=False,
)

#: One row per expectation per table per batch, in the shape every check shares
#: (after OHDSI DataQualityDashboard): what was checked, how many rows broke it.
VALIDATION_CHECKS = TableSpec(
    "validation_checks",
    "check",
    (
        _c("table_name", nullable=False),
        _c(
            "check",
            nullable=False,
            doc="expectation type plus column(s), e.g. expect_column_values_to_not_be_null(patient_id)",
        ),
        _c("description", doc="plain-language statement from the expectation's meta"),
        _c("category", doc="Kahn category: conformance | completeness | plausibility | uniqueness"),
        _c("violated", "Int64", nullable=False),
        _c("denominator", "Int64", nullable=False),
        _c("pct", "Float64", nullable=False),
        _c("status", nullable=False, doc="pass | fail"),
    ),
    "one row per table x check per batch",
    provenance=False,
)

#: How full each contract column of a batch's accepted rows is: the delivery guard
#: compares a batch with its neighbours (a column that was filled and is now empty is a
#: broken feed), and the data-quality report can show completeness over time.
COLUMN_PROFILES = TableSpec(
    "column_profiles",
    "column_name",
    (
        _c("table_name", nullable=False),
        _c("column_name", nullable=False),
        _c("rows", "Int64", nullable=False, doc="accepted rows of the table in the batch"),
        _c("filled", "Int64", nullable=False, doc="of which have a value in the column"),
    ),
    "one row per table x column per batch",
    provenance=False,
)

POPULATIONS = (
    "initial_population",
    "denominator",
    "denominator_exclusion",
    "numerator",
    "numerator_exclusion",
)
#: FHIR measure-population codes, used in MeasureReports.
POPULATION_CODES = {
    "initial_population": "initial-population",
    "denominator": "denominator",
    "denominator_exclusion": "denominator-exclusion",
    "numerator": "numerator",
    "numerator_exclusion": "numerator-exclusion",
    "measure_population": "measure-population",
    "measure_population_exclusion": "measure-population-exclusion",
}

#: Per-subject indicator membership, kept for drill-down.
INDICATOR_SUBJECTS = TableSpec(
    "indicator_subjects",
    "subject_id",
    (
        _c("indicator_id", nullable=False),
        _c("period", nullable=False, doc="reporting month YYYY-MM"),
        _c("subject_id", nullable=False, doc="encounter, patient, complaint or response id"),
        _c("patient_id"),
        _c("facility_id"),
        _c("ward_id"),
        _c("service"),
        *(_c(p, "boolean", nullable=False) for p in POPULATIONS),
        _c(
            "censored",
            "boolean",
            doc="the subject's deadline (follow_up) had not passed by the end of the data: out of the denominator",
        ),
        _c("numerator_events", "Int64", doc="ratio measures: qualifying events counted for this subject"),
        _c("denominator_value", "Float64", doc="ratio measures: exposure, e.g. patient-days"),
        _c("observation", "Float64", doc="continuous measures: the per-subject value"),
    ),
    "one row per indicator x period x subject in the initial population",
    provenance=False,
)

#: Aggregates per indicator x period x facility x stratum. facility_id 'ALL' is the
#: whole system; stratifier 'overall' with stratum 'all' is the unstratified row.
INDICATOR_RESULTS = TableSpec(
    "indicator_results",
    "indicator_id",
    (
        _c("indicator_id", nullable=False),
        _c("period", nullable=False),
        _c("facility_id", nullable=False),
        _c("stratifier", nullable=False),
        _c("stratum", nullable=False),
        *(_c(p, "Int64", nullable=False) for p in POPULATIONS),
        _c("numerator_events", "Int64"),
        _c("denominator_value", "Float64"),
        _c("measure_score", "Float64"),
        _c("ci_low", "Float64"),
        _c("ci_high", "Float64"),
        _c("target", "Float64"),
        _c("status", doc="green | amber | red | grey (no data); null when the state is not final (not graded)"),
        _c("censored", "Int64", doc="subjects left out of the denominator until their deadline has passed"),
        _c("state", nullable=False, doc="final | provisional | not_computed"),
        _c("state_reason", doc="why a result is provisional or not computed, in plain language"),
    ),
    "one row per indicator x period x facility x stratum",
    provenance=False,
)

ALL_FACILITIES = "ALL"
OVERALL = ("overall", "all")
#: Result states: ``final`` (no later batch can change it), ``provisional`` (open to
#: revision, or cases still within their deadline: shown, not graded), ``not_computed``
#: (the indicator could not be evaluated this time; never its old value).
FINAL, PROVISIONAL, NOT_COMPUTED = "final", "provisional", "not_computed"
STATES = (FINAL, PROVISIONAL, NOT_COMPUTED)


def record_keys(table: str, frame: pd.DataFrame, id_column: str | None = None) -> pd.Series:
    """The identity of each row's record within ``table``: its id, or ``Type/id`` where
    the table holds several resource types (see :class:`TableSpec`). Compare these with
    :func:`coding_record_keys` to tie a coding to its record exactly."""
    spec = TABLES[table]
    ids = frame[id_column or spec.key].astype("string")
    if spec.type_column is None or spec.type_column not in frame.columns:
        return ids
    return frame[spec.type_column].astype("string") + "/" + ids


def coding_record_keys(codings: pd.DataFrame) -> pd.Series:
    """The :func:`record_keys` of the record each ``codings`` row belongs to."""
    ids = codings["record_id"].astype("string")
    if "record_type" not in codings.columns:
        return ids
    typed = codings["record_type"].astype("string")
    return (typed + "/" + ids).fillna(ids)


def empty_frame(spec: TableSpec) -> pd.DataFrame:
    """An empty frame with the table's columns and dtypes."""
    return pd.DataFrame({n: pd.Series(dtype=t) for n, t in spec.dtypes.items()})


#: FHIR date / dateTime shapes (also accepted in the feedback CSVs): a year, a month, a
#: day, or a day with a time and optionally seconds, fractions and an offset. Anything
#: else ("10/10/2026", an integer 20261010, "20261010") is unreadable, never guessed.
ISO_TIMESTAMP = r"\d{4}(?:-\d{2}(?:-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)?)?"
_HAS_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"
#: C0 control characters other than tab, newline and carriage return, and DEL.
#: PostgreSQL cannot store NUL in text and SQLite can, so both get the same text:
#: each such character becomes U+FFFD (the replacement character), visibly.
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
REPLACEMENT = "\ufffd"


def clean_text(col: pd.Series) -> pd.Series:
    """``col`` (string dtype) with control characters replaced and blank strings null.

    FHIR forbids empty strings ("" is not a value), and a whitespace-only id or code
    would otherwise count as a real one; a NUL would store on SQLite and fail the
    whole month on PostgreSQL.
    """
    if not len(col):
        return col
    if col.str.contains(CONTROL_CHARACTERS, regex=True).any():
        col = col.str.replace(CONTROL_CHARACTERS, REPLACEMENT, regex=True)
    blank = col.str.strip().eq("").fillna(False)
    if blank.any():
        col = col.mask(blank)
    return col


def _timestamps(raw: pd.Series, zones: pd.Series | str) -> tuple[pd.Series, pd.Series]:
    """Typed timestamps and a mask of present-but-unreadable values (see :func:`conform`).

    Only text in a FHIR date/dateTime shape is parsed; a number or a boolean where a
    date belongs is unreadable (an integer used to become 1970-01-01). Datetimes read
    back from the warehouse are kept as they are: they are already local.
    """
    from pipelines.localtime import to_local

    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        col = raw.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(raw.dt, "tz", None) else raw
        return col.astype(TS), pd.Series(False, index=raw.index)
    present = raw.notna().to_numpy(dtype=bool)
    moments: pd.Series | None = None
    if raw.dtype == object:
        kinds = raw.map(type, na_action="ignore")
        is_text = kinds.eq(str).fillna(False).to_numpy(dtype=bool)
        is_moment = kinds.map(lambda k: isinstance(k, type) and issubclass(k, datetime)).fillna(False)
        is_moment = is_moment.to_numpy(dtype=bool)
        if is_moment.any():
            moments = pd.to_datetime(raw.where(is_moment), errors="coerce")
            if getattr(moments.dt, "tz", None) is not None:
                moments = moments.dt.tz_convert("UTC").dt.tz_localize(None)
        text = raw.where(is_text).astype("string")
        not_text = present & ~is_text & ~is_moment
    else:
        text = raw.astype("string")
        not_text = np.zeros(len(raw), dtype=bool)
    text = text.str.strip()
    shaped = text.str.fullmatch(ISO_TIMESTAMP).to_numpy(dtype=bool, na_value=False)
    parsed = pd.to_datetime(text.where(shaped), errors="coerce", utc=True, format="ISO8601")
    col = parsed.dt.tz_localize(None).astype(TS)
    offset = shaped & text.str.contains(_HAS_OFFSET, regex=True).to_numpy(dtype=bool, na_value=False)
    if offset.any() and not (isinstance(zones, str) and zones == "UTC"):
        local = to_local(col[offset], zones if isinstance(zones, str) else zones[offset])
        col = col.copy()
        col[offset] = local.to_numpy()
    if moments is not None:
        col = col.where(~pd.Series(is_moment, index=col.index), moments.astype(TS))
    blank = text.eq("").to_numpy(dtype=bool, na_value=False)
    bad = (present & ~blank & col.isna().to_numpy(dtype=bool)) | not_text
    return col, pd.Series(bad, index=raw.index)


def conform(
    df: pd.DataFrame, spec: TableSpec, *, zones: pd.Series | str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Return ``df`` with exactly the spec's columns (missing ones null) and dtypes,
    plus a per-row string naming every value that could not be converted.

    Extractors build rows as plain dicts; this is the single place where they become
    typed columns, so that a source lacking an optional field still yields the table
    shape every later stage expects. A value that is present but unreadable (a date
    like ``2026-13-45`` or ``20261010``, ``"abc"`` in a number column) is never
    silently turned into a null: the second return value says which row and field, so
    the caller can quarantine the row (``""`` means the row converted cleanly).

    ``zones`` (one IANA zone, or one per row) is the facility's clock: timestamps that
    carry an offset are converted to its wall-clock time (:mod:`pipelines.localtime`);
    without ``zones`` they are converted to UTC. Timestamps without an offset are kept
    as written. Text loses control characters and blank strings (:func:`clean_text`).
    """
    out = pd.DataFrame(index=df.index)
    failures = pd.Series("", index=df.index, dtype="object")
    for name, dtype in spec.dtypes.items():
        raw = df[name] if name in df.columns else pd.Series(pd.NA, index=df.index, dtype="object")
        if dtype == TS:
            col, bad = _timestamps(raw, zones if zones is not None else "UTC")
        elif dtype in ("Int64", "Float64"):
            col = pd.to_numeric(raw, errors="coerce")
            if dtype == "Int64":
                frac = col.notna() & (col != col.round())
                col = col.mask(frac)
            col = col.astype(dtype)
            bad = raw.notna() & ~raw.astype("string").str.strip().eq("").fillna(False) & col.isna()
        elif dtype == "string":
            col = clean_text(raw.astype(dtype))
            bad = pd.Series(False, index=df.index)
        else:
            col = raw.astype(dtype)
            bad = raw.notna() & ~raw.astype("string").str.strip().eq("").fillna(False) & col.isna()
        bad = bad.fillna(False).astype(bool)
        if bad.any():
            failures[bad] = failures[bad] + f"unreadable {dtype} value in {name}; "
        out[name] = col
    return out.reset_index(drop=True), failures.str.rstrip("; ").reset_index(drop=True)


__all__ = [
    "ALL_FACILITIES",
    "COLUMN_PROFILES",
    "FINAL",
    "NOT_COMPUTED",
    "PROVISIONAL",
    "STATES",
    "ECQM_TABLES",
    "FEEDBACK_FILES",
    "HARM_EXTENSION",
    "HARM_LEVELS",
    "INDICATOR_RESULTS",
    "INDICATOR_SUBJECTS",
    "OVERALL",
    "POA_EXTENSION",
    "POA_SYSTEM",
    "POPULATIONS",
    "POPULATION_CODES",
    "QUARANTINE",
    "RECONCILIATION",
    "RESOURCE_TABLES",
    "TABLES",
    "VALIDATION_CHECKS",
    "Column",
    "TableSpec",
    "clean_text",
    "coding_record_keys",
    "conform",
    "empty_frame",
    "record_keys",
]
