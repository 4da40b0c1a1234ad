"""Terminology the generator draws from.

Codes that indicators match against (VTE prophylaxis, pressure injuries, incident
types) are read at run time from the project's own ValueSets in
``indicators/valuesets``, so the synthetic data always agrees with the indicator
definitions; everything else is a short list of real SNOMED CT / LOINC / RxNorm
codes chosen so that records look like an ordinary acute-hospital feed, including
near-miss codes (stage 1 pressure ulcer, paracetamol) that a correct indicator must
NOT count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import PROJECT_ROOT

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
ADMIT_SOURCE = "http://terminology.hl7.org/CodeSystem/admit-source"
DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
LOCATION_PHYSICAL = "http://terminology.hl7.org/CodeSystem/location-physical-type"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
SERVICE_SYSTEM = "https://careqi.example.org/fhir/CodeSystem/service"
MRN_SYSTEM = "https://careqi.example.org/fhir/sid/mrn"

VALUESET_DIR = PROJECT_ROOT / "indicators" / "valuesets"

Code = tuple[str, str, str]  # (system, code, display)


@dataclass(frozen=True)
class Terminology:
    vte_pharmacological: tuple[Code, ...]
    vte_mechanical: tuple[Code, ...]
    pressure_injury: tuple[Code, ...]  # stage 2+ diagnoses
    ae_fall: tuple[Code, ...]
    ae_pressure_injury: tuple[Code, ...]
    ae_medication_error: tuple[Code, ...]


def load_valueset(path: Path) -> tuple[Code, ...]:
    """The (system, code, display) triples of a ValueSet expansion."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    contains = doc.get("expansion", {}).get("contains", [])
    codes = tuple((c["system"], c["code"], c.get("display", c["code"])) for c in contains)
    if not codes:
        raise ValueError(f"value set {path.name} has no expansion.contains codes")
    return codes


def load_terminology(valueset_dir: Path = VALUESET_DIR) -> Terminology:
    def vs(name: str) -> tuple[Code, ...]:
        return load_valueset(valueset_dir / f"{name}.json")

    pi = tuple(c for c in vs("pressure-injury-stage-2-plus") if c[0] == ICD10CM)
    if not pi:
        raise ValueError("pressure-injury-stage-2-plus has no ICD-10-CM codes to write as Conditions")
    return Terminology(
        vte_pharmacological=vs("vte-pharmacological-prophylaxis") + vs("vte-low-dose-unfractionated-heparin"),
        vte_mechanical=vs("vte-mechanical-prophylaxis"),
        pressure_injury=pi,
        ae_fall=vs("adverse-event-fall"),
        ae_pressure_injury=vs("adverse-event-pressure-injury"),
        ae_medication_error=vs("adverse-event-medication-error"),
    )


#: Stage 1 is outside every pressure-injury indicator: a deliberate near miss.
PRESSURE_ULCER_STAGE_1: Code = (ICD10CM, "L89.151", "Pressure ulcer of sacral region, stage 1")
#: An incident that belongs to no indicator value set.
AE_OTHER: Code = (SNOMED, "281647001", "Adverse reaction")
PARACETAMOL: Code = (RXNORM, "313782", "acetaminophen 325 MG Oral Tablet")

SERVICES: dict[str, str] = {
    "general-medicine": "General medicine",
    "surgery": "General surgery",
    "orthopaedics": "Trauma and orthopaedics",
    "elderly-care": "Elderly care",
    "cardiology": "Cardiology",
    "emergency": "Emergency medicine",
}
INPATIENT_SERVICES = ("general-medicine", "surgery", "orthopaedics", "elderly-care", "cardiology")

