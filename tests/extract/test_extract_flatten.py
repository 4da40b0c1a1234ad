from __future__ import annotations

import pytest

from pipelines.extract.flatten import (
    encounter_diagnosis_poa,
    flatten_adverse_event,
    flatten_condition,
    flatten_device_request,
    flatten_encounter,
    flatten_location,
    flatten_medication_administration,
    flatten_medication_request,
    flatten_observation,
    flatten_organization,
    flatten_patient,
    flatten_procedure,
    flatten_service_request,
    flatten_task,
)
from pipelines.extract.references import ref_id
from pipelines.tables import HARM_EXTENSION, POA_EXTENSION, POA_SYSTEM, TABLES

LOINC = "http://loinc.org"


def _poa(code: str) -> dict:
    return {"url": POA_EXTENSION, "valueCodeableConcept": {"coding": [{"system": POA_SYSTEM, "code": code}]}}


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"reference": "Patient/abc"}, "abc"),
        ({"reference": "urn:uuid:abc-123"}, "abc-123"),
        ({"reference": "https://ehr.example.org/fhir/Patient/abc"}, "abc"),
        ({"reference": "Patient/abc/_history/3"}, "abc"),
        ({"reference": "Organization?identifier=https://github.com/synthetichealth/synthea|org-1"}, "org-1"),
        ({"identifier": {"system": "https://github.com/synthetichealth/synthea", "value": "org-2"}}, "org-2"),
        ({"reference": "#contained-med"}, None),
        ({"display": "only a label"}, None),
        ("Encounter/e9", "e9"),
        (None, None),
        ("", None),
    ],
)
def test_reference_spellings_resolve_to_the_logical_id(ref: object, expected: str | None) -> None:
    assert ref_id(ref) == expected


def test_every_flattener_returns_exactly_its_table_columns() -> None:
    cases = {
        "patients": flatten_patient,
        "encounters": flatten_encounter,
        "conditions": flatten_condition,
        "procedures": flatten_procedure,
        "medications": flatten_medication_request,
        "observations": flatten_observation,
        "adverse_events": flatten_adverse_event,
        "organizations": flatten_organization,
        "locations": flatten_location,
        "requests": flatten_service_request,
    }
    for table, fn in cases.items():
        expected = [c.name for c in TABLES[table].columns]
        assert list(fn({"resourceType": "X", "id": "1"})) == expected, table
    assert list(flatten_medication_administration({"id": "1"})) == [c.name for c in TABLES["medications"].columns]
    for fn in (flatten_device_request, flatten_task):
        assert list(fn({"id": "1"})) == [c.name for c in TABLES["requests"].columns]


def test_missing_or_oddly_shaped_elements_give_nulls_not_errors() -> None:
    row = flatten_encounter({"id": "e1", "class": "IMP", "period": "yesterday", "type": [], "location": [None]})
    assert row["encounter_id"] == "e1"
    assert row["class_code"] is None
    assert row["start_at"] is None and row["type_code"] is None and row["ward_id"] is None
    obs = flatten_observation({"id": "o1", "code": {"coding": "nope"}, "component": "x"})
    assert obs["code"] is None and obs["systolic"] is None


def test_patient_never_carries_names_identifiers_addresses_or_telecoms() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"}],
        "name": [{"family": "Smith", "given": ["Jo"]}],
        "telecom": [{"system": "phone", "value": "555-0100"}],
        "address": [{"line": ["1 High St"], "city": "Leeds"}],
        "gender": "female",
        "birthDate": "1950-02-03",
        "deceasedDateTime": "2020-01-01T10:00:00+01:00",
        "managingOrganization": {"reference": "Organization/org1"},
    }
    row = flatten_patient(patient)
    assert row == {
        "patient_id": "p1",
        "birth_date": "1950-02-03",
        "gender": "female",
        "deceased_at": "2020-01-01T10:00:00+01:00",
        "organization_id": "org1",
    }
    text = repr(row)
    for secret in ("999-12-3456", "Smith", "555-0100", "High St", "Leeds"):
        assert secret not in text


