"""Terminology the generator draws from: ordinary public codes, a few per purpose.

Every code is a constant here; the generator reads no value-set file at run time (the
demo works without the VSAC expansions, which CareQI does not ship). The codes are
chosen so that records look like an ordinary acute-hospital feed AND land in the value
sets the indicators read: the project's own (``indicators/valuesets``) for the in-house
indicators, the VSAC expansions for the CMS eCQMs. ``tests/generate/test_terminology.py``
checks each group against both, so a code that drifts out of its set fails a test
rather than silently emptying a measure.

Where the record of care and the bill differ, both are written as a hospital's feeds
have them: Conditions and Procedures mostly in SNOMED CT, the institutional Claim in
ICD-10-CM (diagnoses) and ICD-10-PCS (procedures). Near misses that a correct indicator
must NOT count are deliberate: a stage 1 pressure ulcer, paracetamol, a bruise after a
fall, secondary (not essential) hypertension.
"""

from __future__ import annotations

from typing import NamedTuple

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"  # the system URL VSAC expansions use
CPT = "http://www.ama-assn.org/go/cpt"
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
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PROCESS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
DIAGNOSIS_TYPE = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
PROCEDURE_TYPE = "http://terminology.hl7.org/CodeSystem/ex-procedure-type"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
NUBC_REVENUE = "https://www.nubc.org/CodeSystem/RevenueCodes"
SERVICE_SYSTEM = "https://careqi.example.org/fhir/CodeSystem/service"
MRN_SYSTEM = "https://careqi.example.org/fhir/sid/mrn"

Code = tuple[str, str, str]  # (system, code, display)


def _icd(code: str, display: str) -> Code:
    return (ICD10CM, code, display)


# ---------------------------------------------------------------- in-house indicator codes
#: VTE prophylaxis given (project sets vte-pharmacological-prophylaxis and
#: vte-low-dose-unfractionated-heparin; CMS108's LMWH, rivaroxaban and low-dose heparin sets).
VTE_PHARMACOLOGICAL: tuple[Code, ...] = (
    (RXNORM, "854228", "0.3 ML enoxaparin sodium 100 MG/ML Prefilled Syringe"),
    (RXNORM, "854235", "0.4 ML enoxaparin sodium 100 MG/ML Prefilled Syringe"),
    (RXNORM, "2618839", "4 ML dalteparin sodium 2500 UNT/ML Injection"),
    (RXNORM, "1114198", "rivaroxaban 10 MG Oral Tablet"),
    (RXNORM, "1361615", "heparin sodium, porcine 5000 UNT/ML Injectable Solution"),
    (RXNORM, "1361226", "heparin sodium, porcine 1000 UNT/ML Injectable Solution"),
)
#: Mechanical prophylaxis applied (project set vte-mechanical-prophylaxis).
VTE_MECHANICAL: tuple[Code, ...] = (
    (SNOMED, "424831005", "Application of foot pump (procedure)"),
    (SNOMED, "442410008", "Application of venous foot pump (procedure)"),
    (SNOMED, "443448006", "Application of intermittent pneumatic compression device (procedure)"),
    (SNOMED, "229511001", "Application of graduated compression garment (procedure)"),
)
#: Incident-report codes (AdverseEvent.event): project sets adverse-event-*; the falls are
#: also in CMS1017's Inpatient Falls, which finds the fall through the AdverseEvent.
FALL_SLIPPED: Code = _icd(
    "W01.0XXA",
    "Fall on same level from slipping, tripping and stumbling without subsequent striking against object, "
    "initial encounter",
)
FALL_FROM_WHEELCHAIR: Code = _icd("W05.0XXA", "Fall from non-moving wheelchair, initial encounter")
AE_FALL: tuple[Code, ...] = (
    (SNOMED, "217082002", "Accidental fall"),
    (SNOMED, "1912002", "Fall"),
    FALL_SLIPPED,
    FALL_FROM_WHEELCHAIR,
)
#: A pressure-injury incident report: the generic concept, or a stage 2 diagnosis code.
AE_PRESSURE_ULCER: Code = (SNOMED, "399912005", "Pressure ulcer")
AE_PRESSURE_INJURY_STAGE_2: Code = _icd("L89.152", "Pressure ulcer of sacral region, stage 2")
AE_MEDICATION_ERROR: tuple[Code, ...] = (
    _icd("Y63.8", "Failure in dosage during other surgical and medical care"),
    _icd("Y63.9", "Failure in dosage during unspecified surgical and medical care"),
)
#: An incident that belongs to no indicator value set.
AE_OTHER: Code = (SNOMED, "281647001", "Adverse reaction")
PARACETAMOL: Code = (RXNORM, "313782", "acetaminophen 325 MG Oral Tablet")

