"""Plausibility and referential checks (issue 11, defect 9), the fail ratio that counts
rows quarantined at extraction (defect 1) and missing CSV columns as failed checks
(defect 6)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.errors import ConfigError
from pipelines.tables import TABLES
from pipelines.validate import validate_tables
from pipelines.validate.relations import parse_relations
from tests.validate.helpers import SUITES_DIR, frame

BATCH_END = {"latest_plausible": pd.Timestamp("2026-12-02")}  # October's batch + 31 days
PATIENTS = [{"patient_id": "p1", "birth_date": "1950-01-01"}, {"patient_id": "p2", "birth_date": "2026-10-20"}]
ENC = {"patient_id": "p1", "status": "finished", "class_code": "IMP", "start_at": "2026-10-01T08:00:00"}


def _held(result, table: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    q = result.quarantine[result.quarantine["table_name"] == table]
    return dict(zip(q["record_id"], q["reasons"], strict=True))


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    encounters = [
        {**ENC, "encounter_id": "ok", "end_at": "2026-10-04T10:00:00"},
        {**ENC, "encounter_id": "ghost", "patient_id": "nobody", "end_at": "2026-10-04T10:00:00"},
        {**ENC, "encounter_id": "unborn", "patient_id": "p2", "end_at": "2026-10-24T10:00:00"},
        {**ENC, "encounter_id": "four_years", "start_at": "2022-10-01T08:00:00", "end_at": "2026-10-04T10:00:00"},
        {**ENC, "encounter_id": "future", "start_at": "2099-10-01T08:00:00"},
        {**ENC, "encounter_id": "next_month", "start_at": "2026-11-20T08:00:00"},
        {**ENC, "encounter_id": "held", "patient_id": "p_in_warehouse", "end_at": "2026-10-04T10:00:00"},
    ]
    observations = [
        {"observation_id": "w_ok", "patient_id": "p1", "encounter_id": "ok", "code": "29463-7", "value_num": 71.5,
         "value_unit": "kg", "effective_at": "2026-10-02T08:00:00"},
        {"observation_id": "w_neg", "patient_id": "p1", "encounter_id": "ok", "code": "29463-7", "value_num": -4,
         "value_unit": "kg", "effective_at": "2026-10-02T08:00:00"},
        {"observation_id": "hr_ok", "patient_id": "p1", "encounter_id": "ok", "code": "8867-4", "value_num": 300,
         "value_unit": "/min", "effective_at": "2026-10-02T08:00:00"},
        {"observation_id": "no_stay", "patient_id": "p1", "encounter_id": "e404", "code": "8867-4", "value_num": 80,
         "value_unit": "/min", "effective_at": "2026-10-02T08:00:00"},
    ]  # fmt: skip
    lookups: list[tuple[str, list[str]]] = []

    def lookup(table: str, ids, columns):  # type: ignore[no-untyped-def]
        lookups.append((table, sorted(ids)))
        key = TABLES[table].key
        held = {"patients": {"p_in_warehouse": "1960-01-01"}}.get(table, {})
        rows = [{key: i, **{c: held[i] for c in columns}} for i in ids if i in held]
        out = pd.DataFrame(rows, columns=[key, *columns])
        for c in columns:
            out[c] = pd.to_datetime(out[c])
        return out

    tables = {
        "patients": frame("patients", PATIENTS),
        "encounters": frame("encounters", encounters),
        "observations": frame("observations", observations),
    }
    out = validate_tables(tables, SUITES_DIR, fail_ratio=1.0, parameters=BATCH_END, lookup=lookup)
    out.lookups = lookups  # type: ignore[attr-defined]
    return out


def test_a_reference_to_a_patient_nobody_delivered_is_quarantined(result) -> None:  # type: ignore[no-untyped-def]
    held = _held(result, "encounters")
    assert "reference(patient_id -> patients)" in held["ghost"]
    assert "held" not in held  # found in the warehouse
    assert ("patients", ["nobody", "p_in_warehouse"]) in result.lookups  # only the ids it lacked


def test_a_reference_to_a_missing_encounter_is_quarantined(result) -> None:  # type: ignore[no-untyped-def]
    held = _held(result, "observations")
    assert "reference(encounter_id -> encounters)" in held["no_stay"]


def test_an_encounter_before_birth_is_quarantined(result) -> None:  # type: ignore[no-untyped-def]
    assert "not_before(start_at, patients.birth_date via patient_id)" in _held(result, "encounters")["unborn"]


def test_a_four_year_stay_is_quarantined(result) -> None:  # type: ignore[no-untyped-def]
    assert "duration(start_at, end_at) <= 365 days" in _held(result, "encounters")["four_years"]


def test_a_date_after_the_batch_is_implausible(result) -> None:  # type: ignore[no-untyped-def]
    held = _held(result, "encounters")
    assert "expect_column_values_to_be_between(start_at)" in held["future"]
    assert "next_month" not in held  # records may be dated up to CAREQI_FUTURE_DAYS after the month


def test_a_negative_body_weight_is_quarantined_and_a_high_heart_rate_is_not(result) -> None:  # type: ignore[no-untyped-def]
    held = _held(result, "observations")
    assert "where code == '29463-7' and value_unit == 'kg'" in held["w_neg"]
    assert "w_ok" not in held and "hr_ok" not in held


def test_clean_rows_pass(result) -> None:  # type: ignore[no-untyped-def]
    assert "ok" in set(result.valid["encounters"]["encounter_id"])
    assert set(result.valid["patients"]["patient_id"]) == {"p1", "p2"}


def test_a_reference_to_a_record_quarantined_at_extraction_resolves() -> None:
    """The Patient exists (it was delivered, just faulty): its encounters are not cascaded
    into the quarantine for a fault that is not theirs."""
    tables = {"patients": frame("patients", []), "encounters": frame("encounters", [{**ENC, "encounter_id": "e1"}])}
    early = pd.DataFrame({"table_name": ["patients"], "record_id": ["p1"]})
    result = validate_tables(tables, SUITES_DIR, extract_quarantine=early, rows_read={"patients": 1, "encounters": 1})
    assert result.quarantine.empty


def test_rows_quarantined_at_extraction_count_towards_the_fail_ratio() -> None:
    """Regression (defect 1): an Encounter.ndjson of 400 garbage lines and 10 good ones
    passed, because only rows that reached validation were counted."""
    rows = [{**ENC, "encounter_id": f"e{i}"} for i in range(10)]
    tables = {"patients": frame("patients", PATIENTS), "encounters": frame("encounters", rows)}
    early = pd.DataFrame({"table_name": ["encounters"] * 400, "record_id": [None] * 400})
    result = validate_tables(
        tables, SUITES_DIR, fail_ratio=0.25, extract_quarantine=early, rows_read={"encounters": 410, "patients": 2}
    )
    assert result.failed_tables == ["encounters"]


def test_a_missing_csv_column_is_a_failed_completeness_check() -> None:
    """Regression (defect 6): complaints without acknowledged_at turned the acknowledgement
    rate to 0% with only a log warning."""
    rows = [{"complaint_id": "k1", "facility_id": "f1", "received_at": "2026-10-02T09:00:00"}]
    result = validate_tables(
        {"complaints": frame("complaints", rows, "complaints.csv")},
        SUITES_DIR,
        missing_columns={"complaints": ["acknowledged_at"]},
    )
    check = result.checks.set_index("check").loc["column_present(acknowledged_at)"]
    assert (check["status"], check["category"], int(check["violated"])) == ("fail", "completeness", 1)
    profile = result.profiles.set_index(["table_name", "column_name"]).loc[("complaints", "acknowledged_at")]
    assert (int(profile["rows"]), int(profile["filled"])) == (1, 0)


def test_relations_are_checked_when_the_suite_is_read() -> None:
    with pytest.raises(ConfigError, match="no column"):
        parse_relations(
            [
                {
                    "check": "reference",
                    "column": "nope",
                    "table": "patients",
                    "description": "x",
                    "category": "conformance",
                }
            ],
            TABLES["encounters"],
            "encounters.json",
        )
    with pytest.raises(ConfigError, match="check must be one of"):
        parse_relations([{"check": "eval", "description": "x", "category": "conformance"}], TABLES["encounters"], "e")


def test_a_request_and_an_administration_may_share_an_id() -> None:
    """Regression (defect 12): the valid MedicationRequest was quarantined as a duplicate of
    the MedicationAdministration with the same id; a true duplicate is still caught."""
    common = {"medication_id": "same", "patient_id": "p1", "code": "854228", "effective_start": "2026-10-01"}
    rows = [
        {**common, "resource_type": "MedicationAdministration", "status": "completed"},
        {**common, "resource_type": "MedicationRequest", "status": "active", "intent": "order"},
        {**common, "resource_type": "MedicationRequest", "status": "active", "intent": "order"},
    ]
    tables = {"patients": frame("patients", PATIENTS), "medications": frame("medications", rows)}
    result = validate_tables(tables, SUITES_DIR, fail_ratio=1.0)
    assert sorted(result.valid["medications"]["resource_type"]) == ["MedicationAdministration", "MedicationRequest"]
    assert result.quarantine["source_line"].tolist() == [3]
    assert "duplicate record id: first seen at medications.ndjson:2" in result.quarantine["reasons"].iloc[0]
