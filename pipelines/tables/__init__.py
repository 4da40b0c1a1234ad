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
medications     MedicationAdministration (effectiveDateTime / effectivePeriod),
                MedicationRequest (authoredOn), MedicationDispense (whenHandedOver) and
                MedicationStatement (effective[x]): medication[x] coding[0], whether a
                CodeableConcept or a Reference to a Medication (contained, or in the same
                delivery).
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

from pipelines.tables.conform import CONTROL_CHARACTERS, ISO_TIMESTAMP, REPLACEMENT, clean_text, conform
from pipelines.tables.source import (
    CHILD_TABLES,
    ECQM_TABLES,
    FEEDBACK_FILES,
    HARM_EXTENSION,
    HARM_LEVELS,
    POA_EXTENSION,
    POA_SYSTEM,
    RESOURCE_TABLES,
    TABLES,
    coding_record_keys,
    record_keys,
)
from pipelines.tables.spec import PROVENANCE, TS, Column, TableSpec, empty_frame
from pipelines.tables.warehouse import (
    ALL_FACILITIES,
    CHECK_HISTORY,
    COLUMN_PROFILES,
    COMMENT_LABELS,
    FINAL,
    IMPROVEMENT_ACTIONS,
    INDICATOR_RESULTS,
    INDICATOR_SUBJECTS,
    NOT_COMPUTED,
    OVERALL,
    POPULATIONS,
    PROVISIONAL,
    PSEUDONYM_KEYS,
    QUARANTINE,
    RECONCILIATION,
    SLA_BREACHES,
    SPC_PHASES,
    STATES,
    VALIDATION_CHECKS,
)

__all__ = [
    "ALL_FACILITIES",
    "CHECK_HISTORY",
    "IMPROVEMENT_ACTIONS",
    "PSEUDONYM_KEYS",
    "SPC_PHASES",
    "CHILD_TABLES",
    "COLUMN_PROFILES",
    "COMMENT_LABELS",
    "CONTROL_CHARACTERS",
    "ECQM_TABLES",
    "FEEDBACK_FILES",
    "FINAL",
    "HARM_EXTENSION",
    "HARM_LEVELS",
    "INDICATOR_RESULTS",
    "INDICATOR_SUBJECTS",
    "ISO_TIMESTAMP",
    "NOT_COMPUTED",
    "OVERALL",
    "POA_EXTENSION",
    "POA_SYSTEM",
    "POPULATIONS",
    "SLA_BREACHES",
    "PROVENANCE",
    "PROVISIONAL",
    "QUARANTINE",
    "RECONCILIATION",
    "REPLACEMENT",
    "RESOURCE_TABLES",
    "STATES",
    "TABLES",
    "TS",
    "VALIDATION_CHECKS",
    "Column",
    "TableSpec",
    "clean_text",
    "coding_record_keys",
    "conform",
    "empty_frame",
    "record_keys",
]
