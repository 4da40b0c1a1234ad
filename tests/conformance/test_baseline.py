"""The ratchet: a baseline lists matching cases; a listed case that stops matching is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.conformance import run_deck
from pipelines.conformance.baseline import load_baseline, main, regressions, updated_baseline
from pipelines.errors import ConfigError
from tests.conformance.conftest import DeckFactory, counts, standard_cases


def test_baseline_lists_exactly_the_matching_cases(make_deck: DeckFactory) -> None:
    cases = standard_cases()
    cases[1].expected = counts(1, num=1)
    deck, settings = make_deck(cases)
    run = run_deck(deck, settings)
    new = updated_baseline([run], {"OtherDeck": ["x/y.json"]})
    assert new["OtherDeck"] == ["x/y.json"]
    assert new[deck.name] == sorted(r.case for r in run.results if r.title != "NUMERFail-ProcedureNotInSet")


def test_a_listed_case_that_stops_matching_is_a_regression(make_deck: DeckFactory) -> None:
    cases = standard_cases()
    cases[1].expected = counts(1, num=1)
    deck, settings = make_deck(cases)
    run = run_deck(deck, settings)
    everything = {deck.name: sorted(r.case for r in run.results)}
    [lost] = regressions(run, everything)
    assert "NUMERFail-ProcedureNotInSet" in lost
    with pytest.raises(ConfigError, match="refusing to drop"):
        updated_baseline([run], everything)
    assert lost not in updated_baseline([run], everything, allow_regressions=True)[deck.name]


def test_a_listed_case_that_no_longer_exists_is_a_regression(make_deck: DeckFactory) -> None:
    deck, settings = make_deck()
    run = run_deck(deck, settings)
    assert regressions(run, {deck.name: ["gone/CMS9999FHIR-v0.0.1-IPPass-Gone.json"]}) == [
        "gone/CMS9999FHIR-v0.0.1-IPPass-Gone.json"
    ]


def test_module_entry_point_writes_the_file(
    make_deck: DeckFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deck, settings = make_deck()
    monkeypatch.setenv("CAREQI_INDICATORS_DIR", str(settings.indicators_dir))
    target = tmp_path / "baseline.json"
    assert main([str(deck), "--file", str(target)]) == 0
    assert len(load_baseline(target)[deck.name]) == 3
    assert "3/3 cases in baseline (+3)" in capsys.readouterr().out


def test_malformed_baseline_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"deck": "not a list"}))
    with pytest.raises(ConfigError):
        load_baseline(path)
    assert load_baseline(tmp_path / "absent.json") == {}
