from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.errors import ConfigError, ValidationFailed
from pipelines.tables import QUARANTINE, TABLES, VALIDATION_CHECKS, empty_frame
from pipelines.validate import ValidationResult, load_suites, validate_tables
from pipelines.validate.suites import suite_relations
from tests.validate.helpers import SUITES_DIR, frame

ENC = {
    "patient_id": "p1",
    "status": "finished",
    "class_code": "IMP",
    "priority": "EL",
    "start_at": "2026-10-01T08:00:00Z",
    "end_at": "2026-10-03T10:00:00Z",
    "facility_id": "f1",
}
SURVEY = {
    "facility_id": "f1",
    "mode": "web",
    "completed_on": "2026-10-05",
    "recommend": 4,
    "overall_rating": 9,
    "q_reliability": 5,
    "q_responsiveness": 4,
    "q_assurance": 3,
    "q_empathy": 2,
    "q_tangibles": 1,
}
COMPLAINT = {
    "facility_id": "f1",
    "channel": "email",
    "category": "waiting_times",
    "severity": "low",
    "received_at": "2026-10-02T09:00:00Z",
    "acknowledged_at": "2026-10-03T09:00:00Z",
    "resolved_at": "2026-10-20T09:00:00Z",
    "outcome": "partly_upheld",
    "status": "resolved",
}

# line -> row. Lines 1, 2, 9, 10 are clean (9 and 10 lack optional values).
ENCOUNTERS = [
    {**ENC, "encounter_id": "e1"},
    {**ENC, "encounter_id": "e2", "class_code": "AMB", "priority": None},
    {**ENC, "encounter_id": None},  # null key
    {**ENC, "encounter_id": "e4", "patient_id": None},  # null required column
    {**ENC, "encounter_id": "e5", "status": "done"},  # unknown code
    {**ENC, "encounter_id": "e6", "end_at": "2026-09-30T08:00:00Z"},  # ends before it starts
    {**ENC, "encounter_id": "e1", "patient_id": "p9"},  # duplicate of line 1
    {**ENC, "encounter_id": "e8", "patient_id": None, "class_code": "XYZ", "start_at": "1850-01-01"},
    {**ENC, "encounter_id": "e9", "status": None, "class_code": None, "priority": None, "end_at": None},
    {**ENC, "encounter_id": "e10", "start_at": "2099-12-31T00:00:00Z", "end_at": None},
]
SURVEYS = [
    {**SURVEY, "response_id": "r1"},
    {**SURVEY, "response_id": "r2", "q_empathy": 6},  # out-of-range Likert
    {**SURVEY, "response_id": "r3", "recommend": 0, "overall_rating": 11},
    {"response_id": "r4", "facility_id": "f2", "completed_on": "2026-10-06"},  # nothing answered: fine
]
COMPLAINTS = [
    {**COMPLAINT, "complaint_id": "c1"},
    {**COMPLAINT, "complaint_id": "c2", "acknowledged_at": "2026-10-01T09:00:00Z"},  # before receipt
    {**COMPLAINT, "complaint_id": "c3", "acknowledged_at": None, "resolved_at": None, "status": "open"},
]


ENCLOSED = {"encounters", "survey_responses", "complaints", "patients"}


@pytest.fixture(scope="module")
def inputs() -> dict[str, pd.DataFrame]:
    return {
        "encounters": frame("encounters", ENCOUNTERS, "Encounter.ndjson"),
        "survey_responses": frame("survey_responses", SURVEYS, "survey_responses.csv"),
        "complaints": frame("complaints", COMPLAINTS, "complaints.csv"),
        # The patients the encounters name: references must resolve within the delivery.
        "patients": frame("patients", [{"patient_id": "p1"}, {"patient_id": "p9"}], "Patient.ndjson"),
    }


@pytest.fixture(scope="module")
def result(inputs: dict[str, pd.DataFrame]) -> ValidationResult:
    return validate_tables(inputs, SUITES_DIR, fail_ratio=0.9)


