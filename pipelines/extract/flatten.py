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

import orjson

from pipelines.extract.references import contained_id, ref_display, ref_id
from pipelines.tables import HARM_EXTENSION, POA_EXTENSION

Row = dict[str, Any]

#: QI-Core ServiceNotRequested: why an order was not placed (R4 has no element for it).
DO_NOT_PERFORM_REASON_EXTENSION = "http://hl7.org/fhir/us/qicore/StructureDefinition/qicore-doNotPerformReason"
#: QI-Core ``recorded`` extension: when an event (typically a not-done one) was
#: documented. CMS108 times a refusal by it, not by when the event would have happened.
#: Matched on the URL's last segment (``/qicore-recorded``), so that a sender using a
#: versioned or mirrored canonical base is still read.
RECORDED_EXTENSION = "http://hl7.org/fhir/us/qicore/StructureDefinition/qicore-recorded"
_RECORDED_SUFFIX = "/" + RECORDED_EXTENSION.rsplit("/", 1)[-1]
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


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _scalar(value: Any) -> Any:
    """A primitive as is; a structure where a primitive belongs becomes its JSON text,
    so that ``conform`` flags it as unreadable in typed columns instead of crashing."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _coding0(concept: Any) -> dict[str, Any]:
    """CodeableConcept.coding[0] (also accepts a bare Coding or a list of concepts)."""
    concept = _obj(_first(concept))
    codings = concept.get("coding")
    if codings is None and ("code" in concept or "system" in concept):
        return concept  # a Coding, e.g. Encounter.class in R4
    return _obj(_first(codings))


def _code(concept: Any) -> Any:
    return _scalar(_coding0(concept).get("code"))


def _system(concept: Any) -> Any:
    return _scalar(_coding0(concept).get("system"))


def _codes(concept: Any) -> list[Any]:
    concept = _obj(concept)
    codings = concept.get("coding")
    if not isinstance(codings, list):
        return []
    return [c.get("code") for c in codings if isinstance(c, dict)]


def _extension(resource: Any, url: str) -> dict[str, Any] | None:
    exts = _obj(resource).get("extension")
    if isinstance(exts, list):
        for ext in exts:
            if isinstance(ext, dict) and ext.get("url") == url:
                return ext
    return None


def _recorded(resource: dict[str, Any]) -> Any:
    """valueDateTime of the QI-Core recorded extension (first one wins)."""
    exts = resource.get("extension")
    if isinstance(exts, list):
        for ext in exts:
            if isinstance(ext, dict) and isinstance(ext.get("url"), str) and ext["url"].endswith(_RECORDED_SUFFIX):
                return _scalar(ext.get("valueDateTime"))
    return None


def _ext_code(ext: dict[str, Any] | None) -> Any:
    """valueCodeableConcept.coding[0].code, or valueCode / valueCoding.code."""
    if ext is None:
        return None
    if "valueCodeableConcept" in ext:
        return _code(ext["valueCodeableConcept"])
    if "valueCoding" in ext:
        return _scalar(_obj(ext["valueCoding"]).get("code"))
    return _scalar(ext.get("valueCode"))


def _period(value: Any, end: str) -> Any:
    return _scalar(_obj(value).get(end))


def _medication_coding(resource: dict[str, Any]) -> dict[str, Any]:
    """medicationCodeableConcept.coding[0], or the code of a contained Medication."""
    if "medicationCodeableConcept" in resource:
        return _coding0(resource["medicationCodeableConcept"])
    local = contained_id(resource.get("medicationReference"))
    if local is not None:
        for item in resource.get("contained") or []:
            item = _obj(item)
            if item.get("resourceType") == "Medication" and item.get("id") == local:
                return _coding0(item.get("code"))
    return {}


# ---------------------------------------------------------------- one function per type


def flatten_patient(r: dict[str, Any]) -> Row:
    return {
        "patient_id": _scalar(r.get("id")),
        "birth_date": _scalar(r.get("birthDate")),
        "gender": _scalar(r.get("gender")),
        "deceased_at": _scalar(r.get("deceasedDateTime")),
        "organization_id": ref_id(r.get("managingOrganization")),
    }


def flatten_encounter(r: dict[str, Any]) -> Row:
    hosp = _obj(r.get("hospitalization"))
    period = r.get("period")
    provider = r.get("serviceProvider")
    ward = _obj(_first(r.get("location"))).get("location")
    type_coding = _coding0(r.get("type"))
    return {
        "encounter_id": _scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "status": _scalar(r.get("status")),
        "class_code": _code(r.get("class")),
        "type_code": _scalar(type_coding.get("code")),
        "type_system": _scalar(type_coding.get("system")),
        "service": _code(r.get("serviceType")),
        "priority": _code(r.get("priority")),
        "admit_source": _code(hosp.get("admitSource")),
        "discharge_disposition": _code(hosp.get("dischargeDisposition")),
        "start_at": _period(period, "start"),
        "end_at": _period(period, "end"),
        "facility_id": ref_id(provider),
        "facility_name": ref_display(provider),
        "ward_id": ref_id(ward),
        "ward_name": ref_display(ward),
    }


def encounter_diagnosis_poa(r: dict[str, Any]) -> list[tuple[str, Any]]:
    """(condition id, POA code) for each Encounter.diagnosis carrying the QI-Core
    present-on-admission extension: POA is a property of the diagnosis *on this stay*,
    so senders following QI-Core put it here rather than on the Condition."""
    out: list[tuple[str, Any]] = []
    diagnoses = r.get("diagnosis")
    if not isinstance(diagnoses, list):
        return out
    for diag in diagnoses:
        if not isinstance(diag, dict):
            continue
        cond = ref_id(diag.get("condition"))
        code = _ext_code(_extension(diag, POA_EXTENSION))
        if cond is not None and code is not None:
            out.append((cond, code))
    return out


def flatten_condition(r: dict[str, Any]) -> Row:
    coding = _coding0(r.get("code"))
    onset = r.get("onsetDateTime")
    onset_period = _obj(r.get("onsetPeriod"))
    if onset is None:
        onset = onset_period.get("start")
    abatement = r.get("abatementDateTime")
    if abatement is None:
        abatement = _obj(r.get("abatementPeriod")).get("start")
    return {
        "condition_id": _scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": _scalar(coding.get("code")),
        "code_system": _scalar(coding.get("system")),
        "clinical_status": _code(r.get("clinicalStatus")),
        "verification_status": _code(r.get("verificationStatus")),
        "category": _code(r.get("category")),
        "onset_at": _scalar(onset),
        "onset_end": _scalar(onset_period.get("end")),
        "abatement_at": _scalar(abatement),
        "recorded_at": _scalar(r.get("recordedDate")),
        "present_on_admission": _ext_code(_extension(r, POA_EXTENSION)),
    }


def flatten_procedure(r: dict[str, Any]) -> Row:
    coding = _coding0(r.get("code"))
    if "performedDateTime" in r:
        start, end = r.get("performedDateTime"), None
    else:
        period = _obj(r.get("performedPeriod"))
        start, end = period.get("start"), period.get("end")
    return {
        "procedure_id": _scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": _scalar(coding.get("code")),
        "code_system": _scalar(coding.get("system")),
        "status": _scalar(r.get("status")),
        "performed_start": _scalar(start),
        "performed_end": _scalar(end),
        "status_reason_code": _code(r.get("statusReason")),
        "status_reason_system": _system(r.get("statusReason")),
        "recorded_at": _recorded(r),
    }


def flatten_medication_administration(r: dict[str, Any]) -> Row:
    coding = _medication_coding(r)
    if "effectiveDateTime" in r:
        start, end = r.get("effectiveDateTime"), None
    else:
        period = _obj(r.get("effectivePeriod"))
        start, end = period.get("start"), period.get("end")
    return {
        "medication_id": _scalar(r.get("id")),
        "resource_type": "MedicationAdministration",
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("context")),  # R4: MedicationAdministration.context
        "code": _scalar(coding.get("code")),
        "code_system": _scalar(coding.get("system")),
        "status": _scalar(r.get("status")),
        "effective_start": _scalar(start),
        "effective_end": _scalar(end),
        "intent": None,
        "do_not_perform": None,
        "status_reason_code": _code(r.get("statusReason")),
        "status_reason_system": _system(r.get("statusReason")),
        "reason_code": _code(r.get("reasonCode")),
        "reason_system": _system(r.get("reasonCode")),
        "route_code": _code(_obj(r.get("dosage")).get("route")),
        "recorded_at": _recorded(r),
    }


def flatten_medication_request(r: dict[str, Any]) -> Row:
    coding = _medication_coding(r)
    return {
        "medication_id": _scalar(r.get("id")),
        "resource_type": "MedicationRequest",
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": _scalar(coding.get("code")),
        "code_system": _scalar(coding.get("system")),
        "status": _scalar(r.get("status")),
        "effective_start": _scalar(r.get("authoredOn")),
        "effective_end": None,
        "intent": _scalar(r.get("intent")),
        "do_not_perform": _bool(r.get("doNotPerform"), "doNotPerform"),
        "status_reason_code": _code(r.get("statusReason")),
        "status_reason_system": _system(r.get("statusReason")),
        "reason_code": _code(r.get("reasonCode")),
        "reason_system": _system(r.get("reasonCode")),
        "route_code": _code(_obj(_first(r.get("dosageInstruction"))).get("route")),
        "recorded_at": _recorded(r),
    }


def _component_value(r: dict[str, Any], loinc: str) -> Any:
    components = r.get("component")
    if not isinstance(components, list):
        return None
    for comp in components:
        if isinstance(comp, dict) and loinc in _codes(comp.get("code")):
            return _scalar(_obj(comp.get("valueQuantity")).get("value"))
    return None


def flatten_observation(r: dict[str, Any]) -> Row:
    coding = _coding0(r.get("code"))
    effective = r.get("effectiveDateTime")
    if effective is None:
        effective = r.get("effectiveInstant")
    period = _obj(r.get("effectivePeriod"))
    if effective is None:
        effective = period.get("start")
    quantity = _obj(r.get("valueQuantity"))
    unit = quantity.get("unit")
    if unit is None:
        unit = quantity.get("code")
    return {
        "observation_id": _scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": _scalar(coding.get("code")),
        "code_system": _scalar(coding.get("system")),
        "status": _scalar(r.get("status")),
        "effective_at": _scalar(effective),
        "effective_end": _scalar(period.get("end")),
        "issued_at": _scalar(r.get("issued")),
        "category": _code(r.get("category")),
        "value_num": _scalar(quantity.get("value")),
        "value_unit": _scalar(unit),
        "value_code": _code(r.get("valueCodeableConcept")) if "valueCodeableConcept" in r else None,
        "systolic": _component_value(r, LOINC_SYSTOLIC),
        "diastolic": _component_value(r, LOINC_DIASTOLIC),
    }


def harm_level(r: dict[str, Any]) -> Any:
    """The sender's own harm grading wins (extension); otherwise a fatal or lasting
    outcome; otherwise the clinical severity (mild/moderate/severe)."""
    ext = _extension(r, HARM_EXTENSION)
    value = _ext_code(ext)
    if value is not None:
        return value
    for code in _codes(r.get("outcome")):
        if code in OUTCOME_HARM:
            return OUTCOME_HARM[code]
    severity = _code(r.get("severity"))
    return SEVERITY_HARM.get(severity) if isinstance(severity, str) else None


def flatten_adverse_event(r: dict[str, Any]) -> Row:
    coding = _coding0(r.get("event"))
    return {
        "adverse_event_id": _scalar(r.get("id")),
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": _scalar(coding.get("code")),
        "code_system": _scalar(coding.get("system")),
        "occurred_at": _scalar(r.get("date")),
        "recorded_at": _scalar(r.get("recordedDate")),
        "harm_level": harm_level(r),
        "ward_id": ref_id(r.get("location")),
    }


def flatten_organization(r: dict[str, Any]) -> Row:
    return {
        "organization_id": _scalar(r.get("id")),
        "name": _scalar(r.get("name")),
        "type_code": _code(r.get("type")),
        "part_of": ref_id(r.get("partOf")),
    }


def flatten_location(r: dict[str, Any]) -> Row:
    kind = _coding0(r.get("type"))
    return {
        "location_id": _scalar(r.get("id")),
        "name": _scalar(r.get("name")),
        "type_code": _code(r.get("physicalType")),
        "kind_code": _scalar(kind.get("code")),
        "kind_system": _scalar(kind.get("system")),
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
    coding = _coding0(r.get("reasonCode"))
    if not coding:
        ext = _extension(r, DO_NOT_PERFORM_REASON_EXTENSION)
        if ext is not None:
            coding = _coding0(ext.get("valueCodeableConcept"))
    return coding


def _request_row(r: dict[str, Any], rtype: str, coding: dict[str, Any], reason: dict[str, Any]) -> Row:
    return {
        "request_id": _scalar(r.get("id")),
        "resource_type": rtype,
        "patient_id": ref_id(r.get("subject")),
        "encounter_id": ref_id(r.get("encounter")),
        "code": _scalar(coding.get("code")),
        "code_system": _scalar(coding.get("system")),
        "status": _scalar(r.get("status")),
        "intent": _scalar(r.get("intent")),
        "do_not_perform": None,
        "reason_code": _scalar(reason.get("code")),
        "reason_system": _scalar(reason.get("system")),
        "authored_at": _scalar(r.get("authoredOn")),
        "end_at": None,
        "focus_id": None,
    }


def flatten_service_request(r: dict[str, Any]) -> Row:
    row = _request_row(r, "ServiceRequest", _coding0(r.get("code")), _reason(r))
    row["do_not_perform"] = _bool(r.get("doNotPerform"), "doNotPerform")
    return row


def flatten_device_request(r: dict[str, Any]) -> Row:
    """R4 DeviceRequest has no doNotPerform; QI-Core carries the R5 element as a
    modifierExtension (a plain ``doNotPerform`` is read too, for R5-minded senders)."""
    row = _request_row(r, "DeviceRequest", _coding0(r.get("codeCodeableConcept")), _reason(r))
    flag = _modifier_bool(r, DEVICE_REQUEST_DO_NOT_PERFORM)
    row["do_not_perform"] = flag if flag is not None else _bool(r.get("doNotPerform"), "doNotPerform")
    return row


def flatten_task(r: dict[str, Any]) -> Row:
    """A rejected Task (QI-Core TaskRejected) says an order was refused: its
    statusReason is the reason, its focus the order, executionPeriod when."""
    reason = _coding0(r.get("statusReason"))
    if not reason:
        reason = _coding0(r.get("reasonCode"))
    period = _obj(r.get("executionPeriod"))
    row = _request_row(r, "Task", _coding0(r.get("code")), reason)
    row["patient_id"] = ref_id(r.get("for"))
    authored = r.get("authoredOn")
    row["authored_at"] = _scalar(authored if authored is not None else period.get("start"))
    row["end_at"] = _scalar(period.get("end"))
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
    "SEVERITY_HARM",
    "encounter_diagnosis_poa",
    "flatten_adverse_event",
    "flatten_condition",
    "flatten_device_request",
    "flatten_encounter",
    "flatten_location",
    "flatten_medication_administration",
    "flatten_medication_request",
    "flatten_observation",
    "flatten_organization",
    "flatten_patient",
    "flatten_procedure",
    "flatten_service_request",
    "flatten_task",
    "harm_level",
]
