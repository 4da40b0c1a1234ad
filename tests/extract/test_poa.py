"""Present on admission: each source, precedence, odd codes, and the cross-resource fill
(pipelines.extract.poa)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from pipelines.extract import ExtractResult, extract_batch, extract_paths
from pipelines.extract.poa import (
    CLAIM_DIAGNOSIS,
    CONDITION,
    ENCOUNTER_DIAGNOSIS,
    StayPoa,
    encounter_diagnosis_poa,
    present_on_admission,
)
from pipelines.tables import POA_EXTENSION, POA_SYSTEM
from tests.extract.test_extract_batch import Writer, _assert_balanced, _cond, _enc


def _poa(code: Any) -> dict:
    return {"url": POA_EXTENSION, "valueCodeableConcept": {"coding": [{"system": POA_SYSTEM, "code": code}]}}


def _diag(condition: str, *extensions: dict) -> dict:
    return {"condition": {"reference": condition}, "extension": list(extensions)}


def _claim(cid: str, *on_admission: str | None) -> dict:
    return {
        "resourceType": "Claim",
        "id": cid,
        "status": "active",
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "diagnosis": [
            {
                "sequence": n,
                "diagnosisReference": {"reference": "Condition/c1"},
                **({} if code is None else {"onAdmission": {"coding": [{"system": POA_SYSTEM, "code": code}]}}),
            }
            for n, code in enumerate(on_admission, 1)
        ],
        "item": [{"sequence": 1, "encounter": [{"reference": "Encounter/e1"}]}],
    }


def _condition_poa(result: ExtractResult) -> dict[str, Any]:
    poa = result.tables["conditions"].set_index("condition_id")["present_on_admission"]
    return {k: (None if pd.isna(v) else v) for k, v in poa.items()}


def _bundle(path: Path, *resources: dict) -> Path:
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    path.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    return path


# ---------------------------------------------------------------- reading one element


@pytest.mark.parametrize(
    ("extension", "expected"),
    [
        (_poa("Y"), "Y"),
        ({"url": POA_EXTENSION, "valueCoding": {"system": POA_SYSTEM, "code": "W"}}, "W"),
        ({"url": POA_EXTENSION, "valueCode": "U"}, "U"),
        # The first value[x] present decides, even without a code: no guessing from a second.
        ({"url": POA_EXTENSION, "valueCodeableConcept": {"text": "yes"}, "valueCode": "Y"}, None),
        ({"url": POA_EXTENSION}, None),
        ({"url": POA_EXTENSION + "-v2", "valueCode": "Y"}, None),  # another extension
    ],
)
def test_the_extension_on_a_condition_or_encounter_diagnosis_is_read_by_value_type(
    extension: dict, expected: str | None
) -> None:
    assert present_on_admission({"extension": [extension]}, CONDITION) == expected
    assert present_on_admission({"extension": [extension]}, ENCOUNTER_DIAGNOSIS) == expected


def test_claim_diagnosis_poa_is_on_admission_not_the_extension() -> None:
    diag = {"onAdmission": {"coding": [{"system": POA_SYSTEM, "code": "N"}, {"code": "Y"}]}}
    assert present_on_admission(diag, CLAIM_DIAGNOSIS) == "N"  # coding[0]
    assert present_on_admission({"extension": [_poa("Y")]}, CLAIM_DIAGNOSIS) is None
    assert present_on_admission({"onAdmission": diag["onAdmission"]}, ENCOUNTER_DIAGNOSIS) is None


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        ({}, None),
        ({"extension": "not a list"}, None),
        ({"extension": [None, "x", _poa("N")]}, "N"),
        ({"extension": [_poa("N"), _poa("Y")]}, "N"),  # first extension wins
        ({"extension": [_poa("")]}, ""),  # blank is stated (conform nulls it later)
        ({"extension": [{"url": POA_EXTENSION, "valueCode": 1}]}, 1),  # kept for validation to judge
        ({"extension": [{"url": POA_EXTENSION, "valueCode": {"code": "Y"}}]}, '{"code":"Y"}'),
        ({"extension": [{"url": POA_EXTENSION, "valueCodeableConcept": {"coding": "Y"}}]}, None),
    ],
)
def test_missing_blank_and_odd_codes_are_kept_as_stated(element: dict, expected: Any) -> None:
    assert present_on_admission(element, CONDITION) == expected


def test_odd_elements_and_unknown_places_do_not_crash_but_a_wrong_place_is_a_bug() -> None:
    assert present_on_admission(None, CLAIM_DIAGNOSIS) is None
    assert present_on_admission("Y", ENCOUNTER_DIAGNOSIS) is None
    with pytest.raises(ValueError, match="Procedure"):
        present_on_admission({}, "Procedure")


def test_encounter_diagnosis_pairs_skip_entries_without_a_condition_or_a_code() -> None:
    enc = {
        "diagnosis": [
            _diag("Condition/c1", _poa("Y")),
            {"extension": [_poa("N")]},  # names no condition
            _diag("Condition/c3"),  # states nothing
            "junk",
            _diag("urn:uuid:c4", _poa("W")),
        ]
    }
    assert encounter_diagnosis_poa(enc) == [("c1", "Y"), ("c4", "W")]
    assert encounter_diagnosis_poa({"diagnosis": "x"}) == []


# ---------------------------------------------------------------- precedence (StayPoa)


def test_stay_poa_fills_only_conditions_that_state_nothing_and_first_stay_wins() -> None:
    stays = StayPoa()
    stays.add({"diagnosis": [_diag("Condition/c1", _poa("N")), _diag("Condition/c1", _poa("Y"))]})
    stays.add({"diagnosis": [_diag("Condition/c1", _poa("U")), _diag("Condition/c2", _poa("W"))]})
    rows = pd.DataFrame(
        {"condition_id": ["c1", "c2", "c3", None], "present_on_admission": [None, "Y", None, None]}, dtype="object"
    )
    filled = stays.fill(rows)
    assert filled["present_on_admission"].tolist() == ["N", "Y", None, None]
    assert rows["present_on_admission"].tolist() == [None, "Y", None, None]  # the rows as read are left alone


# ---------------------------------------------------------------- through the batch


def test_each_source_fills_its_own_table(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Claim.ndjson", [_claim("k1", "N", None)])
    write_ndjson("Condition.ndjson", [_cond("c1")])
    write_ndjson("Encounter.ndjson", [_enc("e1", diagnosis=[_diag("Condition/c9", _poa("W")), _diag("Condition/c1")])])
    result = extract_batch(tmp_path, validate_sample=0)
    assert list(result.tables["claim_diagnoses"]["present_on_admission"].astype(object).fillna("-")) == ["N", "-"]
    assert list(result.tables["encounter_diagnoses"]["present_on_admission"].astype(object).fillna("-")) == ["W", "-"]
    # The claim says N for c1, but a claim's onAdmission is never copied onto a Condition.
    assert _condition_poa(result) == {"c1": None}
    _assert_balanced(result)


def test_condition_own_extension_wins_over_every_encounter(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Condition.ndjson", [_cond("c1", extension=[_poa("U")]), _cond("c2")])
    write_ndjson(
        "Encounter.ndjson", [_enc("e1", diagnosis=[_diag("Condition/c1", _poa("Y")), _diag("Condition/c2", _poa("Y"))])]
    )
    assert _condition_poa(extract_batch(tmp_path)) == {"c1": "U", "c2": "Y"}


def test_the_first_encounter_read_decides_when_two_disagree(tmp_path: Path, write_ndjson: Writer) -> None:
    first = write_ndjson("a/Encounter.ndjson", [_enc("e1", diagnosis=[_diag("Condition/c1", _poa("N"))])])
    second = write_ndjson("b/Encounter.ndjson", [_enc("e2", diagnosis=[_diag("Condition/c1", _poa("Y"))])])
    conditions = write_ndjson("Condition.ndjson", [_cond("c1")])
    assert _condition_poa(extract_paths([first, second, conditions], root=tmp_path)) == {"c1": "N"}
    assert _condition_poa(extract_paths([second, first, conditions], root=tmp_path)) == {"c1": "Y"}


@pytest.mark.parametrize("condition_first", [True, False], ids=["condition_first", "encounter_first"])
def test_poa_on_the_encounter_reaches_a_condition_in_another_ndjson_file_in_either_order(
    tmp_path: Path, write_ndjson: Writer, condition_first: bool
) -> None:
    conditions = write_ndjson("Condition.ndjson", [_cond("c1"), _cond("c2")])
    encounters = write_ndjson("Encounter.ndjson", [_enc("e1", diagnosis=[_diag("Condition/c1", _poa("N"))])])
    files = [conditions, encounters] if condition_first else [encounters, conditions]
    result = extract_paths(files, root=tmp_path)
    assert _condition_poa(result) == {"c1": "N", "c2": None}
    _assert_balanced(result)


@pytest.mark.parametrize("condition_first", [True, False], ids=["condition_first", "encounter_first"])
def test_poa_on_the_encounter_reaches_a_condition_of_the_same_bundle_in_either_order(
    tmp_path: Path, condition_first: bool
) -> None:
    cond = _cond("c1", encounter={"reference": "urn:uuid:e1"})
    enc = _enc("e1", diagnosis=[_diag("urn:uuid:c1", _poa("W"))])
    _bundle(tmp_path / "case.json", *([cond, enc] if condition_first else [enc, cond]))
    assert _condition_poa(extract_batch(tmp_path)) == {"c1": "W"}


def test_poa_on_an_encounter_in_one_bundle_reaches_a_condition_in_another(tmp_path: Path) -> None:
    # POA is keyed by the condition's logical id across the whole delivery, like every link.
    _bundle(tmp_path / "a.json", _enc("e1", diagnosis=[_diag("Condition/c1", _poa("Y"))]))
    _bundle(tmp_path / "b.json", _cond("c1"))
    assert _condition_poa(extract_batch(tmp_path)) == {"c1": "Y"}


def test_a_blank_code_is_stated_so_it_wins_and_is_stored_as_null(tmp_path: Path, write_ndjson: Writer) -> None:
    """Pins current behaviour: a blank code (invalid FHIR, rejected when sampled) counts as
    a statement, so it blocks the fallback; ``conform`` then nulls it like any blank text."""
    write_ndjson("Condition.ndjson", [_cond("c1", extension=[_poa(" ")]), _cond("c2")])
    a = write_ndjson(
        "a/Encounter.ndjson",
        [_enc("e1", diagnosis=[_diag("Condition/c1", _poa("Y")), _diag("Condition/c2", _poa(""))])],
    )
    b = write_ndjson("b/Encounter.ndjson", [_enc("e2", diagnosis=[_diag("Condition/c2", _poa("Y"))])])
    result = extract_paths([tmp_path / "Condition.ndjson", a, b], root=tmp_path, validate_sample=0)
    assert _condition_poa(result) == {"c1": None, "c2": None}


def test_a_numeric_code_is_kept_as_text(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson("Condition.ndjson", [_cond("c1")])
    ext = {"url": POA_EXTENSION, "valueCode": 1}
    write_ndjson("Encounter.ndjson", [_enc("e1", diagnosis=[_diag("Condition/c1", ext)])])
    result = extract_batch(tmp_path, validate_sample=0)
    assert _condition_poa(result) == {"c1": "1"}
    assert result.tables["encounter_diagnoses"]["present_on_admission"].tolist() == ["1"]


def test_an_encounter_rejected_at_extraction_states_nothing(tmp_path: Path, write_ndjson: Writer) -> None:
    invalid = _enc("e1", diagnosis=[_diag("Condition/c1", _poa("Y"))])
    del invalid["status"]  # required: fails FHIR validation, quarantined whole
    write_ndjson("Condition.ndjson", [_cond("c1")])
    write_ndjson("Encounter.ndjson", [invalid])
    result = extract_batch(tmp_path)
    assert result.quarantine["record_id"].tolist() == ["e1"]
    assert _condition_poa(result) == {"c1": None}
    _assert_balanced(result)
