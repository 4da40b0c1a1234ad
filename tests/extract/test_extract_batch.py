from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import orjson
import pandas as pd
import pytest

from pipelines.errors import ExtractError
from pipelines.extract import ExtractResult, extract_batch, extract_paths
from pipelines.tables import POA_EXTENSION, QUARANTINE, TABLES

Writer = Callable[..., Path]


def _enc(eid: str, **extra: object) -> dict:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-01-02T08:00:00+02:00", "end": "2026-01-05T23:30:00-05:00"},
        **extra,
    }


def _cond(cid: str, **extra: object) -> dict:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "399912005"}]},
        **extra,
    }


def _poa(code: str) -> dict:
    return {"url": POA_EXTENSION, "valueCodeableConcept": {"coding": [{"code": code}]}}


def _assert_balanced(result: ExtractResult) -> None:
    quarantined = result.quarantine["table_name"].value_counts().to_dict()
    for name in set(result.rows_read) | set(quarantined):
        accepted = len(result.tables[name]) if name in result.tables else 0
        assert result.rows_read.get(name, 0) == accepted + quarantined.get(name, 0), name


def test_malformed_line_is_quarantined_with_its_line_number_and_the_file_continues(
    tmp_path: Path, write_ndjson: Writer
) -> None:
    write_ndjson(
        "Encounter.ndjson",
        [_enc("e1"), '{"resourceType": "Encounter", "id": "e2"', "", _enc("e3"), "[1, 2]", _enc("e5")],
    )
    result = extract_batch(tmp_path)
    assert list(result.tables["encounters"]["encounter_id"]) == ["e1", "e3", "e5"]
    assert list(result.tables["encounters"]["source_line"]) == [1, 4, 6]
    q = result.quarantine.sort_values("source_line")
    assert list(q["source_line"]) == [2, 5]
    assert list(q["table_name"]) == ["encounters", "encounters"]
    assert q["reasons"].iloc[0].startswith("malformed JSON: ")
    assert q["payload"].isna().all()  # a raw line is never kept: it may hold a name or an address
    assert set(q["stage"]) == {"extract"} and set(q["source_file"]) == {"Encounter.ndjson"}
    assert result.rows_read["encounters"] == 5  # the blank line is not a record
    _assert_balanced(result)


