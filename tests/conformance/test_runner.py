"""The runner: every case through extract -> indicator -> evaluate, counts compared per case."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipelines.conformance import run_deck
from pipelines.conformance.deck import read_deck
from pipelines.conformance.runner import plan_rounds
from pipelines.errors import ConfigError, IndicatorDefinitionError
from pipelines.extract import extract_paths
from tests.conformance.conftest import (
    MISSING_OID,
    PROC_IN_SET,
    VS_OID,
    Case,
    DeckFactory,
    counts,
    standard_cases,
    write_indicator,
)


def test_every_case_of_a_conforming_deck_matches(make_deck: DeckFactory) -> None:
    deck, settings = make_deck()
    run = run_deck(deck, settings)
    assert run.indicator.id == "tiny_measure"
    assert run.ok
    assert len(run.matched) == run.cases == 3
    assert run.rounds == 1  # ids are unique across cases: one columnar evaluation
    assert run.totals() == {
        "initial-population": {"expected": 4, "computed": 4},
        "denominator": {"expected": 4, "computed": 4},
        "denominator-exclusion": {"expected": 0, "computed": 0},
        "numerator": {"expected": 2, "computed": 2},
    }


def test_encounter_counts_are_split_back_to_their_case(make_deck: DeckFactory) -> None:
    deck, settings = make_deck()
    run = run_deck(deck, settings)
    two_stays = next(r for r in run.results if r.series == "IPPass")
    assert two_stays.computed == counts(2, num=1)


def test_a_wrong_expectation_is_a_mismatch_naming_the_population(make_deck: DeckFactory) -> None:
    cases = standard_cases()
    cases[1].expected = counts(1, num=1)  # the procedure is not in the value set: computed numerator 0
    deck, settings = make_deck(cases)
    run = run_deck(deck, settings)
    assert not run.ok
    [bad] = run.mismatches
    assert bad.title == "NUMERFail-ProcedureNotInSet"
    assert bad.differing == ["numerator"]
    assert bad.expected["numerator"] == 1 and bad.computed["numerator"] == 0
    assert bad.possible_cause is None
    assert run.totals()["numerator"] == {"expected": 3, "computed": 2}


def test_cases_sharing_a_record_id_are_evaluated_apart(make_deck: DeckFactory) -> None:
    """The engine keeps one row per record id; evaluated together, the child's birth date
    would overwrite the adult's (or vice versa) and one case would be wrong."""
    shared = "shared-patient-id"
    cases = [
        Case(
            "IPPass-Adult",
            counts(1, num=1),
            birth="1950-01-01",
            patient_id=shared,
            encounters=[("enc-adult", "2026-03-01T10:00:00Z", "2026-03-03T10:00:00Z")],
            procedures=[("proc-adult", "enc-adult", PROC_IN_SET)],
        ),
        Case(
            "IPFail-Child",
            {"initial-population": 0, "denominator": 0, "numerator": 0},
            birth="2015-01-01",
            patient_id=shared,
            encounters=[("enc-child", "2026-03-01T10:00:00Z", "2026-03-03T10:00:00Z")],
        ),
        *standard_cases(),
    ]
    deck, settings = make_deck(cases)
    run = run_deck(deck, settings)
    assert run.rounds == 2
    assert run.ok, [(r.title, r.computed) for r in run.mismatches]


def test_rounds_separate_only_the_clashing_cases(make_deck: DeckFactory) -> None:
    cases = standard_cases()
    cases[2].procedures = [("proc-a", "enc-c2", PROC_IN_SET)]  # same Procedure id as case 0
    deck_dir, _ = make_deck(cases)
    deck = read_deck(deck_dir)
    tables = extract_paths([c.path for c in deck.cases], root=deck_dir / "testcases").tables
    rounds = plan_rounds(deck.cases, tables)
    assert len(rounds) == 2
    assert sorted(len(r) for r in rounds) == [1, 2]
    first, second = (c for c in deck.cases if ("Procedure", "proc-a") in c.resource_ids)
    assert not any(first.case in r and second.case in r for r in rounds)


def test_indicator_is_looked_up_in_the_settings_catalogue_by_cms_id(make_deck: DeckFactory, tmp_path: Path) -> None:
    deck, settings = make_deck(cms_id="https://madie.cms.gov/Measure/CMS9999FHIRTinyMeasure")
    assert run_deck(deck, settings).indicator.id == "tiny_measure"


def test_no_indicator_for_the_measure_is_a_config_error(make_deck: DeckFactory) -> None:
    deck, settings = make_deck(cms_id="CMS108")
    with pytest.raises(ConfigError, match="no indicator .* cms_id matching measure CMS9999FHIRTinyMeasure"):
        run_deck(deck, settings)


def test_two_indicators_for_one_measure_must_be_chosen_between(make_deck: DeckFactory) -> None:
    deck, settings = make_deck()
    write_indicator(settings.indicators_dir, ind_id="tiny_measure_copy")
    with pytest.raises(ConfigError, match="several indicators"):
        run_deck(deck, settings)
    assert run_deck(deck, settings, indicator_id="tiny_measure_copy").indicator.id == "tiny_measure_copy"


def test_a_value_set_named_by_no_one_is_still_a_definition_error(make_deck: DeckFactory) -> None:
    deck, settings = make_deck(oids=(VS_OID, "2.16.840.1.999.777"))  # not declared by the Measure
    with pytest.raises(IndicatorDefinitionError, match="2.16.840.1.999.777"):
        run_deck(deck, settings)


def test_missing_value_set_is_empty_warned_once_and_flags_mismatches(
    make_deck: DeckFactory, caplog: pytest.LogCaptureFixture
) -> None:
    cases = standard_cases()
    cases[1].expected = counts(1, num=1)  # as if its procedure were in the missing set
    deck, settings = make_deck(cases, missing=(MISSING_OID,), oids=(VS_OID, MISSING_OID))
    with caplog.at_level(logging.WARNING, logger="pipelines.conformance"):
        run = run_deck(deck, settings)
    warnings = [r for r in caplog.records if MISSING_OID in r.getMessage()]
    assert len(warnings) == 1
    assert run.missing_valuesets == [MISSING_OID]
    assert run.referenced_missing == [MISSING_OID]
    assert len(run.matched) == 2  # the rest of the deck still runs and matches
    [flagged] = run.unmatchable
    assert flagged.title == "NUMERFail-ProcedureNotInSet"
    assert flagged.possible_cause == f"possibly due to missing value sets {MISSING_OID}"
    assert not run.ok  # never counted as matched


def test_missing_value_set_the_indicator_does_not_use_explains_nothing(make_deck: DeckFactory) -> None:
    cases = standard_cases()
    cases[1].expected = counts(1, num=1)
    deck, settings = make_deck(cases, missing=(MISSING_OID,))
    run = run_deck(deck, settings)
    assert run.missing_valuesets == [MISSING_OID]
    assert run.referenced_missing == []
    assert len(run.mismatches) == 1 and run.unmatchable == []


def test_unreadable_case_fails_the_run(make_deck: DeckFactory) -> None:
    deck, settings = make_deck([*standard_cases(), Case("IPFail-NoReport", counts(0), with_report=False)])
    run = run_deck(deck, settings)
    assert len(run.matched) == 3 and run.cases == 4
    assert not run.ok
