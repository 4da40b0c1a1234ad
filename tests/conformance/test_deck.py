"""Reading a measure deck: the Measure's names, value sets, and each case's expected counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.conformance.deck import cms_number, expected_counts, period_label, read_deck
from pipelines.errors import ConfigError
from tests.conformance.conftest import (
    MEASURE_NAME,
    MISSING_OID,
    VS_OID,
    Case,
    counts,
    standard_cases,
    write_deck,
)


def test_measurement_period_of_a_calendar_year_or_month_becomes_an_engine_period() -> None:
    assert period_label("2026-01-01", "2026-12-31") == "2026"
    assert period_label("2026-02-01", "2026-02-28") == "2026-02"
    assert period_label("2026-12-01T00:00:00Z", "2026-12-31T23:59:59Z") == "2026-12"


@pytest.mark.parametrize(("start", "end"), [("2026-01-01", "2026-06-30"), ("2026-01-02", "2026-12-31"), ("x", "y")])
def test_other_measurement_periods_are_refused_not_widened(start: str, end: str) -> None:
    with pytest.raises(ConfigError):
        period_label(start, end)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CMS108FHIRVTEProphylaxis", "CMS108"),
        ("https://madie.cms.gov/Measure/CMS1017FHIRHHFI", "CMS1017"),
        ("cms0165", "CMS165"),
        ("CMS826FHIR", "CMS826"),
        ("urn:uuid:75ae89cd-c418-4de1-98c3-0230c72402b6", None),
        (None, None),
    ],
)
def test_cms_number_reads_names_urls_and_short_names(text: str | None, expected: str | None) -> None:
    assert cms_number(text) == expected


def test_expected_counts_keep_population_counts_and_ignore_observations() -> None:
    report = {
        "group": [
            {
                "population": [
                    {"code": {"coding": [{"code": "initial-population"}]}, "count": 2},
                    {"code": {"coding": [{"code": "numerator"}]}, "count": 1},
                    {"code": {"coding": [{"code": "measure-observation"}]}, "count": 9},
                    {"code": {"coding": [{"code": "denominator"}]}},  # no count: not compared
                ]
            }
        ]
    }
    assert expected_counts(report) == {"initial-population": 2, "numerator": 1}


def test_deck_reads_measure_names_value_sets_and_cases(tmp_path: Path) -> None:
    deck = read_deck(write_deck(tmp_path / "m", standard_cases(), missing=(MISSING_OID,)))
    assert deck.measure_name == MEASURE_NAME
    assert deck.cms_id == "CMS9999"
    assert deck.scoring == "proportion"
    assert deck.population_basis == "Encounter"
    assert deck.declared_valuesets == {VS_OID, MISSING_OID}
    assert deck.missing_valuesets == {MISSING_OID}
    assert len(deck.cases) == 3 and not deck.problems
    first = next(c for c in deck.cases if c.series == "NUMERPass")
    assert first.title == "NUMERPass-ProcedureInSet"
    assert first.period == "2026"
    assert first.expected == counts(1, num=1)
    assert first.case == f"{first.patient_folder}/CMS9999FHIR-v0.0.1-NUMERPass-ProcedureInSet.json"
    assert ("Encounter", "enc-a") in first.resource_ids
    assert not any(t == "MeasureReport" for t, _ in first.resource_ids)


def test_case_without_expected_report_is_kept_as_a_problem(tmp_path: Path) -> None:
    cases = [*standard_cases(), Case("IPFail-NoReport", counts(0), with_report=False)]
    deck = read_deck(write_deck(tmp_path / "m", cases))
    assert len(deck.cases) == 3
    [problem] = deck.problems
    assert problem.title == "IPFail-NoReport"
    assert "exactly one MeasureReport" in problem.reason


def test_unreadable_case_file_is_kept_as_a_problem(tmp_path: Path) -> None:
    root = write_deck(tmp_path / "m", standard_cases())
    bad = root / "testcases" / "broken" / "CMS9999FHIR-v0.0.1-IPPass-Broken.json"
    bad.parent.mkdir()
    bad.write_text("{not json", encoding="utf-8")
    deck = read_deck(root)
    assert [p.case for p in deck.problems] == ["broken/CMS9999FHIR-v0.0.1-IPPass-Broken.json"]


def test_folder_without_a_measure_is_not_a_deck(tmp_path: Path) -> None:
    (tmp_path / "testcases").mkdir()
    with pytest.raises(ConfigError, match="not a measure deck"):
        read_deck(tmp_path)


def test_measure_without_test_cases_is_not_a_deck(tmp_path: Path) -> None:
    root = write_deck(tmp_path / "m", [])
    with pytest.raises(ConfigError, match="no test cases"):
        read_deck(root)


def test_measure_folder_with_a_non_measure_json_is_not_a_deck(tmp_path: Path) -> None:
    (tmp_path / "measure").mkdir()
    (tmp_path / "measure" / "Library-x.json").write_text(json.dumps({"resourceType": "Library"}))
    with pytest.raises(ConfigError, match="found 0"):
        read_deck(tmp_path)