# (code, display, chronic)
Dx = tuple[str, str, bool]
PRINCIPAL_DX: dict[str, tuple[Dx, ...]] = {
    "general-medicine": (
        ("233604007", "Pneumonia", False),
        ("68566005", "Urinary tract infectious disease", False),
        ("13645005", "Chronic obstructive lung disease", True),
        ("271737000", "Anemia", False),
        ("62315008", "Diarrhea", False),
    ),
    "surgery": (
        ("74400008", "Appendicitis", False),
        ("76581006", "Cholecystitis", False),
        ("34000006", "Crohn's disease", True),
        ("21522001", "Abdominal pain", False),
    ),
    "orthopaedics": (
        ("5913000", "Fracture of neck of femur", False),
        ("396275006", "Osteoarthritis", True),
        ("125605004", "Fracture of bone", False),
    ),
    "elderly-care": (
        ("230690007", "Cerebrovascular accident", False),
        ("2776000", "Delirium", False),
        ("233604007", "Pneumonia", False),
        ("68566005", "Urinary tract infectious disease", False),
    ),
    "cardiology": (
        ("22298006", "Myocardial infarction", False),
        ("84114007", "Heart failure", True),
        ("49436004", "Atrial fibrillation", True),
        ("29857009", "Chest pain", False),
    ),
}
HYPERTENSION: Dx = ("38341003", "Hypertensive disorder, systemic arterial", True)
COMORBIDITIES: tuple[Dx, ...] = (
    ("44054006", "Diabetes mellitus type 2", True),
    ("52448006", "Dementia", True),
    ("13645005", "Chronic obstructive lung disease", True),
    ("49436004", "Atrial fibrillation", True),
)
ED_DX: tuple[Dx, ...] = (
    ("29857009", "Chest pain", False),
    ("21522001", "Abdominal pain", False),
    ("82271004", "Injury of head", False),
    ("125605004", "Fracture of bone", False),
    ("267036007", "Dyspnea", False),
)
OUTPATIENT_DX: tuple[Dx, ...] = (
    ("44054006", "Diabetes mellitus type 2", True),
    ("396275006", "Osteoarthritis", True),
    ("49436004", "Atrial fibrillation", True),
    ("84114007", "Heart failure", True),
    ("13645005", "Chronic obstructive lung disease", True),
)
# (code, display, minutes taken; 0 = a point-in-time procedure)
Px = tuple[str, str, int]
PROCEDURES: dict[str, tuple[Px, ...]] = {
    "general-medicine": (("168731009", "Chest X-ray", 0), ("29303009", "Electrocardiographic procedure", 0)),
    "surgery": (
        ("80146002", "Appendectomy", 75),
        ("38102005", "Cholecystectomy", 90),
        ("73761001", "Colonoscopy", 40),
    ),
    "orthopaedics": (
        ("52734007", "Total replacement of hip", 120),
        ("609588000", "Total knee replacement", 110),
    ),
    "elderly-care": (("168731009", "Chest X-ray", 0), ("29303009", "Electrocardiographic procedure", 0)),
    "cardiology": (
        ("415070008", "Percutaneous coronary intervention", 70),
        ("29303009", "Electrocardiographic procedure", 0),
    ),
}

ENCOUNTER_TYPES: dict[str, tuple[str, str]] = {
    "EM": ("183452005", "Emergency hospital admission"),
    "UR": ("183452005", "Emergency hospital admission"),
    "EL": ("8715000", "Hospital admission, elective"),
    "AMB": ("11429006", "Consultation"),
    "EMER": ("50849002", "Emergency room admission"),
}
#: Routes of administration (SNOMED CT), as MedicationAdministration.dosage.route.
ROUTE_SUBCUTANEOUS = (SNOMED, "34206005", "Subcutaneous route")
ROUTE_INTRAVENOUS = (SNOMED, "47625008", "Intravenous route")
ROUTE_ORAL = (SNOMED, "26643006", "Oral route")
#: RxNorm codes of drugs given by a route other than subcutaneously: rivaroxaban and paracetamol
#: tablets, and heparin 1000 units/mL, the concentration used for infusions and line
#: flushes (CMS108 counts unfractionated heparin only when it is given subcutaneously).
ORAL_DRUGS = frozenset({"1114198", "313782"})
INTRAVENOUS_DRUGS = frozenset({"1361226"})


def route_for(code: str) -> tuple[str, str, str]:
    """The route a drug of the generated formulary is given by."""
    if code in ORAL_DRUGS:
        return ROUTE_ORAL
    if code in INTRAVENOUS_DRUGS:
        return ROUTE_INTRAVENOUS
    return ROUTE_SUBCUTANEOUS


CLASS_DISPLAY = {"IMP": "inpatient encounter", "AMB": "ambulatory", "EMER": "emergency"}
PRIORITY_DISPLAY = {"EM": "emergency", "UR": "urgent", "EL": "elective"}
SEVERITY_FOR_HARM = {
    "none": "mild",
    "low": "mild",
    "moderate": "moderate",
    "severe": "severe",
    "death": "severe",
}
OUTCOME_FOR_HARM = {
    "none": "resolved",
    "low": "resolved",
    "moderate": "recovering",
    "severe": "resolvedWithSequelae",
    "death": "fatal",
}
