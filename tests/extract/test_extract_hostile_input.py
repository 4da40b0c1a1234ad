"""Regression tests for hostile or careless input at extraction (issue 11): each test is
named for the class of input it pins, and fails on the code before the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pandas as pd

from pipelines.extract import extract_batch
from pipelines.localtime import TimeZones
from pipelines.tables import REPLACEMENT, TABLES, conform

Writer = Callable[..., Path]

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [{"system": "https://hospital.example/mrn", "value": "MRN-004711"}],
    "name": [{"family": "Lovelace", "given": ["Ada"]}],
    "telecom": [{"system": "phone", "value": "+44 20 7946 0018"}],
    "address": [{"line": ["12 Acacia Avenue"], "city": "London", "postalCode": "N1 9GU"}],
    "gender": "female",
    "birthDate": "1950-04-01",
}
IDENTIFYING = ("Lovelace", "Ada", "MRN-004711", "7946", "Acacia", "N1 9GU")


def _enc(eid: str, start: str, end: str | None = None, **extra: object) -> dict:
    period = {"start": start} if end is None else {"start": start, "end": end}
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "period": period,
        **extra,
    }


def _quarantine_text(result) -> str:  # type: ignore[no-untyped-def]
    return " ".join(result.quarantine.astype("string").fillna("").to_numpy().ravel().tolist())


def test_a_byte_order_mark_does_not_reject_the_line(tmp_path: Path) -> None:
    """Regression (defect 8): a Patient line starting with a UTF-8 BOM was rejected, and its
    raw JSON (name, MRN, phone, address) stored in the quarantine."""
    lines = b"\xef\xbb\xbf" + orjson.dumps(PATIENT) + b"\n" + b"\xef\xbb\xbf" + orjson.dumps({**PATIENT, "id": "p2"})
    (tmp_path / "Patient.ndjson").write_bytes(lines + b"\n")
    result = extract_batch(tmp_path)
    assert result.quarantine.empty
    assert result.tables["patients"]["patient_id"].tolist() == ["p1", "p2"]


def test_a_rejected_patient_leaves_no_personal_data_in_the_quarantine(tmp_path: Path, write_ndjson: Writer) -> None:
    """Regression (defect 8): only the location, the reason and the fields the project may
    hold are kept, never the raw text of a resource."""
    write_ndjson(
        "Patient.ndjson",
        [
            {**PATIENT, "gender": ["not", "a", "code"]},  # fails FHIR validation
            {**PATIENT, "id": "p3", "resourceType": "Practitioner"},  # wrong type in the file
            orjson.dumps(PATIENT).decode()[:-20],  # truncated line: malformed JSON
            {**PATIENT, "id": "p4", "birthDate": 19500401},  # an integer where a date belongs
        ],
    )
    result = extract_batch(tmp_path)
    assert len(result.quarantine) == 4
    text = _quarantine_text(result)
    for value in IDENTIFYING:
        assert value not in text, value
    assert set(result.quarantine["source_line"]) == {1, 2, 3, 4}
    assert result.quarantine["reasons"].str.len().gt(0).all()


def test_an_integer_or_non_fhir_date_is_unreadable_not_1970(tmp_path: Path, write_ndjson: Writer) -> None:
    """Regression (defect 9): ``"start": 20261010`` was stored as 1970-01-01."""
    write_ndjson(
        "Encounter.ndjson",
        [
            _enc("e1", "2026-10-10T08:00:00+00:00"),
            {**_enc("e2", "x"), "period": {"start": 20261010}},
            _enc("e3", "20261010"),
            _enc("e4", "10/10/2026"),
        ],
    )
    result = extract_batch(tmp_path)
    assert result.tables["encounters"]["encounter_id"].tolist() == ["e1"]
    assert sorted(result.quarantine["record_id"]) == ["e2", "e3", "e4"]
    # Past the structural-validation sample, the table contract itself refuses them.
    typed, failures = conform(
        pd.DataFrame({"encounter_id": ["a", "b", "c", "d"], "start_at": [20261010, "20261010", "10/10/2026", "2026"]}),
        TABLES["encounters"],
    )
    assert failures.tolist()[:3] == ["unreadable datetime64[us] value in start_at"] * 3
    assert typed["start_at"].isna().tolist() == [True, True, True, False]


def test_an_empty_string_id_is_no_id(tmp_path: Path, write_ndjson: Writer) -> None:
    """Regression (defect 9): an empty-string id was counted as a record in four indicators.
    It becomes a missing id, which validation quarantines."""
    write_ndjson("Encounter.ndjson", [_enc("", "2026-10-10T08:00:00+00:00"), _enc("  ", "2026-10-11T08:00:00Z")])
    result = extract_batch(tmp_path)
    assert result.tables["encounters"]["encounter_id"].isna().all()


def test_control_characters_are_replaced_the_same_for_every_backend(tmp_path: Path, write_ndjson: Writer) -> None:
    """Regression (defect 4): a NUL (``\\u0000`` in a JSON string) failed the whole month on
    PostgreSQL; it now becomes U+FFFD before any backend sees it."""
    write_ndjson(
        "Encounter.ndjson", [_enc("e1", "2026-10-10T08:00:00Z", serviceType={"coding": [{"code": "a\u0000b"}]})]
    )
    (tmp_path / "complaints.csv").write_bytes(b"complaint_id,facility_id,category\nk1,f1,rude\x00staff\x07\n")
    result = extract_batch(tmp_path)
    assert result.tables["encounters"]["service"].tolist() == [f"a{REPLACEMENT}b"]
    assert result.tables["complaints"]["category"].tolist() == [f"rude{REPLACEMENT}staff{REPLACEMENT}"]


def test_one_oversized_or_non_utf8_csv_row_is_quarantined_and_the_file_goes_on(tmp_path: Path) -> None:
    """Regression (defect 10): a comment over 131,072 characters, or one non-UTF-8 byte,
    failed the whole batch."""
    header = b"response_id,facility_id,completed_on,comment\n"
    rows = [
        b"r1,f1,2026-10-05,fine\n",
        b"r2,f1,2026-10-05," + b"x" * 2_000_000 + b"\n",
        b"r3,f1,2026-10-05,caf\xe9 au lait\n",
        b"r4,f1,2026-10-06,also fine\n",
    ]
    (tmp_path / "survey_responses.csv").write_bytes(header + b"".join(rows))
    result = extract_batch(tmp_path)
    assert result.tables["survey_responses"]["response_id"].tolist() == ["r1", "r4"]
    q = result.quarantine.sort_values("source_line")
    assert q["source_line"].tolist() == [2, 3]
    assert "field larger than field limit" in q["reasons"].iloc[0]
    assert "not UTF-8 text in comment" in q["reasons"].iloc[1]
    assert result.rows_read["survey_responses"] == 4


def test_resources_of_two_types_may_share_an_id(tmp_path: Path, write_ndjson: Writer) -> None:
    """Regression (defect 12): a MedicationRequest with the id of a MedicationAdministration
    (legal in FHIR: ids are unique per type) was quarantined as a duplicate."""
    med = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "854228"}]}
    common = {"id": "same", "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": med}
    write_ndjson(
        "MedicationAdministration.ndjson",
        [
            {
                "resourceType": "MedicationAdministration",
                "status": "completed",
                "effectiveDateTime": "2026-10-01",
                **common,
            }
        ],
    )
    write_ndjson(
        "MedicationRequest.ndjson",
        [{"resourceType": "MedicationRequest", "status": "active", "intent": "order", **common}],
    )
    result = extract_batch(tmp_path)
    meds = result.tables["medications"]
    assert sorted(meds["resource_type"]) == ["MedicationAdministration", "MedicationRequest"]
    codings = result.tables["codings"]
    assert codings["coding_id"].is_unique
    assert sorted(codings["record_type"].dropna()) == ["MedicationAdministration", "MedicationRequest"]


def test_the_facilitys_local_day_decides_the_month(tmp_path: Path, write_ndjson: Writer) -> None:
    """Regression (defect 13): timestamps were converted to UTC before the month was
    decided, so 00:15 on 1 October in London (+01:00) counted in September."""
    london = {"serviceProvider": {"reference": "Organization/london"}}
    write_ndjson(
        "Encounter.ndjson",
        [
            _enc("offset", "2026-10-01T00:15:00+01:00", **london),
            _enc("utc", "2026-09-30T23:15:00Z", **london),  # the same instant written in UTC
            _enc("elsewhere", "2026-10-01T00:15:00+01:00", serviceProvider={"reference": "Organization/ny"}),
        ],
    )
    # A CSV timestamp without an offset is the facility's wall-clock time, as written.
    (tmp_path / "complaints.csv").write_bytes(b"complaint_id,facility_id,received_at\nk1,london,2026-10-01 00:15\n")
    zones = TimeZones(default="UTC", facilities={"london": "Europe/London", "ny": "America/New_York"})
    result = extract_batch(tmp_path, timezones=zones)
    starts = result.tables["encounters"].set_index("encounter_id")["start_at"]
    assert starts["offset"] == starts["utc"] == pd.Timestamp("2026-10-01 00:15")
    assert starts["elsewhere"] == pd.Timestamp("2026-09-30 19:15")
    assert result.tables["complaints"]["received_at"].tolist() == [pd.Timestamp("2026-10-01 00:15")]
    # Without a configured zone the system's (UTC) decides, as before.
    utc = extract_batch(tmp_path).tables["encounters"].set_index("encounter_id")["start_at"]
    assert utc["offset"] == pd.Timestamp("2026-09-30 23:15")


def test_records_linked_to_an_encounter_follow_its_facilitys_clock(tmp_path: Path, write_ndjson: Writer) -> None:
    london = {"serviceProvider": {"reference": "Organization/london"}}
    write_ndjson("Encounter.ndjson", [_enc("e1", "2026-09-30T22:00:00Z", **london)])
    write_ndjson(
        "Observation.ndjson",
        [
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": "Patient/p1"},
                "encounter": {"reference": "Encounter/e1"},
                "effectiveDateTime": "2026-09-30T23:30:00Z",
            }
        ],
    )
    zones = TimeZones(default="UTC", facilities={"london": "Europe/London"})
    result = extract_batch(tmp_path, timezones=zones)
    assert result.tables["observations"]["effective_at"].tolist() == [pd.Timestamp("2026-10-01 00:30")]
