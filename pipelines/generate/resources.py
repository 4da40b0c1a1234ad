"""FHIR R4 resources of one patient's care, built from what the simulation decided.

Pure builders: each takes the patient's random stream (for ids and the small jitter a
real record has, such as the minutes between an event and its recording) and returns a
plain dict in the key order a FHIR server writes. Shared, never-mutated CodeableConcepts
are built once at import: writing dominated the generator's run time.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any

from pipelines.generate import codes as C
from pipelines.generate.clock import HOUR, iso
from pipelines.generate.ids import new_id, rint
from pipelines.tables import HARM_EXTENSION, POA_EXTENSION, POA_SYSTEM

#: The POA codes the CMS present-on-admission indicator uses (1, exempt, is never written).
POA_CODES = ("Y", "N", "U", "W")


def cc(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A CodeableConcept with one coding."""
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return {"coding": [coding]}


@cache
def coded(code: C.Code) -> dict[str, Any]:
    """The CodeableConcept of a terminology constant, built once and shared (writers copy
    before they change a resource: :func:`pipelines.generate.defects.break_resource`)."""
    return cc(*code)


def ref(kind: str, rid: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": f"{kind}/{rid}"}
    if display is not None:
        out["display"] = display
    return out


ACTIVE = cc(C.CONDITION_CLINICAL, "active")
RESOLVED = cc(C.CONDITION_CLINICAL, "resolved")
CONFIRMED = cc(C.CONDITION_VER, "confirmed")
ENCOUNTER_DIAGNOSIS = [cc(C.CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")]
VITAL_SIGNS = [cc(C.OBS_CATEGORY, "vital-signs", "Vital Signs")]
BP_PANEL = coded(C.BP_PANEL)
SYSTOLIC = coded(C.SYSTOLIC)
DIASTOLIC = coded(C.DIASTOLIC)
HEART_RATE = coded(C.HEART_RATE)
#: The QI-Core POA extension on a Condition, per code.
POA_EXTENSIONS = {k: [{"url": POA_EXTENSION, "valueCodeableConcept": cc(POA_SYSTEM, k)}] for k in POA_CODES}
#: Claim.diagnosis.onAdmission, per code.
ON_ADMISSION = {k: cc(POA_SYSTEM, k) for k in POA_CODES}


def condition(
    rng: random.Random,
    pid: str,
    eid: str,
    code: C.Code,
    *,
    onset: int,
    recorded: int,
    abatement: int | None = None,
    poa: str | None = None,
) -> dict[str, Any]:
    """An encounter diagnosis; active unless it has abated."""
    r: dict[str, Any] = {"resourceType": "Condition", "id": new_id(rng)}
    if poa:
        r["extension"] = POA_EXTENSIONS[poa]
    r["clinicalStatus"] = ACTIVE if abatement is None else RESOLVED
    r["verificationStatus"] = CONFIRMED
    r["category"] = ENCOUNTER_DIAGNOSIS
    r["code"] = coded(code)
    r["subject"] = ref("Patient", pid)
    r["encounter"] = ref("Encounter", eid)
    r["onsetDateTime"] = iso(onset)
    if abatement is not None:
        r["abatementDateTime"] = iso(abatement)
    r["recordedDate"] = iso(recorded)
    return r


def procedure(rng: random.Random, pid: str, eid: str, code: C.Code, at: int, minutes: int) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": new_id(rng),
        "status": "completed",
        "code": coded(code),
        "subject": ref("Patient", pid),
        "encounter": ref("Encounter", eid),
    }
    if minutes:
        r["performedPeriod"] = {"start": iso(at), "end": iso(at + minutes)}
    else:
        r["performedDateTime"] = iso(at)
    return r


def medication_administration(rng: random.Random, pid: str, eid: str, code: C.Code, at: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationAdministration",
        "id": new_id(rng),
        "status": "completed",
        "medicationCodeableConcept": coded(code),
        "subject": ref("Patient", pid),
        "context": ref("Encounter", eid),
        "effectiveDateTime": iso(at),
        "dosage": {"route": coded(C.route_for(code[1]))},
    }


def _mmhg(v: int) -> dict[str, Any]:
    return {"value": v, "unit": "mm[Hg]", "system": C.UCUM, "code": "mm[Hg]"}


def blood_pressure(rng: random.Random, pid: str, eid: str, at: int, systolic: int, diastolic: int) -> dict[str, Any]:
    """A blood-pressure panel with systolic and diastolic components (as CMS165 reads it)."""
    return {
        "resourceType": "Observation",
        "id": new_id(rng),
        "status": "final",
        "category": VITAL_SIGNS,
        "code": BP_PANEL,
        "subject": ref("Patient", pid),
        "encounter": ref("Encounter", eid),
        "effectiveDateTime": iso(at),
        "component": [
            {"code": SYSTOLIC, "valueQuantity": _mmhg(systolic)},
            {"code": DIASTOLIC, "valueQuantity": _mmhg(diastolic)},
        ],
    }


def heart_rate(rng: random.Random, pid: str, eid: str, at: int, bpm: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": new_id(rng),
        "status": "final",
        "category": VITAL_SIGNS,
        "code": HEART_RATE,
        "subject": ref("Patient", pid),
        "encounter": ref("Encounter", eid),
        "effectiveDateTime": iso(at),
        "valueQuantity": {"value": bpm, "unit": "/min", "system": C.UCUM, "code": "/min"},
    }


def adverse_event(
    rng: random.Random, pid: str, eid: str, location: tuple[str, str], code: C.Code, at: int, harm: str
) -> dict[str, Any]:
    """An incident report at ``location`` (id, name), graded by ``harm`` (tables.HARM_LEVELS)."""
    return {
        "resourceType": "AdverseEvent",
        "id": new_id(rng),
        "extension": [{"url": HARM_EXTENSION, "valueCode": harm}],
        "actuality": "actual",
        "event": coded(code),
        "subject": ref("Patient", pid),
        "encounter": ref("Encounter", eid),
        "date": iso(at),
        "recordedDate": iso(at + 10 + rint(rng, 24 * HOUR)),
        "location": ref("Location", location[0], location[1]),
        "severity": cc(C.AE_SEVERITY, C.SEVERITY_FOR_HARM[harm]),
        "outcome": cc(C.AE_OUTCOME, C.OUTCOME_FOR_HARM[harm]),
    }


__all__ = [
    "ON_ADMISSION",
    "POA_CODES",
    "POA_EXTENSIONS",
    "adverse_event",
    "blood_pressure",
    "cc",
    "coded",
    "condition",
    "heart_rate",
    "medication_administration",
    "procedure",
    "ref",
]
