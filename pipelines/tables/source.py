"""The source tables: what extract produces from FHIR resources and feedback CSVs, one
declaration per table, and which resource or file feeds each.

The FHIR R4 mapping of every table is in the package docstring (:mod:`pipelines.tables`).
A new source table is declared here (its :class:`TableSpec`, and the resource type or
file that feeds it), extracted by a flattener in :mod:`pipelines.extract.flatten`, and
checked by its suite ``expectations/<table>.json``.
"""

from __future__ import annotations

import pandas as pd

from pipelines.tables.spec import TS, TableSpec
from pipelines.tables.spec import col as _c

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
    "MedicationDispense": "medications",
    "MedicationStatement": "medications",
    "Observation": "observations",
    "AdverseEvent": "adverse_events",
    "Organization": "organizations",
    "Location": "locations",
    "Claim": "claim_diagnoses",
    "ServiceRequest": "requests",
    "DeviceRequest": "requests",
    "Task": "requests",
    # Read through the survey file that maps its Questionnaire (pipelines.extract.questionnaire).
    "QuestionnaireResponse": "survey_responses",
}
#: CSV file name -> tidy table.
FEEDBACK_FILES: dict[str, str] = {
    "survey_responses.csv": "survey_responses",
    "complaints.csv": "complaints",
}


#: One row per FHIR resource (or per feedback CSV row).
_RECORD_TABLES: tuple[TableSpec, ...] = (
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
            _c(
                "resource_type",
                nullable=False,
                doc="MedicationAdministration | MedicationRequest | MedicationDispense | MedicationStatement",
            ),
            _c("patient_id", nullable=False),
            _c("encounter_id"),
            _c("code"),
            _c("code_system"),
            _c("status"),
            _c(
                "effective_start",
                TS,
                doc="administration or statement time, authoredOn for requests, whenHandedOver for dispenses",
            ),
            _c("effective_end", TS),
            _c("intent", doc="MedicationRequest.intent"),
            _c("do_not_perform", "boolean", doc="MedicationRequest.doNotPerform"),
            _c("status_reason_code", doc="MedicationAdministration.statusReason[0] (why not given)"),
            _c("status_reason_system"),
            _c("reason_code", doc="reasonCode[0] (e.g. the reason a request says do not perform)"),
            _c("reason_system"),
            _c("route_code", doc="dosage.route (administration), else dosageInstruction[0] / dosage[0].route"),
            _c("recorded_at", TS, doc="QI-Core recorded extension (when a not-done event was documented)"),
        ),
        "one row per medication administration, request, dispense or statement",
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
            *(
                _c(f"e_{d}", "Int64", doc=f"1..5 Likert, SERVQUAL expectation: what an excellent hospital's {d} is")
                for d in ("reliability", "responsiveness", "assurance", "empathy", "tangibles")
            ),
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
            _c("description", doc="the complaint in the complainant's words; may identify people, never exported"),
            _c(
                "complainant_id",
                doc="the register's pseudonymous key of the person complaining (repeat complainants); never exported",
            ),
        ),
        "one row per complaint",
    ),
)

#: Tables that keep what electronic clinical quality measures (eCQMs) need beyond the
#: one-row-per-resource tables above: every coding of coded elements, an encounter's
#: location history and diagnoses, claim diagnoses with present-on-admission, and
#: orders (including "do not perform" orders with their reason).
_ECQM_TABLES: tuple[TableSpec, ...] = (
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
)

#: Tables whose rows are parts of another table's record (a record's codings, an
#: encounter's location history and diagnoses): they come and go with their parent, and
#: a delivery is judged by its parents.
CHILD_TABLES = ("encounter_locations", "encounter_diagnoses", "codings")
#: Every source table by name, in extraction order.
TABLES: dict[str, TableSpec] = {t.name: t for t in (*_RECORD_TABLES, *_ECQM_TABLES)}
#: The eCQM tables among them.
ECQM_TABLES: dict[str, TableSpec] = {t.name: t for t in _ECQM_TABLES}


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
    if not typed.notna().any():  # codings of one-type tables: no string to build per row
        return ids
    return (typed + "/" + ids).fillna(ids)


__all__ = [
    "CHILD_TABLES",
    "ECQM_TABLES",
    "FEEDBACK_FILES",
    "HARM_EXTENSION",
    "HARM_LEVELS",
    "POA_EXTENSION",
    "POA_SYSTEM",
    "RESOURCE_TABLES",
    "TABLES",
    "coding_record_keys",
    "record_keys",
]
