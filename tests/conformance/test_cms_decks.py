"""The four CMS eCQM test decks (../shared/data/ecqm-qicore-2025) through the real pipeline.

Which measures must pass is read from ``required.json`` (a list of deck folder names):
the lead adds a measure once its indicator lands, and from then on a missing indicator
or any mismatching case FAILS (never skips). ``unmatchable.json`` maps a deck to the case
files allowed to mismatch, each with the evidence why no faithful implementation can
match it (for CMS1017: test data that contradicts the published CQL or another case of
the same deck); a listed case that starts matching must be removed from the list.
``baseline.json`` (written by ``python -m pipelines.conformance.baseline``) lists cases
known to match: any listed case that stops matching fails, required or not.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from pipelines.config import load_settings
from pipelines.conformance import ConformanceRun, run_deck
from pipelines.conformance.baseline import load_baseline, regressions

pytestmark = pytest.mark.shared_data

HERE = Path(__file__).resolve().parent
DECKS = [
    "CMS108FHIRVTEProphylaxis",
    "CMS165FHIRControllingHighBloodPressure",
    "CMS826FHIRHHPI",
    "CMS1017FHIRHHFI",
]


def _json(name: str) -> object:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


REQUIRED = _json("required.json")
UNMATCHABLE = _json("unmatchable.json")
BASELINE = load_baseline(HERE / "baseline.json")


def test_committed_lists_are_well_formed() -> None:
    assert isinstance(REQUIRED, list) and set(REQUIRED) <= set(DECKS), REQUIRED
    assert isinstance(UNMATCHABLE, dict) and set(UNMATCHABLE) <= set(DECKS)
    for deck, cases in UNMATCHABLE.items():
        assert isinstance(cases, dict) and all(isinstance(v, str) and v for v in cases.values()), deck
    assert set(BASELINE) <= set(DECKS)


@cache
def _run(folder: Path) -> ConformanceRun:
    return run_deck(folder, load_settings())


def _describe(run: ConformanceRun, cases: list[str]) -> str:
    by_case = {r.case: r for r in run.results}
    lines = []
    for case in cases:
        r = by_case.get(case)
        if r is None:
            lines.append(f"{case}: not in the deck")
            continue
        pops = ", ".join(f"{c} {r.expected[c]}/{r.computed.get(c, 0)}" for c in r.differing)
        lines.append(f"{case}: expected/computed {pops}")
    return "\n".join(lines)


@pytest.mark.parametrize("deck", DECKS)
def test_required_measure_matches_every_case(deck: str, shared_data: Path) -> None:
    if deck not in REQUIRED:
        pytest.skip(f"{deck} is not yet listed in tests/conformance/required.json")
    run = _run(shared_data / "ecqm-qicore-2025" / deck)  # no indicator => ConfigError => FAIL
    assert not run.problems, run.problems
    allowed = UNMATCHABLE.get(deck, {})
    unexpected = [r.case for r in run.mismatches if r.case not in allowed]
    assert not unexpected, f"{len(unexpected)} case(s) of {deck} mismatch:\n{_describe(run, unexpected)}"
    now_matching = sorted(set(allowed) - {r.case for r in run.mismatches})
    assert not now_matching, f"listed as unmatchable but matching now (remove from unmatchable.json): {now_matching}"


@pytest.mark.parametrize("deck", DECKS)
def test_baseline_cases_still_match(deck: str, shared_data: Path) -> None:
    if not BASELINE.get(deck):
        pytest.skip(f"no baseline cases for {deck} in tests/conformance/baseline.json")
    run = _run(shared_data / "ecqm-qicore-2025" / deck)
    lost = regressions(run, BASELINE)
    assert not lost, f"{len(lost)} baseline case(s) of {deck} no longer match:\n{_describe(run, lost)}"
