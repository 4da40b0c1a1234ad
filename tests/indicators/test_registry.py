"""The shipped catalogue: every indicator parses and every population it declares is exercised."""

from __future__ import annotations

import pytest

from pipelines.compute import load_indicators
from tests.indicators._cases import CASES_DIR, INDICATORS_DIR, all_cases

INDICATORS = load_indicators(INDICATORS_DIR)
CASES = all_cases()


def test_catalogue_holds_the_shipped_indicators() -> None:
    assert [i.id for i in INDICATORS] == sorted(
        [
            "cms1017_hospital_harm_falls_with_injury",
            "cms108_vte_prophylaxis",
            "cms165_controlling_high_blood_pressure",
            "cms826_hospital_harm_pressure_injury",
            "complaint_ack_2_working_days",
            "complaint_days_to_resolve",
            "complaint_days_to_resolve_p90",
            "complaint_overdue_backlog",
            "complaint_resolved_25_working_days",
            "falls_with_injury",
            "pressure_injury_hospital_acquired",
            "readmission_30d_unplanned",
            "recommend_top_box",
            "vte_prophylaxis",
        ]
    )


@pytest.mark.parametrize("indicator", INDICATORS, ids=[i.id for i in INDICATORS])
def test_every_population_has_a_case_where_a_subject_meets_it(indicator) -> None:
    cases = [c for c in CASES if c.indicator_id == indicator.id]
    assert len(cases) >= 4, f"{indicator.id}: only {len(cases)} case files"
    met = {key for c in cases for exp in c.expect.values() for key, v in exp.items() if v is True}
    missed = {key for c in cases for exp in c.expect.values() for key, v in exp.items() if v is False}
    for pop in indicator.populations:
        assert pop.value in met, f"{indicator.id}: no case puts a subject in {pop.value}"
        assert pop.value in missed, f"{indicator.id}: no case keeps a subject out of {pop.value}"


@pytest.mark.parametrize("indicator", INDICATORS, ids=[i.id for i in INDICATORS])
def test_metadata_is_complete_and_json_able(indicator) -> None:
    import json

    meta = json.loads(json.dumps(indicator.metadata()))
    for key in (
        "id",
        "title",
        "description",
        "domain",
        "owner",
        "scoring",
        "basis",
        "improvement",
        "target",
        "unit",
        "multiplier",
        "aggregate",
        "stratifiers",
        "cms_id",
        "populations",
    ):
        assert key in meta
    assert set(meta["populations"]) == {p.value for p in indicator.populations}
    assert all(sentence.strip() for sentence in meta["populations"].values())


def test_case_folders_name_existing_indicators() -> None:
    ids = {i.id for i in INDICATORS}
    assert {p.name for p in CASES_DIR.iterdir() if p.is_dir()} <= ids


def test_case_files_are_named_series_dash_scenario() -> None:
    series = ("ipp", "denom", "denex", "numer", "numex", "msrpopl", "msrpoplex")
    for case in CASES:
        prefix, _, scenario = case.path.stem.partition("-")
        assert prefix.rsplit("_", 1)[0] in series and prefix.rsplit("_", 1)[1] in ("pass", "fail"), case.name
        assert scenario, case.name