# ---------------------------------------------------------------- pressure injuries (ICD-10-CM)
#: Stage 2, 3, 4 or unstageable: project set pressure-injury-stage-2-plus, and CMS826's
#: "Pressure Injury Stage 2, 3, 4, or Unstageable Diagnoses".
PRESSURE_INJURY_STAGE_2_PLUS: tuple[Code, ...] = (
    _icd("L89.152", "Pressure ulcer of sacral region, stage 2"),
    _icd("L89.153", "Pressure ulcer of sacral region, stage 3"),
    _icd("L89.154", "Pressure ulcer of sacral region, stage 4"),
    _icd("L89.150", "Pressure ulcer of sacral region, unstageable"),
    _icd("L89.312", "Pressure ulcer of right buttock, stage 2"),
    _icd("L89.322", "Pressure ulcer of left buttock, stage 2"),
    _icd("L89.212", "Pressure ulcer of right hip, stage 2"),
)
#: Deep tissue injury: CMS826's "Pressure Injury Deep Tissue Diagnoses". Not in the
#: project's stage 2+ set (NPIAP stages it apart), so the in-house indicator leaves it out.
PRESSURE_INJURY_DEEP_TISSUE: tuple[Code, ...] = (
    _icd("L89.156", "Pressure-induced deep tissue damage of sacral region"),
    _icd("L89.616", "Pressure-induced deep tissue damage of right heel"),
    _icd("L89.626", "Pressure-induced deep tissue damage of left heel"),
)
#: Stage 1 is outside every pressure-injury indicator: a deliberate near miss.
PRESSURE_ULCER_STAGE_1: Code = _icd("L89.151", "Pressure ulcer of sacral region, stage 1")

# ---------------------------------------------------------------- falls on the claim (ICD-10-CM)
#: External cause of an inpatient fall: CMS1017's Inpatient Falls. W codes are on CMS's
#: POA-exempt list, but CMS1017 reads their POA indicator (as the MADiE decks state one),
#: so the claim always states it: a fall diagnosis without one would satisfy "not present
#: on admission" whatever its injury.
FALL_CAUSES: tuple[Code, ...] = (
    FALL_SLIPPED,
    _icd("W06.XXXA", "Fall from bed, initial encounter"),
    FALL_FROM_WHEELCHAIR,
    _icd("W18.30XA", "Fall on same level, unspecified, initial encounter"),
    _icd("W19.XXXA", "Unspecified fall, initial encounter"),
)
#: A bruise: low harm, in neither CMS1017 injury set (a near miss).
MINOR_INJURIES: tuple[Code, ...] = (
    _icd("S00.03XA", "Contusion of scalp, initial encounter"),
    _icd("S80.01XA", "Contusion of right knee, initial encounter"),
    _icd("S50.01XA", "Contusion of right elbow, initial encounter"),
)
#: CMS1017 "Moderate Injuries".
MODERATE_INJURIES: tuple[Code, ...] = (
    _icd("S01.01XA", "Laceration without foreign body of scalp, initial encounter"),
    _icd("S01.81XA", "Laceration without foreign body of other part of head, initial encounter"),
)
#: CMS1017 "Major Injuries": fractures and intracranial bleeding.
WRIST_FRACTURE: Code = _icd(
    "S52.501A", "Unspecified fracture of the lower end of right radius, initial encounter for closed fracture"
)
HIP_FRACTURES: tuple[Code, ...] = (
    _icd("S72.001A", "Fracture of unspecified part of neck of right femur, initial encounter for closed fracture"),
    _icd("S72.002A", "Fracture of unspecified part of neck of left femur, initial encounter for closed fracture"),
)
MAJOR_INJURIES: tuple[Code, ...] = (
    *HIP_FRACTURES,
    _icd("S42.201A", "Unspecified fracture of upper end of right humerus, initial encounter for closed fracture"),
    _icd("S06.5X0A", "Traumatic subdural hemorrhage without loss of consciousness, initial encounter"),
    WRIST_FRACTURE,
)