def test_line_of_another_resource_type_is_quarantined_to_the_files_table(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Encounter.000.ndjson", [_enc("e1"), _cond("c1")])
    result = extract_batch(tmp_path)
    assert len(result.tables["encounters"]) == 1 and len(result.tables["conditions"]) == 0
    (row,) = result.quarantine.itertuples()
    assert (row.table_name, row.record_id, row.source_line) == ("encounters", "c1", 2)
    assert "resourceType mismatch" in row.reasons
    _assert_balanced(result)


def test_every_table_is_present_and_typed_even_when_empty(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Encounter.ndjson", [_enc("e1")])
    result = extract_batch(tmp_path)
    assert set(result.tables) == set(TABLES)
    for name, spec in TABLES.items():
        frame = result.tables[name]
        assert list(frame.columns) == spec.column_names, name
        assert {c: str(t) for c, t in frame.dtypes.items()} == spec.dtypes, name
    assert list(result.quarantine.columns) == QUARANTINE.column_names
    assert result.rows_read["observations"] == 0


def test_timezone_offsets_become_naive_utc_and_dates_midnight(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Encounter.ndjson", [_enc("e1")])
    write_ndjson("Patient.ndjson", [{"resourceType": "Patient", "id": "p1", "birthDate": "1950-02-03"}])
    result = extract_batch(tmp_path)
    enc = result.tables["encounters"].iloc[0]
    assert enc["start_at"] == pd.Timestamp("2026-01-02 06:00:00")
    assert enc["end_at"] == pd.Timestamp("2026-01-06 04:30:00")
    assert result.tables["patients"].iloc[0]["birth_date"] == pd.Timestamp("1950-02-03 00:00:00")


def test_unreadable_value_quarantines_the_row_with_the_conform_reason(tmp_path: Path, write_ndjson: Writer) -> None:
    bad = _enc("e2", period={"start": "2026-13-45T00:00:00Z"})
    write_ndjson("Encounter.ndjson", [_enc("e1"), bad])
    result = extract_batch(tmp_path, validate_sample=0)
    assert list(result.tables["encounters"]["encounter_id"]) == ["e1"]
    (row,) = result.quarantine.itertuples()
    assert (row.table_name, row.record_id, row.source_line) == ("encounters", "e2", 2)
    assert row.reasons == "unreadable datetime64[us] value in start_at"
    assert orjson.loads(row.payload)["start_at"] == "2026-13-45T00:00:00Z"
    _assert_balanced(result)


def test_poa_comes_from_encounter_diagnosis_when_the_condition_has_none(tmp_path: Path, write_ndjson: Writer) -> None:
    enc = _enc(
        "e1",
        diagnosis=[
            {"condition": {"reference": "Condition/c1"}, "extension": [_poa("N")]},
            {"condition": {"reference": "Condition/c2"}, "extension": [_poa("Y")]},
        ],
    )
    # Conditions come first in sorted file order: the fill must not depend on order.
    write_ndjson("Condition.ndjson", [_cond("c1"), _cond("c2", extension=[_poa("U")]), _cond("c3")])
    write_ndjson("Encounter.ndjson", [enc])
    result = extract_batch(tmp_path)
    poa = result.tables["conditions"].set_index("condition_id")["present_on_admission"]
    assert poa["c1"] == "N"
    assert poa["c2"] == "U"  # the Condition's own extension wins
    assert pd.isna(poa["c3"])


def test_sampled_resource_failing_fhir_r4_validation_is_quarantined(tmp_path: Path, write_ndjson: Writer) -> None:
    invalid = {"resourceType": "Encounter", "id": "bad", "class": {"code": "IMP"}}  # status is required
    write_ndjson("Encounter.ndjson", [invalid, _enc("e1"), dict(invalid, id="bad2")])
    result = extract_batch(tmp_path, validate_sample=2)
    (row,) = result.quarantine.itertuples()
    assert row.record_id == "bad" and row.reasons.startswith("FHIR R4 validation: status")
    # Beyond the sample no model validation runs: bad2 reaches validation with a null status.
    assert list(result.tables["encounters"]["encounter_id"]) == ["e1", "bad2"]
    _assert_balanced(result)


def test_structure_sample_is_a_budget_per_run_not_per_file(tmp_path: Path) -> None:
    """A folder of one-patient Bundles (a replicated test deck) is sampled like one
    NDJSON file: the first N of each type in the run, not the first N of every file."""
    invalid = {"resourceType": "Encounter", "id": "", "class": {"code": "IMP"}}  # status is required
    for k in range(6):
        entries = [
            {"resource": {"resourceType": "Patient", "id": f"p{k}"}},
            {"resource": dict(invalid, id=f"e{k}", subject={"reference": f"Patient/p{k}"})},
        ]
        (tmp_path / f"case{k}.json").write_bytes(
            orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
        )
    result = extract_batch(tmp_path, validate_sample=2)
    assert sorted(result.quarantine["record_id"]) == ["e0", "e1"]  # the run's first two Encounters only
    assert sorted(result.tables["encounters"]["encounter_id"]) == ["e2", "e3", "e4", "e5"]
    _assert_balanced(result)


def test_synthea_style_bundle_resolves_urn_uuid_and_numbers_entries(tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "gender": "male"}},
            {"fullUrl": "urn:uuid:e1", "resource": dict(_enc("e1"), subject={"reference": "urn:uuid:p1"})},
            {"fullUrl": "urn:uuid:x", "resource": {"resourceType": "Immunization", "id": "x"}},
            {"request": {"method": "DELETE", "url": "Patient/old"}},
            {
                "fullUrl": "urn:uuid:c9",
                "resource": dict(_cond("c1"), id=None, encounter={"reference": "urn:uuid:e1"}),
            },
            "junk",
        ],
    }
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "patient-1.json.gz").write_bytes(gzip.compress(orjson.dumps(bundle)))
    result = extract_batch(tmp_path)
    assert result.tables["encounters"].iloc[0]["patient_id"] == "p1"
    cond = result.tables["conditions"].iloc[0]
    assert (cond["condition_id"], cond["encounter_id"], cond["source_line"]) == ("c9", "e1", 5)
    assert result.tables["encounters"].iloc[0]["source_file"] == "sub/patient-1.json.gz"
    assert result.tables["encounters"].iloc[0]["source_line"] == 2
    assert result.ignored == {"Bundle.entry without resource": 1, "Immunization": 1}
    (bad,) = result.quarantine.itertuples()
    assert (bad.table_name, bad.source_line) == ("bundle", 6)
    assert result.rows_read["bundle"] == 1
    _assert_balanced(result)


