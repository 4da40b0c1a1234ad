"""Strict validation: every mistake in an indicator file is an error naming the file and the place."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipelines.compute import evaluate, load_indicators, load_valuesets
from pipelines.errors import IndicatorDefinitionError
from tests.compute._frames import frames

VALUESETS = Path(__file__).resolve().parents[2] / "indicators" / "valuesets"

BASE: dict[str, Any] = {
    "id": "demo",
    "title": "Demo",
    "description": "Falls per stay.",
    "domain": "patient_safety",
    "owner": "Director of Nursing",
    "scoring": "proportion",
    "basis": "encounter",
    "improvement": "decrease",
    "target": 0.1,
    "unit": "%",
    "grain": "one row per inpatient encounter",
    "populations": {
        "initial_population": {
            "sentence": "Inpatient stays ending in the month.",
            "criteria": [{"equals": {"column": "class_code", "value": "IMP"}}, {"in_period": "end_at"}],
        },
        "denominator": {"sentence": "All."},
        "numerator": {
            "sentence": "A fall.",
            "criteria": {
                "exists": {
                    "table": "adverse_events",
                    "join": "encounter_id",
                    "where": [{"in_valueset": "adverse-event-fall"}],
                }
            },
        },
    },
}


def _folder(tmp_path: Path, doc: dict[str, Any], name: str = "demo") -> Path:
    folder = tmp_path / "indicators"
    folder.mkdir(exist_ok=True)
    shutil.copytree(VALUESETS, folder / "valuesets", dirs_exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def _error(tmp_path: Path, doc: dict[str, Any]) -> str:
    with pytest.raises(IndicatorDefinitionError) as info:
        load_indicators(_folder(tmp_path, doc))
    return str(info.value)


def test_valid_file_loads(tmp_path: Path) -> None:
    (ind,) = load_indicators(_folder(tmp_path, BASE))
    assert ind.id == "demo" and ind.multiplier == 100


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    msg = _error(tmp_path, {**BASE, "colour": "red"})
    assert "demo.yaml" in msg and "colour" in msg


def test_unknown_criterion_type_is_named(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["populations"]["numerator"]["criteria"] = {"regex": {"column": "code", "pattern": ".*"}}
    msg = _error(tmp_path, doc)
    assert "populations.numerator.criteria" in msg and "regex" in msg


def test_unknown_column_is_named_with_its_table(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["populations"]["numerator"]["criteria"]["exists"]["where"].append({"is_null": "harm"})
    msg = _error(tmp_path, doc)
    assert "'harm'" in msg and "adverse_events" in msg


def test_unknown_table_is_named(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["populations"]["numerator"]["criteria"]["exists"]["table"] = "incidents"
    assert "incidents" in _error(tmp_path, doc)


def test_missing_value_set_is_named(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["populations"]["numerator"]["criteria"]["exists"]["where"] = [{"in_valueset": "falls-v2"}]
    assert "falls-v2" in _error(tmp_path, doc)


def test_bare_on_key_gets_a_hint(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False).replace("join: encounter_id", "on: encounter_id")
    folder = _folder(tmp_path, BASE)
    (folder / "demo.yaml").write_text(text)
    with pytest.raises(IndicatorDefinitionError, match="join"):
        load_indicators(folder)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"scoring": "rate"}, "scoring"),
        ({"target": 5}, "fractions"),
        ({"stratifiers": ["priority"]}, "priority"),
        ({"aggregate": "median"}, "only continuous"),
        ({"id": "Demo"}, "snake_case"),
    ],
)
def test_bad_values_are_rejected(tmp_path: Path, change: dict[str, Any], fragment: str) -> None:
    assert fragment in _error(tmp_path, {**BASE, **change})


def test_string_column_cannot_be_compared_with_lt(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["populations"]["denominator"]["criteria"] = {"compare": {"column": "service", "op": "lt", "value": 3}}
    assert "needs a number or datetime" in _error(tmp_path, doc)


def test_missing_required_population(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    del doc["populations"]["numerator"]
    assert "numerator" in _error(tmp_path, doc)


def test_ratio_needs_its_event_and_exposure_columns(tmp_path: Path) -> None:
    assert "numerator_events" in _error(tmp_path, {**BASE, "scoring": "ratio", "target": 2})


def test_population_reference_must_point_backwards(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["populations"]["denominator"]["criteria"] = {"population": "numerator"}
    assert "not defined before" in _error(tmp_path, doc)


def test_escape_hatch_python_population_is_used(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    del doc["populations"]["numerator"]["criteria"]
    doc["reads"] = ["encounters"]
    folder = _folder(tmp_path, doc)
    (folder / "demo.py").write_text(
        "def numerator(subjects, data, period, valuesets):\n    return subjects['ward_id'] == 'w2'\n"
    )
    (ind,) = load_indicators(folder)
    data = frames(
        encounters=[
            {
                "encounter_id": "e1",
                "patient_id": "p1",
                "class_code": "IMP",
                "end_at": "2026-03-03",
                "ward_id": "w1",
            },
            {
                "encounter_id": "e2",
                "patient_id": "p2",
                "class_code": "IMP",
                "end_at": "2026-03-03",
                "ward_id": "w2",
            },
        ]
    )
    out = evaluate(ind, data, "2026-03", load_valuesets([folder / "valuesets"])).set_index("subject_id")
    assert out.loc["e2", "numerator"] and not out.loc["e1", "numerator"]


def test_escape_hatch_and_yaml_criteria_together_is_an_error(tmp_path: Path) -> None:
    folder = _folder(tmp_path, BASE)
    (folder / "demo.py").write_text("def numerator(subjects, data, period):\n    return None\n")
    with pytest.raises(IndicatorDefinitionError, match="both"):
        load_indicators(folder)


def test_population_without_criteria_or_function_is_an_error(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    del doc["populations"]["numerator"]["criteria"]
    assert "needs criteria" in _error(tmp_path, doc)


def test_file_name_must_match_id(tmp_path: Path) -> None:
    with pytest.raises(IndicatorDefinitionError, match="file name"):
        load_indicators(_folder(tmp_path, BASE, name="other"))


def test_metadata_lists_population_sentences(tmp_path: Path) -> None:
    (ind,) = load_indicators(_folder(tmp_path, BASE))
    meta = ind.metadata()
    assert meta["populations"]["denominator"] == "All."
    assert meta["population_codes"]["initial_population"] == "initial-population"
    assert meta["stratifiers"] == []


def test_sum_and_lookup_derivations_feed_a_ratio(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc.update(
        scoring="ratio",
        target=2,
        numerator_events="falls",
        denominator_value="bed_hours",
        derive={
            "falls": {
                "count": {
                    "table": "adverse_events",
                    "join": "encounter_id",
                    "where": {"in_valueset": "adverse-event-fall"},
                }
            },
            "bed_hours": {
                "sum": {
                    "table": "observations",
                    "join": "encounter_id",
                    "column": "value_num",
                    "where": {"equals": {"column": "code", "value": "bed-hours"}},
                }
            },
            "born": {"lookup": {"table": "patients", "join": "patient_id", "column": "birth_date"}},
        },
    )
    doc["populations"]["numerator"]["criteria"] = {"compare": {"column": "falls", "op": "gt", "value": 0}}
    doc["populations"]["denominator"]["criteria"] = {"not_null": "born"}
    folder = _folder(tmp_path, doc)
    (ind,) = load_indicators(folder)
    enc = {"patient_id": "p1", "class_code": "IMP", "end_at": "2026-03-03"}
    data = frames(
        patients=[{"patient_id": "p1", "birth_date": "1950-01-01"}],
        encounters=[{"encounter_id": "e1", **enc}, {"encounter_id": "e2", **enc, "patient_id": "p2"}],
        observations=[
            {
                "observation_id": "o1",
                "patient_id": "p1",
                "encounter_id": "e1",
                "code": "bed-hours",
                "value_num": 30,
            },
            {
                "observation_id": "o2",
                "patient_id": "p1",
                "encounter_id": "e1",
                "code": "bed-hours",
                "value_num": 12,
            },
            {
                "observation_id": "o3",
                "patient_id": "p1",
                "encounter_id": "e1",
                "code": "other",
                "value_num": 99,
            },
        ],
    )
    out = evaluate(ind, data, "2026-03", load_valuesets([folder / "valuesets"])).set_index("subject_id")
    assert out.loc["e1", "denominator_value"] == 42.0 and out.loc["e1", "numerator_events"] == 0
    assert not out.loc["e2", "denominator"] and pd.isna(out.loc["e2", "denominator_value"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"spc": {"chart": "u"}}, "spc.chart"),  # a proportion is not charted as a rate
        ({"spc": {"chart": "pie"}}, "spc.chart"),
        ({"spc": {"rules": "sometimes"}}, "spc.rules"),
        ({"spc": {"rules": {"shift_length": 1}}}, "spc.rules"),
        ({"spc": {"baseline_months": 1}}, "spc.baseline_months"),
        ({"spc": {"colour": "red"}}, "unknown key"),
        ({"risk_adjustment": {"factors": ["age_band", "postcode"]}}, "risk_adjustment.factors"),
        ({"risk_adjustment": {"factors": []}}, "risk_adjustment.factors"),
        ({"risk_adjustment": {"factors": ["sex"], "reference_months": 0}}, "risk_adjustment.reference_months"),
    ],
)
def test_spc_and_risk_adjustment_settings_are_checked(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    assert message in _error(tmp_path, {**copy.deepcopy(BASE), **extra})


def test_spc_and_risk_adjustment_settings_are_read(tmp_path: Path) -> None:
    doc = {**copy.deepcopy(BASE), "spc": {"chart": "p_prime", "rules": "western_electric", "baseline_months": 12},
           "risk_adjustment": {"factors": ["age_band", "admission_type"], "reference_months": 6}}  # fmt: skip
    (ind,) = load_indicators(_folder(tmp_path, doc))
    assert (ind.spc.chart, ind.spc.rules, ind.spc.baseline_months) == ("p_prime", "western_electric", 12)
    assert ind.risk_adjustment is not None
    assert (ind.risk_adjustment.factors, ind.risk_adjustment.reference_months) == (("age_band", "admission_type"), 6)


def test_only_proportions_of_encounters_are_risk_adjusted(tmp_path: Path) -> None:
    doc = {**copy.deepcopy(BASE), "basis": "patient", "risk_adjustment": {"factors": ["sex"]}}
    doc["populations"] = {
        "initial_population": {"sentence": "Patients.", "criteria": {"not_null": "birth_date"}},
        "denominator": {"sentence": "All."},
        "numerator": {"sentence": "Recorded gender.", "criteria": {"not_null": "gender"}},
    }
    del doc["risk_adjustment"]
    load_indicators(_folder(tmp_path, doc))  # valid without the key
    doc["risk_adjustment"] = {"factors": ["sex"]}
    assert "only proportion measures of encounters" in _error(tmp_path, doc)