def reasons_by_line(result: ValidationResult, table: str) -> dict[int, list[str]]:
    q = result.quarantine[result.quarantine["table_name"] == table]
    return {int(line): r.split("; ") for line, r in zip(q["source_line"], q["reasons"], strict=True)}


def test_each_defect_gives_one_quarantine_row_naming_its_check(result: ValidationResult) -> None:
    got = reasons_by_line(result, "encounters")
    assert sorted(got) == [3, 4, 5, 6, 7, 8]
    assert got[3] == ["expect_column_values_to_not_be_null(encounter_id): Every record has a record id (encounter_id)."]
    assert len(got[4]) == 1 and got[4][0].startswith("expect_column_values_to_not_be_null(patient_id): ")
    assert len(got[5]) == 1 and got[5][0].startswith("expect_column_values_to_be_in_set(status): ")
    assert len(got[6]) == 1
    assert got[6][0].startswith("expect_column_pair_values_a_to_be_greater_than_b(end_at, start_at): ")
    assert got[7] == [
        "expect_column_values_to_be_unique(encounter_id): duplicate record id: first seen at Encounter.ndjson:1"
    ]


def test_row_failing_several_checks_lists_every_reason_in_suite_order(result: ValidationResult) -> None:
    checks = [r.split(":")[0] for r in reasons_by_line(result, "encounters")[8]]
    assert checks == [
        "expect_column_values_to_not_be_null(patient_id)",
        "expect_column_values_to_be_in_set(class_code)",
        "expect_column_values_to_be_between(start_at)",
        "duration(start_at, end_at) <= 365 days",  # 1850 to 2026: an implausible stay too
    ]


def test_likert_and_rating_out_of_range_are_quarantined(result: ValidationResult) -> None:
    got = reasons_by_line(result, "survey_responses")
    assert sorted(got) == [2, 3]
    assert [r.split(":")[0] for r in got[2]] == ["expect_column_values_to_be_between(q_empathy)"]
    assert [r.split(":")[0] for r in got[3]] == [
        "expect_column_values_to_be_between(recommend)",
        "expect_column_values_to_be_between(overall_rating)",
    ]


def test_complaint_acknowledged_before_receipt_is_quarantined(result: ValidationResult) -> None:
    got = reasons_by_line(result, "complaints")
    assert list(got) == [2]
    assert got[2][0].startswith("expect_column_pair_values_a_to_be_greater_than_b(acknowledged_at, received_at)")


def test_clean_rows_pass_untouched_with_dtypes(inputs: dict[str, pd.DataFrame], result: ValidationResult) -> None:
    for table, clean_lines in [
        ("encounters", [1, 2, 9, 10]),
        ("survey_responses", [1, 4]),
        ("complaints", [1, 3]),
    ]:
        df = inputs[table]
        expected = df[df["source_line"].isin(clean_lines)].reset_index(drop=True)
        pd.testing.assert_frame_equal(result.valid[table], expected)
    pd.testing.assert_frame_equal(result.valid["patients"], inputs["patients"])


def test_quarantine_rows_carry_key_provenance_and_payload(result: ValidationResult) -> None:
    q = result.quarantine
    assert list(q.columns) == QUARANTINE.column_names
    assert q.dtypes.astype(str).to_dict() == {k: str(pd.Series(dtype=v).dtype) for k, v in QUARANTINE.dtypes.items()}
    assert (q["stage"] == "validate").all()
    enc = q[q["table_name"] == "encounters"].set_index("source_line")
    assert pd.isna(enc.loc[3, "record_id"])
    assert enc.loc[7, "record_id"] == "e1"
    assert (enc["source_file"] == "Encounter.ndjson").all()
    payload = json.loads(enc.loc[7, "payload"])
    assert payload["patient_id"] == "p9" and payload["source_line"] == 7
    assert payload["start_at"].startswith("2026-10-01T08:00:00")


