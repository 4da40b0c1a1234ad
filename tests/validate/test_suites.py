from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.errors import ConfigError
from pipelines.tables import TABLES
from pipelines.validate import load_suites
from pipelines.validate.suites import CATEGORIES, check_name
from tests.validate.helpers import SUITES_DIR

NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"


@pytest.fixture(scope="module")
def suites():
    return load_suites(SUITES_DIR)


def test_every_table_has_a_suite_that_loads(suites) -> None:
    assert sorted(suites) == sorted(TABLES)
    for table, suite in suites.items():
        assert suite.name == table
        assert suite.expectations


def test_suite_files_use_the_gx_1_serialisation() -> None:
    for path in SUITES_DIR.glob("*.json"):
        data = json.loads(path.read_text())
        assert "expectation_suite_name" not in data and data["name"] == path.stem
        for item in data["expectations"]:
            assert set(item) == {"type", "kwargs", "meta"}
            assert item["meta"]["category"] in CATEGORIES and item["meta"]["description"]


def test_every_key_is_required_and_unique_keeping_the_first_copy(suites) -> None:
    for table, suite in suites.items():
        spec = TABLES[table]
        checks = {check_name(e): e for e in suite.expectations}
        assert f"{NOT_NULL}({spec.key})" in checks
        if spec.type_column is None:
            assert checks[f"{UNIQUE}({spec.key})"].meta["keep"] == "first"
        else:  # FHIR ids are unique per resource type: (type, id) is the key
            unique = f"expect_compound_columns_to_be_unique({', '.join(spec.key_columns)})"
            assert checks[unique].meta["keep"] == "first"


@pytest.mark.parametrize(
    "table",
    ["encounters", "conditions", "procedures", "medications", "observations", "adverse_events"],
)
def test_clinical_records_require_a_patient(suites, table: str) -> None:
    assert f"{NOT_NULL}(patient_id)" in {check_name(e) for e in suites[table].expectations}


def write_suite(folder: Path, name: str, content: str | dict) -> Path:
    path = folder / f"{name}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def one(exp: dict, name: str = "complaints") -> dict:
    return {"name": name, "expectations": [exp]}


GOOD = {
    "type": NOT_NULL,
    "kwargs": {"column": "complaint_id"},
    "meta": {"description": "has an id", "category": "completeness"},
}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "complaints", "expectations": [', "not readable JSON"),
        ({"expectation_suite_name": "complaints", "expectations": []}, "GX 0.x format"),
        (one({**GOOD, "expectation_type": NOT_NULL}), "GX 0.x format"),
        (one({**GOOD, "type": "expect_column_values_to_be_purple"}), "invalid expectation"),
        (one({**GOOD, "kwargs": {"column": "no_such_column"}}), r"no column\(s\) \['no_such_column'\]"),
        (one({**GOOD, "meta": {"description": "has an id"}}), "meta.category"),
        (one({**GOOD, "meta": {"category": "completeness"}}), "meta.description"),
        (one({**GOOD, "meta": {**GOOD["meta"], "keep": "first"}}), "only supported on"),
        (one({**GOOD, "kwargs": {"column": "complaint_id", "mostly": 0.9}}), "mostly"),
        (
            one({**GOOD, "type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}),
            "only row-level expectations",
        ),
        (
            one(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "received_at", "min_value": "1900-01-01"},
                    "meta": {"description": "plausible", "category": "plausibility"},
                }
            ),
            "must be a timestamp",
        ),
        (one(GOOD, name="grievances"), "'name' must be 'complaints'"),
    ],
)
def test_malformed_suite_is_a_config_error_naming_the_file(tmp_path: Path, content, message: str) -> None:
    write_suite(tmp_path, "complaints", content)
    with pytest.raises(ConfigError, match=message) as err:
        load_suites(tmp_path)
    assert "complaints.json" in str(err.value)


def test_suite_for_an_unknown_table_is_rejected(tmp_path: Path) -> None:
    write_suite(tmp_path, "complaint", one(GOOD, name="complaint"))
    with pytest.raises(ConfigError, match="complaint.json: no table named 'complaint'"):
        load_suites(tmp_path)


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_suites(tmp_path / "nope")
