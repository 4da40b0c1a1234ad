"""``careqi conformance``: text and JSON output, exit status, MeasureReport files, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fhir.resources.R4B.measurereport import MeasureReport

from pipelines.cli import main
from tests.conformance.conftest import MISSING_OID, VS_OID, DeckFactory, counts, standard_cases


@pytest.fixture
def point_cli_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, Path], None]:
    def point(settings_home: Path, indicators: Path) -> None:
        monkeypatch.setenv("CAREQI_HOME", str(settings_home))
        monkeypatch.setenv("CAREQI_INDICATORS_DIR", str(indicators))

    return point


def test_json_is_one_object_and_exit_zero_when_every_case_matches(
    make_deck: DeckFactory, point_cli_at, capsys: pytest.CaptureFixture[str]
) -> None:
    deck, settings = make_deck()
    point_cli_at(settings.home, settings.indicators_dir)
    assert main(["conformance", str(deck), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["measure"] == "CMS9999FHIRTinyMeasure"
    assert doc["indicator"] == "tiny_measure"
    assert (doc["cases"], doc["matched"], doc["mismatches"], doc["unmatchable"]) == (3, 3, [], [])
    assert doc["totals"]["numerator"] == {"expected": 2, "computed": 2}


def test_mismatch_exits_one_and_lists_case_title_and_populations(
    make_deck: DeckFactory, point_cli_at, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = standard_cases()
    cases[1].expected = counts(1, num=1)
    deck, settings = make_deck(cases, missing=(MISSING_OID,), oids=(VS_OID, MISSING_OID))
    point_cli_at(settings.home, settings.indicators_dir)
    assert main(["conformance", str(deck), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    [bad] = doc["mismatches"]
    assert bad["title"] == "NUMERFail-ProcedureNotInSet"
    assert bad["case"].startswith(cases[1].folder + "/")
    assert bad["populations"]["numerator"] == {"expected": 1, "computed": 0}
    assert bad["populations"]["initial-population"] == {"expected": 1, "computed": 1}
    assert doc["unmatchable"] == [{"case": bad["case"], "title": bad["title"], "missing_valuesets": [MISSING_OID]}]


def test_text_report_shows_totals_and_each_mismatching_case(
    make_deck: DeckFactory, point_cli_at, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = standard_cases()
    cases[1].expected = counts(1, num=1)
    deck, settings = make_deck(cases)
    point_cli_at(settings.home, settings.indicators_dir)
    assert main(["conformance", str(deck)]) == 1
    text = capsys.readouterr().out
    assert "3 cases: 2 match, 1 mismatch" in text
    assert "numerator                     3         2  <-" in text
    assert f"{cases[1].folder}  NUMERFail-ProcedureNotInSet" in text
    assert "numerator 1/0*" in text
    assert text.rstrip().endswith("FAIL")


def test_out_writes_valid_individual_reports_and_a_summary(
    make_deck: DeckFactory, point_cli_at, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deck, settings = make_deck()
    point_cli_at(settings.home, settings.indicators_dir)
    out = tmp_path / "reports"
    assert main(["conformance", str(deck), "--out", str(out)]) == 0
    individual = sorted((out / "individual").glob("*.json"))
    assert len(individual) == 3
    reports = [MeasureReport.model_validate_json(p.read_text()) for p in individual]
    assert {r.type for r in reports} == {"individual"}
    assert {r.measure for r in reports} == {"https://madie.cms.gov/Measure/CMS9999FHIRTinyMeasure"}
    two_stays = next(r for r in reports if r.subject.reference.endswith("000000000002"))
    assert {p.code.coding[0].code: p.count for p in two_stays.group[0].population} == counts(2, num=1)
    summary = MeasureReport.model_validate_json((out / "summary.json").read_text())
    assert summary.type == "summary"
    assert {p.code.coding[0].code: p.count for p in summary.group[0].population}["numerator"] == 2
    assert float(summary.group[0].measureScore.value) == pytest.approx(2 / 4)
    assert str(summary.period.start) == "2026-01-01" and str(summary.period.end) == "2026-12-31"


def test_a_folder_that_is_not_a_deck_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", str(tmp_path)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "not a measure deck" in err[0]


def test_a_deck_without_an_indicator_is_a_one_line_error(
    make_deck: DeckFactory, point_cli_at, capsys: pytest.CaptureFixture[str]
) -> None:
    deck, settings = make_deck(cms_id="CMS1")
    point_cli_at(settings.home, settings.indicators_dir)
    assert main(["conformance", str(deck), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and "no indicator" in err[0]


def test_valuesets_option_replaces_the_deck_folder(
    make_deck: DeckFactory, point_cli_at, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deck, settings = make_deck()
    point_cli_at(settings.home, settings.indicators_dir)
    empty = tmp_path / "no-sets"
    empty.mkdir()
    # the deck's own value set is not loaded, and the Measure declares it: a placeholder, so
    # the procedure no longer counts and the numerator cases mismatch
    assert main(["conformance", str(deck), "--valuesets", str(empty), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["missing_valuesets"] == [VS_OID]
    assert doc["totals"]["numerator"] == {"expected": 2, "computed": 0}
