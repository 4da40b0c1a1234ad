"""Suites of the eCQM tables: good rows load, each kind of broken row is quarantined."""

from __future__ import annotations

from pipelines.validate import validate_tables
from tests.validate.helpers import SUITES_DIR, frame


def _held(result, table: str) -> dict[str, str]:
    q = result.quarantine[result.quarantine["table_name"] == table]
    return dict(zip(q["record_id"], q["reasons"], strict=True))


def test_ecqm_tables_accept_good_rows_and_quarantine_broken_ones() -> None:
    tables = {
        "codings": frame(
            "codings",
            [
                {"coding_id": "a", "table_name": "encounters", "record_id": "e1", "element": "type", "code": "1"},
                {"coding_id": "b", "table_name": "encounters", "record_id": "e1", "element": "type", "code": None},
                {"coding_id": "c", "table_name": "nowhere", "record_id": "e1", "element": "type", "code": "1"},
            ],
        ),
        "encounter_locations": frame(
            "encounter_locations",
            [
                {
                    "encounter_location_id": "e1/1",
                    "encounter_id": "e1",
                    "location_id": "icu",
                    "start_at": "2026-01-01T00:00:00Z",
                    "end_at": "2026-01-02T00:00:00Z",
                },
                {
                    "encounter_location_id": "e1/2",
                    "encounter_id": "e1",
                    "location_id": "icu",
                    "start_at": "2026-01-03T00:00:00Z",
                    "end_at": "2026-01-02T00:00:00Z",
                },
                {"encounter_location_id": "e1/3", "encounter_id": "e1", "location_id": None},
            ],
        ),
        "encounter_diagnoses": frame(
            "encounter_diagnoses",
            [
                {
                    "encounter_diagnosis_id": "e1/diagnosis/1",
                    "encounter_id": "e1",
                    "element": "diagnosis",
                    "condition_id": "c1",
                    "rank": 1,
                    "present_on_admission": "Y",
                },
                {
                    "encounter_diagnosis_id": "e1/diagnosis/2",
                    "encounter_id": "e1",
                    "element": "diagnosis",
                    "condition_id": "c2",
                    "present_on_admission": "maybe",
                },
                {
                    "encounter_diagnosis_id": "e1/reasonReference/1",
                    "encounter_id": "e1",
                    "element": "reasonReference",
                    "condition_id": "c3",
                },
                {
                    "encounter_diagnosis_id": "e1/reason/1",
                    "encounter_id": "e1",
                    "element": "reason",
                    "condition_id": "c4",
                },
                {"encounter_diagnosis_id": "e1/x/1", "encounter_id": "e1", "element": None, "condition_id": "c5"},
            ],
        ),
        "claim_diagnoses": frame(
            "claim_diagnoses",
            [
                {
                    "claim_diagnosis_id": "x/1",
                    "claim_id": "x",
                    "patient_id": "p1",
                    "sequence": 1,
                    "status": "active",
                    "use": "claim",
                    "present_on_admission": "N",
                },
                {"claim_diagnosis_id": "x/2", "claim_id": "x", "patient_id": None, "sequence": 0},
            ],
        ),
        "claim_procedures": frame(
            "claim_procedures",
            [
                {
                    "claim_procedure_id": "x/1",
                    "claim_id": "x",
                    "patient_id": "p1",
                    "sequence": 1,
                    "status": "active",
                    "use": "claim",
                    "procedure_type": "primary",
                    "performed_at": "2026-11-02T09:00:00Z",
                },
                {"claim_procedure_id": "x/2", "claim_id": "x", "patient_id": None, "sequence": 0},
                {"claim_procedure_id": "x/3", "claim_id": "x", "patient_id": "p1", "performed_at": "1850-01-01"},
                {"claim_procedure_id": "x/1", "claim_id": "x", "patient_id": "p1", "use": "bill"},
            ],
        ),
        "requests": frame(
            "requests",
            [
                {"request_id": "t1", "resource_type": "Task", "status": "rejected", "intent": None},
                {"request_id": "s1", "resource_type": "ServiceRequest", "status": "done", "intent": "order"},
            ],
        ),
    }
    result = validate_tables(tables, SUITES_DIR)
    assert {t: df.iloc[:, 0].tolist() for t, df in result.valid.items()} == {
        "codings": ["a"],
        "encounter_locations": ["e1/1"],
        "encounter_diagnoses": ["e1/diagnosis/1", "e1/reasonReference/1"],
        "claim_diagnoses": ["x/1"],
        "claim_procedures": ["x/1"],
        "requests": ["t1"],  # a Task may name no patient and no intent
    }
    assert "code is present" in _held(result, "codings")["b"]
    assert "table_name" in _held(result, "codings")["c"]
    assert "end_at is not before start_at" in _held(result, "encounter_locations")["e1/2"]
    assert "location_id is present" in _held(result, "encounter_locations")["e1/3"]
    assert "present-on-admission" in _held(result, "encounter_diagnoses")["e1/diagnosis/2"]
    assert "element" in _held(result, "encounter_diagnoses")["e1/reason/1"]
    assert "element is present" in _held(result, "encounter_diagnoses")["e1/x/1"]
    procs = result.quarantine[result.quarantine["table_name"] == "claim_procedures"]
    assert sorted(procs["record_id"]) == ["x/1", "x/2", "x/3"]  # the second x/1 is a duplicate
    held = _held(result, "claim_procedures")
    assert "patient_id" in held["x/2"] and "sequence" in held["x/2"]
    assert "performed_at" in held["x/3"]
    reasons = _held(result, "claim_diagnoses")["x/2"]
    assert "patient_id" in reasons and "sequence" in reasons
    assert "status" in _held(result, "requests")["s1"]
