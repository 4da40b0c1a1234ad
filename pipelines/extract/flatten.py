"""One pure function per FHIR R4 resource type: resource dict -> tidy row dict.

The mapping is the one in :mod:`pipelines.tables` (module docstring). Rules that hold
for every function here:

* Missing or oddly shaped elements give ``None``, never an exception or a dropped
  record: completeness and vocabularies are the validation room's job, and a
  quality report must be able to say *how many* records lacked a field.
* Timestamps stay ISO strings; :func:`pipelines.tables.conform` converts offsets to the
  facility's local time in one vectorised pass (and flags values it cannot read).
* No business rules (status filtering, de-duplication): extract is a faithful copy.
* Patients: names, identifiers, addresses and telecoms are never read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.extract.elements import (
    all_codes,
    as_dict,
    extension_code,
    find_extension,
    first_code,
    first_coding,
    first_item,
    first_system,
    scalar,
)
from pipelines.extract.medication import medication_concept
from pipelines.extract.poa import CONDITION, encounter_diagnosis_poa, present_on_admission
from pipelines.extract.references import ref_display, ref_id
from pipelines.tables import HARM_EXTENSION

Row = dict[str, Any]

#: QI-Core ServiceNotRequested: why an order was not placed (R4 has no element for it).
DO_NOT_PERFORM_REASON_EXTENSION = "http://hl7.org/fhir/us/qicore/StructureDefinition/qicore-doNotPerformReason"
#: QI-Core ``recorded`` extension: when an event (typically a not-done one) was
#: documented. CMS108 times a refusal by it, not by when the event would have happened.
#: Matched on the URL's last segment (``/qicore-recorded``), so that a sender using a
#: versioned or mirrored canonical base is still read.
RECORDED_EXTENSION = "http://hl7.org/fhir/us/qicore/StructureDefinition/qicore-recorded"
RECORDED_SUFFIX = "/" + RECORDED_EXTENSION.rsplit("/", 1)[-1]
#: The R5 DeviceRequest.doNotPerform element carried in R4 as a modifier extension.
DEVICE_REQUEST_DO_NOT_PERFORM = "http://hl7.org/fhir/5.0/StructureDefinition/extension-DeviceRequest.doNotPerform"

LOINC_SYSTOLIC = "8480-6"
LOINC_DIASTOLIC = "8462-4"

#: AdverseEvent.severity (http://terminology.hl7.org/CodeSystem/adverse-event-severity)
#: -> harm level. Used only when neither the harm extension nor a decisive outcome exists.
SEVERITY_HARM = {"mild": "low", "moderate": "moderate", "severe": "severe"}
#: AdverseEvent.outcome codes that fix the harm level on their own: death, and lasting
#: harm ("resolved with sequelae" = permanent harm, NRLS "severe").
OUTCOME_HARM = {"fatal": "death", "resolvedWithSequelae": "severe"}


# ---------------------------------------------------------------- element helpers


def _timing(r: dict[str, Any], element: str) -> tuple[Any, Any]:
    """``<element>[x]`` as (start, end): a dateTime is a start without an end, a Period
    gives both (FHIR R4 ``effective[x]`` / ``performed[x]``)."""
    if f"{element}DateTime" in r:
        return r.get(f"{element}DateTime"), None
    period = as_dict(r.get(f"{element}Period"))
    return period.get("start"), period.get("end")


def _recorded(resource: dict[str, Any]) -> Any:
    """valueDateTime of the QI-Core recorded extension (first one wins)."""
    exts = resource.get("extension")
    if isinstance(exts, list):
        for ext in exts:
            if isinstance(ext, dict) and isinstance(ext.get("url"), str) and ext["url"].endswith(RECORDED_SUFFIX):
                return scalar(ext.get("valueDateTime"))
    return None


def _period(value: Any, end: str) -> Any:
    return scalar(as_dict(value).get(end))


def medication_code_columns(concept: Any) -> Row:
    """The medications row's ``code`` and ``code_system``: coding[0] of the drug's concept
    (:func:`~pipelines.extract.medication.medication_concept`; a reference to a Medication
    elsewhere in the delivery is filled in with this at the end of the batch)."""
    coding = first_coding(concept)
    return {"code": scalar(coding.get("code")), "code_system": scalar(coding.get("system"))}


# ---------------------------------------------------------------- one function per type


def flatten_patient(r: dict[str, Any]) -> Row:
    return {
        "patient_id": scalar(r.get("id")),
        "birth_date": scalar(r.get("birthDate")),
        "gender": scalar(r.get("gender")),
        "deceased_at": scalar(r.get("deceasedDateTime")),
        "organization_id": ref_id(r.get("managingOrganization")),
    }


def flatten_encounter(r: dict[str, Any]) -> Row:
    hosp = as_dict(r.get("hospitalization"))
    period = r.get("period")
    provider = r.get("serviceProvider")
    ward = as_dict(first_item(r.get("location"))).get("location")
    type_coding = first_coding(r.get("type"))
    return {
        "encounter_id": scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "status": scalar(r.get("status")),
        "class_code": first_code(r.get("class")),
        "type_code": scalar(type_coding.get("code")),
        "type_system": scalar(type_coding.get("system")),
        "service": first_code(r.get("serviceType")),
        "priority": first_code(r.get("priority")),
        "admit_source": first_code(hosp.get("admitSource")),
        "discharge_disposition": first_code(hosp.get("dischargeDisposition")),
        "start_at": _period(period, "start"),
        "end_at": _period(period, "end"),
        "facility_id": ref_id(provider),
        "facility_name": ref_display(provider),
        "ward_id": ref_id(ward),
        "ward_name": ref_display(ward),
    }


def flatten_condition(r: dict[str, Any]) -> Row:
    coding = first_coding(r.get("code"))
    onset = r.get("onsetDateTime")
    onset_period = as_dict(r.get("onsetPeriod"))
    if onset is None:
        onset = onset_period.get("start")
    abatement = r.get("abatementDateTime")
    if abatement is None:
        abatement = as_dict(r.get("abatementPeriod")).get("start")
    return {
        "condition_id": scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": scalar(coding.get("code")),
        "code_system": scalar(coding.get("system")),
        "clinical_status": first_code(r.get("clinicalStatus")),
        "verification_status": first_code(r.get("verificationStatus")),
        "category": first_code(r.get("category")),
        "onset_at": scalar(onset),
        "onset_end": scalar(onset_period.get("end")),
        "abatement_at": scalar(abatement),
        "recorded_at": scalar(r.get("recordedDate")),
        "present_on_admission": present_on_admission(r, CONDITION),
    }


def flatten_procedure(r: dict[str, Any]) -> Row:
    coding = first_coding(r.get("code"))
    start, end = _timing(r, "performed")
    return {
        "procedure_id": scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": scalar(coding.get("code")),
        "code_system": scalar(coding.get("system")),
        "status": scalar(r.get("status")),
        "performed_start": scalar(start),
        "performed_end": scalar(end),
        "status_reason_code": first_code(r.get("statusReason")),
        "status_reason_system": first_system(r.get("statusReason")),
        "recorded_at": _recorded(r),
    }


def flatten_medication_administration(r: dict[str, Any]) -> Row:
    med = medication_code_columns(medication_concept(r).concept)
    start, end = _timing(r, "effective")
    return {
        "medication_id": scalar(r.get("id")),
        "resource_type": "MedicationAdministration",
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("context")),  # R4: MedicationAdministration.context
        "code": med["code"],
        "code_system": med["code_system"],
        "status": scalar(r.get("status")),
        "effective_start": scalar(start),
        "effective_end": scalar(end),
        "intent": None,
        "do_not_perform": None,
        "status_reason_code": first_code(r.get("statusReason")),
        "status_reason_system": first_system(r.get("statusReason")),
        "reason_code": first_code(r.get("reasonCode")),
        "reason_system": first_system(r.get("reasonCode")),
        "route_code": first_code(as_dict(r.get("dosage")).get("route")),
        "recorded_at": _recorded(r),
    }


def flatten_medication_request(r: dict[str, Any]) -> Row:
    med = medication_code_columns(medication_concept(r).concept)
    return {
        "medication_id": scalar(r.get("id")),
        "resource_type": "MedicationRequest",
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": med["code"],
        "code_system": med["code_system"],
        "status": scalar(r.get("status")),
        "effective_start": scalar(r.get("authoredOn")),
        "effective_end": None,
        "intent": scalar(r.get("intent")),
        "do_not_perform": _bool(r.get("doNotPerform"), "doNotPerform"),
        "status_reason_code": first_code(r.get("statusReason")),
        "status_reason_system": first_system(r.get("statusReason")),
        "reason_code": first_code(r.get("reasonCode")),
        "reason_system": first_system(r.get("reasonCode")),
        "route_code": first_code(as_dict(first_item(r.get("dosageInstruction"))).get("route")),
        "recorded_at": _recorded(r),
    }


def flatten_medication_dispense(r: dict[str, Any]) -> Row:
    """A dispense is dated when handed over (else when prepared); its encounter is the R4
    ``context``."""
    med = medication_code_columns(medication_concept(r).concept)
    handed = r.get("whenHandedOver")
    return {
        "medication_id": scalar(r.get("id")),
        "resource_type": "MedicationDispense",
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("context")),
        "code": med["code"],
        "code_system": med["code_system"],
        "status": scalar(r.get("status")),
        "effective_start": scalar(handed if handed is not None else r.get("whenPrepared")),
        "effective_end": None,
        "intent": None,
        "do_not_perform": None,
        "status_reason_code": first_code(r.get("statusReasonCodeableConcept")),
        "status_reason_system": first_system(r.get("statusReasonCodeableConcept")),
        "reason_code": None,
        "reason_system": None,
        "route_code": first_code(as_dict(first_item(r.get("dosageInstruction"))).get("route")),
        "recorded_at": _recorded(r),
    }


def flatten_medication_statement(r: dict[str, Any]) -> Row:
    """A statement covers ``effective[x]`` (a time or a period); its encounter is the R4
    ``context``; ``dateAsserted`` is when it was recorded, unless the QI-Core recorded
    extension says otherwise."""
    med = medication_code_columns(medication_concept(r).concept)
    start, end = _timing(r, "effective")
    recorded = _recorded(r)
    return {
        "medication_id": scalar(r.get("id")),
        "resource_type": "MedicationStatement",
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("context")),
        "code": med["code"],
        "code_system": med["code_system"],
        "status": scalar(r.get("status")),
        "effective_start": scalar(start),
        "effective_end": scalar(end),
        "intent": None,
        "do_not_perform": None,
        "status_reason_code": first_code(r.get("statusReason")),
        "status_reason_system": first_system(r.get("statusReason")),
        "reason_code": first_code(r.get("reasonCode")),
        "reason_system": first_system(r.get("reasonCode")),
        "route_code": first_code(as_dict(first_item(r.get("dosage"))).get("route")),
        "recorded_at": recorded if recorded is not None else scalar(r.get("dateAsserted")),
    }


def _blood_pressure(r: dict[str, Any]) -> tuple[Any, Any]:
    """(systolic, diastolic): valueQuantity.value of the first component coded with each
    LOINC code, read in one pass over the components."""
    components = r.get("component")
    if not isinstance(components, list):
        return None, None
    systolic = diastolic = _UNSET
    for comp in components:
        if not isinstance(comp, dict):
            continue
        codes = all_codes(comp.get("code"))
        if systolic is _UNSET and LOINC_SYSTOLIC in codes:
            systolic = scalar(as_dict(comp.get("valueQuantity")).get("value"))
        if diastolic is _UNSET and LOINC_DIASTOLIC in codes:
            diastolic = scalar(as_dict(comp.get("valueQuantity")).get("value"))
    return (None if systolic is _UNSET else systolic), (None if diastolic is _UNSET else diastolic)


#: "No component found yet" (a found component may hold no value: None).
_UNSET: Any = object()


def flatten_observation(r: dict[str, Any]) -> Row:
    coding = first_coding(r.get("code"))
    effective = r.get("effectiveDateTime")
    if effective is None:
        effective = r.get("effectiveInstant")
    period = as_dict(r.get("effectivePeriod"))
    if effective is None:
        effective = period.get("start")
    quantity = as_dict(r.get("valueQuantity"))
    unit = quantity.get("unit")
    if unit is None:
        unit = quantity.get("code")
    systolic, diastolic = _blood_pressure(r)
    return {
        "observation_id": scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": scalar(coding.get("code")),
        "code_system": scalar(coding.get("system")),
        "status": scalar(r.get("status")),
        "effective_at": scalar(effective),
        "effective_end": scalar(period.get("end")),
        "issued_at": scalar(r.get("issued")),
        "category": first_code(r.get("category")),
        "value_num": scalar(quantity.get("value")),
        "value_unit": scalar(unit),
        "value_code": first_code(r.get("valueCodeableConcept")) if "valueCodeableConcept" in r else None,
        "systolic": systolic,
        "diastolic": diastolic,
    }


def harm_level(r: dict[str, Any]) -> Any:
    """The sender's own harm grading wins (extension); otherwise a fatal or lasting
    outcome; otherwise the clinical severity (mild/moderate/severe)."""
    ext = find_extension(r, HARM_EXTENSION)
    value = extension_code(ext)
    if value is not None:
        return value
    for code in all_codes(r.get("outcome")):
        if code in OUTCOME_HARM:
            return OUTCOME_HARM[code]
    severity = first_code(r.get("severity"))
    return SEVERITY_HARM.get(severity) if isinstance(severity, str) else None


def flatten_adverse_event(r: dict[str, Any]) -> Row:
    coding = first_coding(r.get("event"))
    return {
        "adverse_event_id": scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": scalar(coding.get("code")),
        "code_system": scalar(coding.get("system")),
        "occurred_at": scalar(r.get("date")),
        "recorded_at": scalar(r.get("recordedDate")),
        "harm_level": harm_level(r),
        "ward_id": ref_id(r.get("location")),
    }


def flatten_organization(r: dict[str, Any]) -> Row:
    return {
        "organization_id": scalar(r.get("id")),
        "name": scalar(r.get("name")),
        "type_code": first_code(r.get("type")),
        "part_of": ref_id(r.get("partOf")),
    }


def flatten_location(r: dict[str, Any]) -> Row:
    kind = first_coding(r.get("type"))
    return {
        "location_id": scalar(r.get("id")),
        "name": scalar(r.get("name")),
        "type_code": first_code(r.get("physicalType")),
        "kind_code": scalar(kind.get("code")),
        "kind_system": scalar(kind.get("system")),
        "organization_id": ref_id(r.get("managingOrganization")),
        "part_of": ref_id(r.get("partOf")),
    }


def _bool(value: Any, element: str) -> bool | None:
    """A FHIR boolean. Anything else is an unreadable record (quarantined by the
    collector with this message), never a guess: ``doNotPerform`` inverts an order."""
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{element} is not a boolean")


def _modifier_bool(r: dict[str, Any], url: str) -> bool | None:
    exts = r.get("modifierExtension")
    if isinstance(exts, list):
        for ext in exts:
            if isinstance(ext, dict) and ext.get("url") == url:
                return _bool(ext.get("valueBoolean"), "modifierExtension " + url.rsplit("/", 1)[-1])
    return None


def _reason(r: dict[str, Any]) -> dict[str, Any]:
    """reasonCode[0].coding[0], else the QI-Core doNotPerformReason extension (how
    ServiceNotRequested records why an order was not placed)."""
    coding = first_coding(r.get("reasonCode"))
    if not coding:
        ext = find_extension(r, DO_NOT_PERFORM_REASON_EXTENSION)
        if ext is not None:
            coding = first_coding(ext.get("valueCodeableConcept"))
    return coding


def _request_row(r: dict[str, Any], rtype: str, coding: dict[str, Any], reason: dict[str, Any]) -> Row:
    return {
        "request_id": scalar(r.get("id")),
        "resource_type": rtype,
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": scalar(coding.get("code")),
        "code_system": scalar(coding.get("system")),
        "status": scalar(r.get("status")),
        "intent": scalar(r.get("intent")),
        "do_not_perform": None,
        "reason_code": scalar(reason.get("code")),
        "reason_system": scalar(reason.get("system")),
        "authored_at": scalar(r.get("authoredOn")),
        "end_at": None,
        "focus_id": None,
    }


def flatten_service_request(r: dict[str, Any]) -> Row:
    row = _request_row(r, "ServiceRequest", first_coding(r.get("code")), _reason(r))
    row["do_not_perform"] = _bool(r.get("doNotPerform"), "doNotPerform")
    return row


def flatten_device_request(r: dict[str, Any]) -> Row:
    """R4 DeviceRequest has no doNotPerform; QI-Core carries the R5 element as a
    modifierExtension (a plain ``doNotPerform`` is read too, for R5-minded senders)."""
    row = _request_row(r, "DeviceRequest", first_coding(r.get("codeCodeableConcept")), _reason(r))
    flag = _modifier_bool(r, DEVICE_REQUEST_DO_NOT_PERFORM)
    row["do_not_perform"] = flag if flag is not None else _bool(r.get("doNotPerform"), "doNotPerform")
    return row


def flatten_task(r: dict[str, Any]) -> Row:
    """A rejected Task (QI-Core TaskRejected) says an order was refused: its
    statusReason is the reason, its focus the order, executionPeriod when."""
    reason = first_coding(r.get("statusReason"))
    if not reason:
        reason = first_coding(r.get("reasonCode"))
    period = as_dict(r.get("executionPeriod"))
    row = _request_row(r, "Task", first_coding(r.get("code")), reason)
    row["patient_id"] = ref_id(r.get("for"))
    authored = r.get("authoredOn")
    row["authored_at"] = scalar(authored if authored is not None else period.get("start"))
    row["end_at"] = scalar(period.get("end"))
    row["focus_id"] = ref_id(r.get("focus"))
    return row


#: resourceType -> flatten function (one row per resource). Claim is not here: it
#: yields one claim_diagnoses row per diagnosis and one claim_procedures row per
#: procedure (:mod:`pipelines.extract.children`).
FLATTENERS: dict[str, Callable[[dict[str, Any]], Row]] = {
    "Patient": flatten_patient,
    "Encounter": flatten_encounter,
    "Condition": flatten_condition,
    "Procedure": flatten_procedure,
    "MedicationAdministration": flatten_medication_administration,
    "MedicationRequest": flatten_medication_request,
    "MedicationDispense": flatten_medication_dispense,
    "MedicationStatement": flatten_medication_statement,
    "Observation": flatten_observation,
    "AdverseEvent": flatten_adverse_event,
    "Organization": flatten_organization,
    "Location": flatten_location,
    "ServiceRequest": flatten_service_request,
    "DeviceRequest": flatten_device_request,
    "Task": flatten_task,
}

__all__ = [
    "DEVICE_REQUEST_DO_NOT_PERFORM",
    "DO_NOT_PERFORM_REASON_EXTENSION",
    "FLATTENERS",
    "OUTCOME_HARM",
    "RECORDED_EXTENSION",
    "RECORDED_SUFFIX",
    "SEVERITY_HARM",
    "encounter_diagnosis_poa",  # lives in poa.py; re-exported for existing callers
    "flatten_adverse_event",
    "flatten_condition",
    "flatten_device_request",
    "flatten_encounter",
    "flatten_location",
    "flatten_medication_administration",
    "flatten_medication_dispense",
    "flatten_medication_request",
    "flatten_medication_statement",
    "flatten_observation",
    "flatten_organization",
    "flatten_patient",
    "flatten_procedure",
    "flatten_service_request",
    "flatten_task",
    "harm_level",
    "medication_code_columns",
]