def test_encounter_maps_class_type_service_priority_hospitalization_facility_and_ward() -> None:
    enc = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "32485007"}]}],
        "serviceType": {"coding": [{"code": "surgery"}]},
        "priority": {"coding": [{"code": "EL"}]},
        "subject": {"reference": "urn:uuid:p1"},
        "period": {"start": "2026-01-02T08:00:00+02:00", "end": "2026-01-05"},
        "hospitalization": {
            "admitSource": {"coding": [{"code": "hosp-trans"}]},
            "dischargeDisposition": {"coding": [{"code": "home"}]},
        },
        "serviceProvider": {"reference": "Organization/fac1", "display": "St Elsewhere"},
        "location": [{"location": {"reference": "Location/w3", "display": "Ward 3"}}],
    }
    assert flatten_encounter(enc) == {
        "encounter_id": "e1",
        "patient_id": "p1",
        "status": "finished",
        "class_code": "IMP",
        "type_code": "32485007",
        "type_system": "http://snomed.info/sct",
        "service": "surgery",
        "priority": "EL",
        "admit_source": "hosp-trans",
        "discharge_disposition": "home",
        "start_at": "2026-01-02T08:00:00+02:00",
        "end_at": "2026-01-05",
        "facility_id": "fac1",
        "facility_name": "St Elsewhere",
        "ward_id": "w3",
        "ward_name": "Ward 3",
    }


def test_condition_maps_statuses_category_onset_period_and_own_poa_extension() -> None:
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "extension": [_poa("N")],
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "category": [{"coding": [{"code": "encounter-diagnosis"}]}],
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L89.152"}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "onsetPeriod": {"start": "2026-01-03T10:00:00Z"},
        "abatementDateTime": "2026-02-01",
        "recordedDate": "2026-01-03",
    }
    row = flatten_condition(cond)
    assert row["present_on_admission"] == "N"
    assert (row["code"], row["code_system"]) == ("L89.152", "http://hl7.org/fhir/sid/icd-10-cm")
    assert (row["clinical_status"], row["verification_status"], row["category"]) == (
        "active",
        "confirmed",
        "encounter-diagnosis",
    )
    assert row["onset_at"] == "2026-01-03T10:00:00Z"
    assert (row["patient_id"], row["encounter_id"]) == ("p1", "e1")


def test_encounter_diagnosis_poa_pairs_condition_with_its_code() -> None:
    enc = {
        "id": "e1",
        "diagnosis": [
            {"condition": {"reference": "Condition/c1"}, "extension": [_poa("Y")]},
            {"condition": {"reference": "urn:uuid:c2"}, "extension": [_poa("W")]},
            {"condition": {"reference": "Condition/c3"}},  # no POA recorded
        ],
    }
    assert encounter_diagnosis_poa(enc) == [("c1", "Y"), ("c2", "W")]


def test_procedure_period_or_datetime() -> None:
    period = flatten_procedure(
        {"id": "x", "performedPeriod": {"start": "2026-01-01T10:00:00Z", "end": "2026-01-01T11:00:00Z"}}
    )
    assert (period["performed_start"], period["performed_end"]) == (
        "2026-01-01T10:00:00Z",
        "2026-01-01T11:00:00Z",
    )
    point = flatten_procedure({"id": "y", "performedDateTime": "2026-01-01T10:00:00Z"})
    assert (point["performed_start"], point["performed_end"]) == ("2026-01-01T10:00:00Z", None)


def test_medication_administration_takes_encounter_from_context() -> None:
    admin = {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "854235"}]
        },
        "subject": {"reference": "Patient/p1"},
        "context": {"reference": "Encounter/e1"},
        "encounter": {"reference": "Encounter/WRONG"},
        "effectivePeriod": {"start": "2026-01-02T08:00:00Z", "end": "2026-01-02T08:05:00Z"},
    }
    row = flatten_medication_administration(admin)
    assert row["encounter_id"] == "e1"
    assert row["resource_type"] == "MedicationAdministration"
    assert (row["code"], row["effective_start"], row["effective_end"]) == (
        "854235",
        "2026-01-02T08:00:00Z",
        "2026-01-02T08:05:00Z",
    )