# ---------------------------------------------------------------- diagnoses of the record and the bill


class Dx(NamedTuple):
    """A diagnosis as the record of care (SNOMED CT) and the claim (ICD-10-CM) code it."""

    code: str  # SNOMED CT
    display: str
    chronic: bool
    icd10: Code


def _dx(code: str, display: str, chronic: bool, icd10: str, icd10_display: str) -> Dx:
    return Dx(code, display, chronic, _icd(icd10, icd10_display))


PNEUMONIA = _dx("233604007", "Pneumonia", False, "J18.9", "Pneumonia, unspecified organism")
UTI = _dx("68566005", "Urinary tract infectious disease", False, "N39.0", "Urinary tract infection, site not specified")
COPD = _dx(
    "13645005", "Chronic obstructive lung disease", True, "J44.9", "Chronic obstructive pulmonary disease, unspecified"
)
ATRIAL_FIBRILLATION = _dx("49436004", "Atrial fibrillation", True, "I48.91", "Unspecified atrial fibrillation")
HEART_FAILURE = _dx("84114007", "Heart failure", True, "I50.9", "Heart failure, unspecified")
DIABETES = _dx("44054006", "Diabetes mellitus type 2", True, "E11.9", "Type 2 diabetes mellitus without complications")
OSTEOARTHRITIS = _dx("396275006", "Osteoarthritis", True, "M19.90", "Unspecified osteoarthritis, unspecified site")
CHEST_PAIN = _dx("29857009", "Chest pain", False, "R07.9", "Chest pain, unspecified")
ABDOMINAL_PAIN = _dx("21522001", "Abdominal pain", False, "R10.9", "Unspecified abdominal pain")
HIP_FRACTURE = _dx("5913000", "Fracture of neck of femur", False, *HIP_FRACTURES[0][1:])
WRIST_FRACTURE_DX = _dx("125605004", "Fracture of bone", False, *WRIST_FRACTURE[1:])
#: Principal diagnoses whose injury came from a fall before admission (the claim adds the
#: fall, present on admission: CMS1017's denominator exclusion).
FALL_INJURY_DX = frozenset({HIP_FRACTURE.code, WRIST_FRACTURE_DX.code})