def test_checks_table_has_one_row_per_expectation_with_counts(result: ValidationResult) -> None:
    checks = result.checks
    assert list(checks.columns) == VALIDATION_CHECKS.column_names
    suites = load_suites(SUITES_DIR)
    for table in ["encounters", "survey_responses", "complaints", "patients"]:
        # every expectation, plus the cross-row checks whose target tables are delivered
        relations = [r for r in suite_relations(suites[table], table) if not r.table or r.table in ENCLOSED]
        assert (checks["table_name"] == table).sum() == len(suites[table].expectations) + len(relations)
    enc = checks[checks["table_name"] == "encounters"].set_index("check")
    assert enc.loc["expect_column_values_to_not_be_null(patient_id)", "violated"] == 2
    assert enc.loc["expect_column_values_to_be_unique(encounter_id)", "violated"] == 1  # later copy only
    assert enc.loc["expect_column_values_to_be_unique(encounter_id)", "category"] == "uniqueness"
    assert enc.loc["expect_column_values_to_be_in_set(priority)", "status"] == "pass"
    assert (enc["denominator"] == len(ENCOUNTERS)).all()
    assert enc.loc["expect_column_values_to_be_in_set(status)", "pct"] == pytest.approx(10.0)
    assert set(checks.loc[checks["table_name"] == "patients", "status"]) == {"pass"}


def test_failed_tables_lists_tables_above_fail_ratio(inputs: dict[str, pd.DataFrame]) -> None:
    tables = {"survey_responses": inputs["survey_responses"], "complaints": inputs["complaints"]}
    # surveys: 2 of 4 quarantined (50 %), complaints: 1 of 3 (33 %)
    assert validate_tables(tables, SUITES_DIR, fail_ratio=0.4).failed_tables == ["survey_responses"]
    assert validate_tables(tables, SUITES_DIR, fail_ratio=0.5).failed_tables == []


def test_timestamps_beyond_nanosecond_range_are_quarantined_not_crashing() -> None:
    df = frame("complaints", [{**COMPLAINT, "complaint_id": "c1"}])
    df.loc[0, "resolved_at"] = pd.Timestamp("2999-01-01")  # representable in datetime64[us] only
    df.loc[0, "acknowledged_at"] = pd.Timestamp("1500-01-01")
    result = validate_tables({"complaints": df}, SUITES_DIR)
    checks = [r.split(":")[0] for r in result.quarantine["reasons"].iloc[0].split("; ")]
    assert checks == [
        "expect_column_values_to_be_between(acknowledged_at)",
        "expect_column_values_to_be_between(resolved_at)",
        "expect_column_pair_values_a_to_be_greater_than_b(acknowledged_at, received_at)",
    ]
    assert result.failed_tables == ["complaints"]


def test_payload_is_truncated_to_2000_characters() -> None:
    df = frame("survey_responses", [{**SURVEY, "response_id": "r1", "q_tangibles": 0, "comment": "x" * 5000}])
    q = validate_tables({"survey_responses": df}, SUITES_DIR).quarantine
    assert len(q["payload"].iloc[0]) == 2000


def test_missing_and_empty_tables_are_fine() -> None:
    result = validate_tables({}, SUITES_DIR)
    assert result.valid == {} and result.quarantine.empty and result.checks.empty
    assert list(result.quarantine.columns) == QUARANTINE.column_names


def test_table_without_suite_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no expectation suite encounters.json"):
        validate_tables({"encounters": empty_frame(TABLES["encounters"])}, tmp_path)


def test_frame_missing_a_checked_column_is_a_clear_error() -> None:
    df = frame("complaints", [{**COMPLAINT, "complaint_id": "c1"}]).drop(columns=["severity"])
    with pytest.raises(ValidationFailed, match=r"lacks column\(s\) \['severity'\]"):
        validate_tables({"complaints": df}, SUITES_DIR)
