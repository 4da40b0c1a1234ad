from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.compute.valuesets import load_valuesets
from pipelines.errors import ValueSetError

OID = "2.16.840.1.113762.1.4.1147.196"
SNOMED = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def _write(folder: Path, name: str, resource: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(resource))


def _vsac(codes: list[tuple[str, str]]) -> dict:
    return {
        "resourceType": "ValueSet",
        "id": OID,
        "url": f"http://cts.nlm.nih.gov/fhir/ValueSet/{OID}",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{OID}"}],
        "name": "PressureInjuryDeepTissueStage2To4",
        "version": "20240101",
        "expansion": {"contains": [{"system": s, "code": c} for s, c in codes]},
    }


def test_value_set_is_found_by_url_id_oid_and_name(tmp_path: Path) -> None:
    _write(tmp_path, "vs.json", _vsac([(ICD, "L89.152")]))
    index = load_valuesets([tmp_path])
    for ref in (
        f"http://cts.nlm.nih.gov/fhir/ValueSet/{OID}",
        OID,
        f"urn:oid:{OID}",
        "PressureInjuryDeepTissueStage2To4",
        f"http://cts.nlm.nih.gov/fhir/ValueSet/{OID}|20240101",
    ):
        assert index.get(ref).codes == {(ICD, "L89.152")}, ref


def test_codes_match_on_system_and_code_together(tmp_path: Path) -> None:
    _write(tmp_path, "vs.json", _vsac([(ICD, "L89.152"), (SNOMED, "420324007")]))
    index = load_valuesets([tmp_path])
    systems = pd.Series([ICD, SNOMED, ICD, None], dtype="string")
    codes = pd.Series(["L89.152", "L89.152", None, "L89.152"], dtype="string")
    assert index.mask(OID, systems, codes).tolist() == [True, False, False, False]


def test_compose_concepts_and_nested_contains_are_read(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "a.json",
        {
            "resourceType": "ValueSet",
            "id": "composed",
            "url": "https://x/ValueSet/composed",
            "compose": {"include": [{"system": SNOMED, "concept": [{"code": "1"}, {"code": "2"}]}]},
        },
    )
    _write(
        tmp_path,
        "b.json",
        {
            "resourceType": "ValueSet",
            "id": "nested",
            "url": "https://x/ValueSet/nested",
            "expansion": {
                "contains": [
                    {
                        "abstract": True,
                        "code": "grp",
                        "system": SNOMED,
                        "contains": [{"system": SNOMED, "code": "3"}],
                    }
                ]
            },
        },
    )
    index = load_valuesets([tmp_path])
    assert index.codes("composed") == {(SNOMED, "1"), (SNOMED, "2")}
    assert index.codes("nested") == {(SNOMED, "3")}


def test_filter_without_expansion_is_an_error_when_used(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "f.json",
        {
            "resourceType": "ValueSet",
            "id": "filtered",
            "compose": {
                "include": [{"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "1"}]}]
            },
        },
    )
    index = load_valuesets([tmp_path])
    with pytest.raises(ValueSetError, match="no expansion"):
        index.get("filtered")


def test_unknown_value_set_and_missing_folder_are_errors(tmp_path: Path) -> None:
    _write(tmp_path, "vs.json", _vsac([(ICD, "L89.152")]))
    index = load_valuesets([tmp_path])
    with pytest.raises(ValueSetError, match="not found"):
        index.get("no-such-set")
    with pytest.raises(ValueSetError, match="does not exist"):
        load_valuesets([tmp_path / "missing"])


def test_same_url_with_different_codes_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", _vsac([(ICD, "L89.152")]))
    _write(tmp_path, "b.json", _vsac([(ICD, "L89.153")]))
    with pytest.raises(ValueSetError, match="defined twice"):
        load_valuesets([tmp_path])


def test_project_value_sets_load() -> None:
    index = load_valuesets([Path(__file__).resolve().parents[2] / "indicators" / "valuesets"])
    assert (SNOMED, "217082002") in index.codes("adverse-event-fall")
    assert (SNOMED, "217082002") in index.codes("https://careqi.example.org/fhir/ValueSet/adverse-event-fall")


@pytest.mark.shared_data
def test_vsac_expansions_from_the_cms_decks_load_by_oid() -> None:
    from pipelines.config import load_settings

    folder = load_settings().shared_data_dir / "ecqm-qicore-2025" / "CMS826FHIRHHPI" / "valuesets"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    index = load_valuesets([folder])
    assert len(index) > 0
    assert len(index.codes(f"urn:oid:{OID}")) > 0
