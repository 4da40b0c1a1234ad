"""medication[x] in all three forms: a concept, a contained Medication, and a Medication
elsewhere in the Bundle or the NDJSON delivery, read before or after (pipelines.extract.medication)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from pipelines.extract import ExtractResult, extract_batch, extract_paths
from pipelines.extract.medication import (
    MEDICATION_ELEMENT,
    MEDICATION_RESOURCES,
    UNREADABLE_MEDICATION,
    MedicationCodes,
    MedicationConcept,
    medication_concept,
    slim_concept,
)
from pipelines.extract.references import ref_id
from tests.extract.test_extract_batch import Writer, _assert_balanced

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
ENOXAPARIN = {"coding": [{"system": RX, "code": "854235", "display": "enoxaparin"}, {"system": NDC, "code": "0069"}]}
#: What the tables must hold for ENOXAPARIN, whichever form named it.
ROW_CODE = ("854235", RX)
CODINGS = [(MEDICATION_ELEMENT, RX, "854235"), (MEDICATION_ELEMENT, NDC, "0069")]
#: The two types that have a table (medications); Dispense and Statement are read by
#: medication_concept alike but no table keeps them yet (tables.RESOURCE_TABLES).
TABLED = ("MedicationRequest", "MedicationAdministration", "MedicationDispense", "MedicationStatement")
FULL_URL = "urn:uuid:6b3f0d1e-0000-4000-8000-000000000001"


def _medication(mid: str | None = "m1", code: Any = ENOXAPARIN) -> dict:
    med = {"resourceType": "Medication", "code": code}
    return med if mid is None else {**med, "id": mid}


def _resource(rtype: str, rid: str = "r1", **medication: Any) -> dict:
    """A minimal valid R4 resource of ``rtype`` with the given medication[x]."""
    base: dict[str, Any] = {"resourceType": rtype, "id": rid, "status": "completed"}
    if rtype == "MedicationRequest":
        base |= {"intent": "order", "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-03-01T08:00:00Z"}
    elif rtype == "MedicationAdministration":
        base |= {"subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-03-01T09:00:00Z"}
    elif rtype == "MedicationStatement":
        base |= {"status": "active", "subject": {"reference": "Patient/p1"}}
    return base | medication


def _form(form: str) -> dict[str, Any]:
    """medication[x] (plus contained) of each form, all naming ENOXAPARIN / Medication m1."""
    return {
        "concept": {"medicationCodeableConcept": ENOXAPARIN},
        "contained": {"medicationReference": {"reference": "#m1"}, "contained": [_medication()]},
        "relative": {"medicationReference": {"reference": "Medication/m1"}},
        "absolute": {"medicationReference": {"reference": "https://ehr.example.org/fhir/Medication/m1"}},
        "full_url": {"medicationReference": {"reference": FULL_URL}},
    }[form]


def _bundle(path: Path, *resources: dict, full_urls: dict[str, str] | None = None) -> Path:
    urls = full_urls or {}
    entries = [{"fullUrl": urls.get(r.get("id", ""), f"urn:uuid:{r.get('id')}"), "resource": r} for r in resources]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    return path


def _code(result: ExtractResult, rtype: str, rid: str = "r1") -> tuple[Any, Any]:
    meds = result.tables["medications"]
    (row,) = meds[(meds["resource_type"] == rtype) & (meds["medication_id"] == rid)].itertuples()
    return (None if pd.isna(row.code) else row.code, None if pd.isna(row.code_system) else row.code_system)


def _med_codings(result: ExtractResult, rtype: str, rid: str = "r1") -> list[tuple[str, str, str]]:
    c = result.tables["codings"]
    sel = c[(c["record_type"] == rtype) & (c["record_id"] == rid) & (c["element"] == MEDICATION_ELEMENT)]
    return list(zip(sel["element"], sel["system"], sel["code"], strict=True))


def _coding_frame(result: ExtractResult) -> pd.DataFrame:
    cols = ["coding_id", "table_name", "record_id", "record_type", "element", "system", "code"]
    return result.tables["codings"][cols].sort_values("coding_id").reset_index(drop=True)


# ---------------------------------------------------------------- medication_concept (pure)


@pytest.mark.parametrize("rtype", sorted(MEDICATION_RESOURCES))
def test_a_concept_or_a_contained_medication_is_read_from_the_resource_itself(rtype: str) -> None:
    assert medication_concept(_resource(rtype, **_form("concept"))) == MedicationConcept(concept=ENOXAPARIN)
    assert medication_concept(_resource(rtype, **_form("contained"))) == MedicationConcept(concept=ENOXAPARIN)


@pytest.mark.parametrize("rtype", sorted(MEDICATION_RESOURCES))
@pytest.mark.parametrize("form", ["relative", "absolute", "full_url"])
def test_a_reference_elsewhere_names_the_medication_to_look_up(rtype: str, form: str) -> None:
    expected = "m1" if form != "full_url" else ref_id(FULL_URL)
    found = medication_concept(_resource(rtype, **_form(form)))
    assert (found.concept, found.target, found.dangling) == (None, expected, False)


@pytest.mark.parametrize("rtype", sorted(MEDICATION_RESOURCES))
@pytest.mark.parametrize(
    "medication",
    [
        {"medicationReference": {"reference": "#m1"}},  # no contained resources at all
        {"medicationReference": {"reference": "#m2"}, "contained": [_medication()]},  # another id
        {"medicationReference": {"reference": "#m1"}, "contained": [{"resourceType": "Substance", "id": "m1"}]},
        {"medicationReference": {"display": "enoxaparin 40 mg"}},  # a label, no link
        {"medicationReference": {"reference": ""}},
    ],
    ids=["no_contained", "other_id", "not_a_medication", "display_only", "blank"],
)
def test_a_reference_that_names_nothing_is_dangling(rtype: str, medication: dict) -> None:
    found = medication_concept(_resource(rtype, **medication))
    assert (found.concept, found.target, found.dangling) == (None, None, True)


@pytest.mark.parametrize("rtype", sorted(MEDICATION_RESOURCES))
def test_no_medication_at_all_is_empty_and_a_concept_wins_over_a_reference(rtype: str) -> None:
    assert medication_concept(_resource(rtype)) == MedicationConcept()
    both = _resource(rtype, **_form("concept"), **_form("relative"))
    assert medication_concept(both) == MedicationConcept(concept=ENOXAPARIN)


@pytest.mark.parametrize(
    "code",
    [
        ENOXAPARIN,
        {"coding": ["junk", {"system": RX, "code": "1"}]},  # coding[0] is not an object
        {"system": RX, "code": "2"},  # a bare Coding
        [{"coding": [{"code": "3"}]}, {"coding": [{"code": "4"}]}],  # a list of concepts
        {"coding": {"system": RX, "code": "5"}},  # one Coding where the list belongs
        {"text": "no codes"},
        None,
    ],
)
def test_the_slim_code_reads_exactly_like_the_medications_own_code(tmp_path: Path, code: Any) -> None:
    """A Medication kept only as its slim code fills the tables as the full one would."""
    contained = _resource("MedicationRequest", **_form("contained"))
    contained["contained"] = [_medication(code=code)]
    referenced = _resource("MedicationRequest", "r2", **_form("relative"))
    _bundle(tmp_path / "a.json", contained, referenced, _medication(code=code))
    result = extract_batch(tmp_path, validate_sample=0)
    assert _code(result, "MedicationRequest", "r1") == _code(result, "MedicationRequest", "r2")
    assert _med_codings(result, "MedicationRequest", "r1") == _med_codings(result, "MedicationRequest", "r2")
    assert orjson.dumps(slim_concept(code)).count(b"display") == 0  # only system and code are kept


def test_medication_codes_keep_only_system_and_code_per_scope() -> None:
    index = MedicationCodes()
    index.add(_medication("m1"), bundle="a.json", full_url=FULL_URL)
    index.add(_medication("m1", {"coding": [{"code": "other"}]}), bundle="a.json")  # same key: first wins
    index.add(_medication("m9", None))
    slim = {"coding": [{"system": RX, "code": "854235"}, {"system": NDC, "code": "0069"}]}
    assert index.find("m1", "a.json") == (True, slim)
    assert index.find(ref_id(FULL_URL), "a.json") == (True, slim)  # by fullUrl too
    assert index.find("m1", "b.json") == (False, None)  # another Bundle's Medication
    assert index.find("m1") == (False, None)
    assert index.find("m9", "a.json") == (True, None)  # a Bundle also sees the delivery; m9 has no code


# ---------------------------------------------------------------- Bundles


@pytest.mark.parametrize("rtype", TABLED)
@pytest.mark.parametrize("form", ["contained", "relative", "absolute", "full_url"])
@pytest.mark.parametrize("medication_first", [True, False], ids=["medication_first", "medication_after"])
def test_every_form_in_a_bundle_fills_the_code_and_codings_like_a_concept(
    tmp_path: Path, rtype: str, form: str, medication_first: bool
) -> None:
    concept = extract_batch(_bundle(tmp_path / "concept" / "case.json", _resource(rtype, **_form("concept"))).parent)
    record = _resource(rtype, **_form(form))
    entries = [_medication(), record] if medication_first else [record, _medication()]
    folder = tmp_path / "form"
    _bundle(folder / "case.json", *entries, full_urls={"m1": FULL_URL})
    result = extract_batch(folder)
    assert result.quarantine.empty, result.quarantine[["reasons"]].to_string()
    assert _code(result, rtype) == ROW_CODE
    assert _med_codings(result, rtype) == CODINGS
    # Same coding rows (ids included) as the concept form: value sets cannot tell them apart.
    pd.testing.assert_frame_equal(_coding_frame(result), _coding_frame(concept))
    assert result.ignored == {"Medication": 1}
    _assert_balanced(result)


def test_a_bundle_entry_without_id_is_found_by_its_full_url(tmp_path: Path) -> None:
    record = _resource("MedicationAdministration", **_form("full_url"))
    _bundle(tmp_path / "case.json", record)
    doc = orjson.loads((tmp_path / "case.json").read_bytes())
    doc["entry"].append({"fullUrl": FULL_URL, "resource": _medication(None)})
    (tmp_path / "case.json").write_bytes(orjson.dumps(doc))
    assert _code(extract_batch(tmp_path), "MedicationAdministration") == ROW_CODE


def test_a_reference_resolves_in_its_own_bundle_first(tmp_path: Path) -> None:
    # MADiE decks reuse ids across case Bundles: each case must see its own Medication.
    other = {"coding": [{"system": RX, "code": "1111"}]}
    _bundle(tmp_path / "a.json", _resource("MedicationRequest", "ra", **_form("relative")), _medication())
    _bundle(tmp_path / "b.json", _medication(code=other), _resource("MedicationRequest", "rb", **_form("relative")))
    result = extract_batch(tmp_path)
    assert _code(result, "MedicationRequest", "ra") == ROW_CODE
    assert _code(result, "MedicationRequest", "rb") == ("1111", RX)
    assert result.ignored == {"Medication": 2}


def test_a_bundle_sees_medications_delivered_as_ndjson_but_not_the_reverse(
    tmp_path: Path, write_ndjson: Writer
) -> None:
    write_ndjson("Medication.ndjson", [_medication("m-ndjson")])
    _bundle(tmp_path / "case.json", _medication("m-bundle"))
    _bundle(
        tmp_path / "case2.json",
        _resource("MedicationRequest", "r-bundle", medicationReference={"reference": "Medication/m-ndjson"}),
    )
    write_ndjson(
        "MedicationRequest.ndjson",
        [_resource("MedicationRequest", "r-ndjson", medicationReference={"reference": "Medication/m-bundle"})],
    )
    result = extract_batch(tmp_path)
    assert _code(result, "MedicationRequest", "r-bundle") == ROW_CODE
    assert "r-ndjson" not in set(result.tables["medications"]["medication_id"])
    assert result.quarantine["record_id"].tolist() == ["r-ndjson"]
    assert result.quarantine["reasons"].iloc[0] == (
        "medicationReference Medication/m-bundle names no Medication in this delivery"
    )


# ---------------------------------------------------------------- NDJSON


@pytest.mark.parametrize("rtype", TABLED)
@pytest.mark.parametrize("form", ["concept", "contained", "relative", "absolute"])
@pytest.mark.parametrize("medication_first", [True, False], ids=["medication_file_first", "medication_file_after"])
def test_every_form_in_ndjson_fills_the_code_whichever_file_is_read_first(
    tmp_path: Path, write_ndjson: Writer, rtype: str, form: str, medication_first: bool
) -> None:
    records = write_ndjson(f"{rtype}.ndjson", [_resource(rtype, **_form(form))])
    medications = write_ndjson("Medication.ndjson", [_medication(), _medication("m2")])
    files = [medications, records] if medication_first else [records, medications]
    result = extract_paths(files, root=tmp_path)
    assert result.quarantine.empty, result.quarantine[["reasons"]].to_string()
    assert _code(result, rtype) == ROW_CODE
    assert _med_codings(result, rtype) == CODINGS
    assert result.ignored == {"Medication": 2}
    assert result.rows_read["codings"] == len(result.tables["codings"]) == 2
    _assert_balanced(result)


def test_a_delivery_folder_reads_a_medication_file_in_a_later_subfolder(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("MedicationRequest.ndjson", [_resource("MedicationRequest", **_form("relative"))])
    write_ndjson("zz/Medication.ndjson.gz", [_medication()])  # walked after the top folder
    result = extract_batch(tmp_path)
    assert _code(result, "MedicationRequest") == ROW_CODE


def test_a_record_quarantined_when_conformed_takes_its_resolved_codings_with_it(
    tmp_path: Path, write_ndjson: Writer
) -> None:
    bad = _resource("MedicationRequest", "bad", authoredOn="2026-13-45", **_form("relative"))
    write_ndjson("MedicationRequest.ndjson", [bad, _resource("MedicationRequest", "ok", **_form("relative"))])
    write_ndjson("Medication.ndjson", [_medication()])
    result = extract_batch(tmp_path, validate_sample=0)
    assert result.quarantine["record_id"].tolist() == ["bad"]
    assert _med_codings(result, "MedicationRequest", "ok") == CODINGS
    assert set(result.tables["codings"]["record_id"]) == {"ok"}
    _assert_balanced(result)


# ---------------------------------------------------------------- unresolved and accounting


@pytest.mark.parametrize("rtype", TABLED)
@pytest.mark.parametrize(
    "medication",
    [
        {"medicationReference": {"reference": "Medication/not-delivered"}},
        {"medicationReference": {"reference": "#gone"}},
        {"medicationReference": {"display": "enoxaparin"}},
    ],
    ids=["not_delivered", "dangling_contained", "display_only"],
)
def test_an_unresolved_reference_quarantines_the_record_naming_the_reference(
    tmp_path: Path, write_ndjson: Writer, caplog: pytest.LogCaptureFixture, rtype: str, medication: dict
) -> None:
    """Nobody can tell which drug it was: the record is quarantined (never dropped, never
    accepted with a silently empty code), its reason naming what was sent."""
    write_ndjson(f"{rtype}.ndjson", [_resource(rtype, **medication)])
    write_ndjson("Medication.ndjson", [_medication()])
    with caplog.at_level(logging.WARNING, logger="pipelines.extract.batch"):
        result = extract_batch(tmp_path)
    assert result.tables["medications"].empty
    assert _med_codings(result, rtype) == []
    assert result.rows_read["medications"] == 1 and result.quarantine["table_name"].tolist() == ["medications"]
    reason = result.quarantine["reasons"].iloc[0]
    sent = medication["medicationReference"].get("reference")
    assert reason.startswith("medicationReference") and (sent is None or sent in reason)
    assert result.ignored == {"Medication": 1}
    assert "1 medication record(s) name a Medication that is not in the delivery" in caplog.text
    _assert_balanced(result)


def test_a_resolved_medication_without_a_code_is_not_unresolved(tmp_path: Path) -> None:
    # The official R4 bundle-example: MedicationRequest -> Medication/example, which has no code.
    _bundle(tmp_path / "b.json", _resource("MedicationRequest", **_form("relative")), _medication(code=None))
    result = extract_batch(tmp_path)
    assert _code(result, "MedicationRequest") == (None, None)
    assert result.ignored == {"Medication": 1}


def test_medications_are_counted_as_ignored_and_unreadable_lines_are_counted_apart(
    tmp_path: Path, write_ndjson: Writer, caplog: pytest.LogCaptureFixture
) -> None:
    write_ndjson("Medication.ndjson", [_medication(), "{not json", {"resourceType": "Patient", "id": "p1"}, "7", ""])
    write_ndjson("Immunization.ndjson", [{"resourceType": "Immunization", "id": "i1"}])
    _bundle(tmp_path / "b.json", _medication("m2"), _medication("m3"))
    with caplog.at_level(logging.WARNING):
        result = extract_batch(tmp_path)
    # Every non-blank line and entry is in exactly one bucket; none is a table's record.
    assert result.ignored == {"Medication": 3, UNREADABLE_MEDICATION: 3, "Immunization": 1}
    assert result.quarantine.empty
    assert "Medication.ndjson line 2 is not a readable Medication" in caplog.text
    # A Patient in a Medication file leaves nothing about the patient behind.
    assert result.tables["patients"].empty


def test_the_codings_of_one_medication_serve_every_record_that_names_it(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson(
        "MedicationAdministration.ndjson",
        [_resource("MedicationAdministration", f"a{n}", **_form("relative")) for n in range(3)],
    )
    write_ndjson("MedicationRequest.ndjson", [_resource("MedicationRequest", "a0", **_form("relative"))])
    write_ndjson("Medication.ndjson", [_medication()])
    result = extract_batch(tmp_path)
    codings = result.tables["codings"]
    assert len(codings) == 4 * len(CODINGS)
    assert codings["coding_id"].is_unique  # record_type is part of the id (ids are unique per type only)
    assert _med_codings(result, "MedicationRequest", "a0") == CODINGS
    _assert_balanced(result)


# ---------------------------------------------------------------- dispense and statement rows


def test_a_dispense_is_dated_when_handed_over_and_a_statement_by_its_effective_period(tmp_path: Path) -> None:
    dispense = _resource(
        "MedicationDispense",
        "d1",
        subject={"reference": "Patient/p1"},
        context={"reference": "Encounter/e1"},
        whenPrepared="2026-03-01T07:00:00Z",
        whenHandedOver="2026-03-01T08:30:00Z",
        dosageInstruction=[{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "34206005"}]}}],
        **_form("relative"),
    )
    statement = _resource(
        "MedicationStatement",
        "s1",
        context={"reference": "Encounter/e1"},
        effectivePeriod={"start": "2026-02-20", "end": "2026-03-02"},
        dateAsserted="2026-03-01T10:00:00Z",
        **_form("contained"),
    )
    _bundle(tmp_path / "b.json", dispense, statement, _medication())
    result = extract_batch(tmp_path)
    meds = result.tables["medications"].set_index("medication_id")
    assert meds.loc["d1", "resource_type"] == "MedicationDispense" and meds.loc["d1", "encounter_id"] == "e1"
    assert meds.loc["d1", "effective_start"] == pd.Timestamp("2026-03-01 08:30")
    assert meds.loc["d1", "route_code"] == "34206005"
    assert meds.loc["s1", "effective_start"] == pd.Timestamp("2026-02-20")
    assert meds.loc["s1", "effective_end"] == pd.Timestamp("2026-03-02")
    assert meds.loc["s1", "recorded_at"] == pd.Timestamp("2026-03-01 10:00")
    assert _code(result, "MedicationDispense", "d1") == _code(result, "MedicationStatement", "s1") == ROW_CODE
    assert result.quarantine.empty and result.ignored == {"Medication": 1}