def test_unparseable_bundle_file_is_one_bundle_quarantine_row(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"resourceType": "Bundle", "entry": [')
    (tmp_path / "single.json").write_bytes(orjson.dumps(_enc("e1")))
    result = extract_batch(tmp_path)
    (row,) = result.quarantine.itertuples()
    assert (row.table_name, row.source_file, row.source_line) == ("bundle", "broken.json", 1)
    assert row.reasons.startswith("malformed JSON")
    assert result.rows_read["bundle"] == 1
    assert list(result.tables["encounters"]["source_file"]) == ["single.json"]


def test_gzip_ndjson_is_read_and_a_fake_gzip_stops_the_batch(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Encounter.001.ndjson.gz", [_enc("e1"), _enc("e2")])
    result = extract_batch(tmp_path)
    assert list(result.tables["encounters"]["source_file"]) == ["Encounter.001.ndjson.gz"] * 2
    (tmp_path / "Condition.ndjson.gz").write_bytes(orjson.dumps(_cond("c1")))
    with pytest.raises(ExtractError, match="Condition.ndjson.gz"):
        extract_batch(tmp_path)


def test_truncated_gzip_stops_the_batch_instead_of_dropping_the_rest(tmp_path: Path) -> None:
    data = gzip.compress(b"\n".join(orjson.dumps(_enc(f"e{i}")) for i in range(200)))
    (tmp_path / "Encounter.ndjson.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ExtractError, match="cannot read gzip file"):
        extract_batch(tmp_path)


def test_missing_folder_and_unknown_ndjson_name_are_clear_errors(tmp_path: Path, write_ndjson: Writer) -> None:
    with pytest.raises(ExtractError, match="does not exist"):
        extract_batch(tmp_path / "2026-13")
    with pytest.raises(ExtractError, match="does not exist"):
        extract_paths([tmp_path / "nope.ndjson"])
    write_ndjson("encounters-export.ndjson", [_enc("e1")])
    with pytest.raises(ExtractError, match="<ResourceType>.ndjson"):
        extract_batch(tmp_path)


def test_unused_types_are_counted_and_logs_and_hidden_files_skipped(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Immunization.000.ndjson", [{"resourceType": "Immunization", "id": "i1"}, "not json", ""])
    write_ndjson("log.ndjson.gz", [{"eventId": "kickoff"}])
    write_ndjson("_partial.ndjson", ["garbage"])
    write_ndjson(".hidden/Encounter.ndjson", ["garbage"])
    write_ndjson("Encounter.ndjson", [_enc("e1")])
    result = extract_batch(tmp_path)
    assert result.ignored == {"Immunization": 2}
    assert result.quarantine.empty
    assert len(result.tables["encounters"]) == 1


def test_walk_is_recursive_sorted_and_paths_relative_to_the_root(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("b/Encounter.ndjson", [_enc("e2")])
    write_ndjson("a/Encounter.ndjson", [_enc("e1")])
    write_ndjson("Encounter.ndjson", [_enc("e0")])
    result = extract_batch(tmp_path)
    assert list(result.tables["encounters"]["source_file"]) == [
        "Encounter.ndjson",
        "a/Encounter.ndjson",
        "b/Encounter.ndjson",
    ]
    mixed = extract_paths([tmp_path / "b", tmp_path / "a" / "Encounter.ndjson"], root=tmp_path)
    assert list(mixed.tables["encounters"]["source_file"]) == ["b/Encounter.ndjson", "a/Encounter.ndjson"]


def test_rows_read_balances_across_a_mixed_batch(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Encounter.ndjson", [_enc("e1"), "{", _enc("e2", period={"end": "never"})])
    write_ndjson("Condition.ndjson", [_cond("c1"), _cond("c2"), "null"])
    (tmp_path / "b.json").write_bytes(orjson.dumps({"resourceType": "Bundle", "entry": [{"resource": 1}]}))
    (tmp_path / "complaints.csv").write_text(
        ",".join(c.name for c in TABLES["complaints"].columns)
        + "\n"
        + "k1,f1"
        + "," * (len(TABLES["complaints"].columns) - 2)
        + "\nk2,f1,extra\n"
    )
    result = extract_batch(tmp_path, validate_sample=0)
    assert result.rows_read["encounters"] == 3 and len(result.tables["encounters"]) == 1
    assert result.rows_read["conditions"] == 3 and len(result.tables["conditions"]) == 2
    assert result.rows_read["complaints"] == 2 and len(result.tables["complaints"]) == 1
    assert result.rows_read["bundle"] == 1
    _assert_balanced(result)