PRINCIPAL_DX: dict[str, tuple[Dx, ...]] = {
    "general-medicine": (
        PNEUMONIA,
        UTI,
        COPD,
        _dx("271737000", "Anemia", False, "D64.9", "Anemia, unspecified"),
        _dx("62315008", "Diarrhea", False, "R19.7", "Diarrhea, unspecified"),
    ),
    "surgery": (
        _dx("74400008", "Appendicitis", False, "K35.80", "Unspecified acute appendicitis"),
        _dx("76581006", "Cholecystitis", False, "K81.9", "Cholecystitis, unspecified"),
        _dx("34000006", "Crohn's disease", True, "K50.90", "Crohn's disease, unspecified, without complications"),
        ABDOMINAL_PAIN,
    ),
    "orthopaedics": (HIP_FRACTURE, OSTEOARTHRITIS, WRIST_FRACTURE_DX),
    "elderly-care": (
        # CMS108 excludes a principal diagnosis of ischemic stroke: I63.9 is in its set.
        _dx("230690007", "Cerebrovascular accident", False, "I63.9", "Cerebral infarction, unspecified"),
        _dx("2776000", "Delirium", False, "F05", "Delirium due to known physiological condition"),
        PNEUMONIA,
        UTI,
    ),
    "cardiology": (
        _dx("22298006", "Myocardial infarction", False, "I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"),
        HEART_FAILURE,
        ATRIAL_FIBRILLATION,
        CHEST_PAIN,
    ),
}
#: Essential hypertension: CMS165's "Essential Hypertension" (SNOMED CT and ICD-10-CM).
ESSENTIAL_HYPERTENSION = _dx("59621000", "Essential hypertension", True, "I10", "Essential (primary) hypertension")
#: Secondary hypertension is outside CMS165's denominator: a near miss.
SECONDARY_HYPERTENSION = _dx("31992008", "Secondary hypertension", True, "I15.9", "Secondary hypertension, unspecified")
DEMENTIA = _dx(
    "52448006",
    "Dementia",
    True,
    "F03.90",
    "Unspecified dementia, unspecified severity, without behavioral disturbance, psychotic disturbance, "
    "mood disturbance, and anxiety",
)
COMORBIDITIES: tuple[Dx, ...] = (DIABETES, DEMENTIA, COPD, ATRIAL_FIBRILLATION)
ED_DX: tuple[Dx, ...] = (
    CHEST_PAIN,
    ABDOMINAL_PAIN,
    _dx("82271004", "Injury of head", False, "S09.90XA", "Unspecified injury of head, initial encounter"),
    WRIST_FRACTURE_DX,
    _dx("267036007", "Dyspnea", False, "R06.00", "Dyspnea, unspecified"),
)
OUTPATIENT_DX: tuple[Dx, ...] = (DIABETES, OSTEOARTHRITIS, ATRIAL_FIBRILLATION, HEART_FAILURE, COPD)


class Px(NamedTuple):
    """A procedure as the record (SNOMED CT) and, when coded on the bill, the claim (ICD-10-PCS)."""

    code: str  # SNOMED CT
    display: str
    minutes: int  # 0: a point-in-time procedure
    icd10pcs: Code | None


def _pcs(code: str, display: str) -> Code:
    return (ICD10PCS, code, display)


CHEST_XRAY = Px("168731009", "Chest X-ray", 0, None)
ECG = Px("29303009", "Electrocardiographic procedure", 0, None)
APPENDECTOMY = Px(
    "80146002", "Appendectomy", 75, _pcs("0DTJ4ZZ", "Resection of Appendix, Percutaneous Endoscopic Approach")
)
CHOLECYSTECTOMY = Px(
    "38102005", "Cholecystectomy", 90, _pcs("0FT44ZZ", "Resection of Gallbladder, Percutaneous Endoscopic Approach")
)
COLONOSCOPY = Px(
    "73761001",
    "Colonoscopy",
    40,
    _pcs("0DJD8ZZ", "Inspection of Lower Intestinal Tract, Via Natural or Artificial Opening Endoscopic"),
)
#: Hip and knee replacement are in CMS108's selected surgery (its denominator exclusion).
HIP_REPLACEMENT = Px(
    "52734007",
    "Total replacement of hip",
    120,
    _pcs("0SR9019", "Replacement of Right Hip Joint with Metal Synthetic Substitute, Cemented, Open Approach"),
)
KNEE_REPLACEMENT = Px(
    "609588000",
    "Total knee replacement",
    110,
    _pcs("0SRC0J9", "Replacement of Right Knee Joint with Synthetic Substitute, Cemented, Open Approach"),
)
PCI = Px(
    "415070008",
    "Percutaneous coronary intervention",
    70,
    _pcs("02703DZ", "Dilation of Coronary Artery, One Artery with Intraluminal Device, Percutaneous Approach"),
)
PROCEDURES: dict[str, tuple[Px, ...]] = {
    "general-medicine": (CHEST_XRAY, ECG),
    "surgery": (APPENDECTOMY, CHOLECYSTECTOMY, COLONOSCOPY),
    "orthopaedics": (HIP_REPLACEMENT, KNEE_REPLACEMENT),
    "elderly-care": (CHEST_XRAY, ECG),
    "cardiology": (PCI, ECG),
}