def test_medication_request_takes_encounter_and_authored_on() -> None:
    req = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"code": "1191"}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e2"},
        "authoredOn": "2026-01-02T09:00:00-05:00",
    }
    row = flatten_medication_request(req)
    assert (row["encounter_id"], row["effective_start"], row["effective_end"]) == (
        "e2",
        "2026-01-02T09:00:00-05:00",
        None,
    )
    assert row["resource_type"] == "MedicationRequest"


def test_medication_code_from_contained_medication() -> None:
    admin = {
        "id": "ma2",
        "contained": [
            {"resourceType": "Medication", "id": "m", "code": {"coding": [{"system": "ndc", "code": "0069"}]}}
        ],
        "medicationReference": {"reference": "#m"},
    }
    assert flatten_medication_administration(admin)["code"] == "0069"


def test_observation_blood_pressure_components_and_values() -> None:
    bp = {
        "resourceType": "Observation",
        "id": "bp1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "effectiveDateTime": "2026-01-02T08:00:00+05:30",
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 82, "unit": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 131.5, "unit": "mm[Hg]"},
            },
        ],
    }
    row = flatten_observation(bp)
    assert (row["systolic"], row["diastolic"]) == (131.5, 82)
    assert row["value_num"] is None and row["code"] == "85354-9"
    qty = flatten_observation({"id": "o", "valueQuantity": {"value": 7.2, "code": "mmol/L"}})
    assert (qty["value_num"], qty["value_unit"], qty["value_code"]) == (7.2, "mmol/L", None)
    coded = flatten_observation({"id": "o", "valueCodeableConcept": {"coding": [{"code": "LA6576-8"}]}})
    assert (coded["value_code"], coded["value_num"]) == ("LA6576-8", None)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {
                "extension": [{"url": HARM_EXTENSION, "valueCode": "moderate"}],
                "outcome": {"coding": [{"code": "fatal"}]},
            },
            "moderate",
        ),
        ({"outcome": {"coding": [{"code": "fatal"}]}, "severity": {"coding": [{"code": "mild"}]}}, "death"),
        ({"outcome": {"coding": [{"code": "resolvedWithSequelae"}]}}, "severe"),
        ({"outcome": {"coding": [{"code": "resolved"}]}, "severity": {"coding": [{"code": "mild"}]}}, "low"),
        ({"severity": {"coding": [{"code": "moderate"}]}}, "moderate"),
        ({"severity": {"coding": [{"code": "severe"}]}}, "severe"),
        ({}, None),
    ],
)
def test_adverse_event_harm_level_precedence(event: dict, expected: str | None) -> None:
    assert flatten_adverse_event({"id": "ae", **event})["harm_level"] == expected


def test_adverse_event_maps_event_code_dates_and_ward() -> None:
    row = flatten_adverse_event(
        {
            "id": "ae1",
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "event": {"coding": [{"system": "http://snomed.info/sct", "code": "217082002"}]},
            "date": "2026-01-03T02:00:00Z",
            "recordedDate": "2026-01-03T09:00:00Z",
            "location": {"reference": "Location/w3"},
        }
    )
    assert (row["code"], row["occurred_at"], row["recorded_at"], row["ward_id"], row["encounter_id"]) == (
        "217082002",
        "2026-01-03T02:00:00Z",
        "2026-01-03T09:00:00Z",
        "w3",
        "e1",
    )


def test_organization_and_location() -> None:
    org = flatten_organization(
        {
            "id": "fac1",
            "name": "St Elsewhere",
            "type": [{"coding": [{"code": "prov"}]}],
            "partOf": {"reference": "Organization/trust"},
        }
    )
    assert org == {"organization_id": "fac1", "name": "St Elsewhere", "type_code": "prov", "part_of": "trust"}
    loc = flatten_location(
        {
            "id": "w3",
            "name": "Ward 3",
            "physicalType": {"coding": [{"code": "wa"}]},
            "managingOrganization": {"identifier": {"value": "fac1"}},
            "partOf": {"reference": "Location/bldg"},
        }
    )
    assert loc == {
        "location_id": "w3",
        "name": "Ward 3",
        "type_code": "wa",
        "kind_code": None,
        "kind_system": None,
        "organization_id": "fac1",
        "part_of": "bldg",
    }