# ---------------------------------------------------------------- encounters
SERVICES: dict[str, str] = {
    "general-medicine": "General medicine",
    "surgery": "General surgery",
    "orthopaedics": "Trauma and orthopaedics",
    "elderly-care": "Elderly care",
    "cardiology": "Cardiology",
    "emergency": "Emergency medicine",
}
INPATIENT_SERVICES = ("general-medicine", "surgery", "orthopaedics", "elderly-care", "cardiology")

#: Encounter.type by admission priority or class: the inpatient types are in the eCQMs'
#: "Encounter Inpatient", the emergency visit in their "Emergency Department Visit" (so a
#: stay's hospitalization starts in the emergency department, as CQMCommon reads it).
ENCOUNTER_TYPES: dict[str, Code] = {
    "EM": (SNOMED, "183452005", "Emergency hospital admission"),
    "UR": (SNOMED, "183452005", "Emergency hospital admission"),
    "EL": (SNOMED, "8715000", "Hospital admission, elective"),
    "EMER": (SNOMED, "4525004", "Emergency department patient visit"),
}
#: Outpatient clinic visits are billed as office visits (CPT evaluation and management):
#: CMS165's "Office Visit". Established patients mostly, some new ones.
OFFICE_VISITS_ESTABLISHED: tuple[Code, ...] = (
    (CPT, "99212", "Office or other outpatient visit, established patient, straightforward decision making"),
    (CPT, "99213", "Office or other outpatient visit, established patient, low level of decision making"),
    (CPT, "99214", "Office or other outpatient visit, established patient, moderate level of decision making"),
    (CPT, "99215", "Office or other outpatient visit, established patient, high level of decision making"),
)
OFFICE_VISITS_NEW: tuple[Code, ...] = (
    (CPT, "99203", "Office or other outpatient visit, new patient, low level of decision making"),
    (CPT, "99204", "Office or other outpatient visit, new patient, moderate level of decision making"),
)

# ---------------------------------------------------------------- the institutional claim
CLAIM_INSTITUTIONAL: Code = (CLAIM_TYPE, "institutional", "Institutional")
CLAIM_PRIORITY: Code = (PROCESS_PRIORITY, "normal", "Normal")
PRINCIPAL_DIAGNOSIS: Code = (DIAGNOSIS_TYPE, "principal", "Principal Diagnosis")
PRIMARY_PROCEDURE: Code = (PROCEDURE_TYPE, "primary", "Primary procedure")
#: Inpatient lines carry a revenue code; productOrService does not apply to them (as the
#: CARIN Blue Button institutional profile writes it).
NOT_APPLICABLE: Code = (DATA_ABSENT, "not-applicable", "Not Applicable")
REVENUE_ROOM_AND_BOARD: Code = (NUBC_REVENUE, "0120", "Room & Board - Semi-Private Two Bed, General")
REVENUE_OPERATING_ROOM: Code = (NUBC_REVENUE, "0360", "Operating Room Services, General")

# ---------------------------------------------------------------- observations
BP_PANEL: Code = (LOINC, "85354-9", "Blood pressure panel with all children optional")
SYSTOLIC: Code = (LOINC, "8480-6", "Systolic blood pressure")
DIASTOLIC: Code = (LOINC, "8462-4", "Diastolic blood pressure")
HEART_RATE: Code = (LOINC, "8867-4", "Heart rate")

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
