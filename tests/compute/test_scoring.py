"""Aggregation: counts, eCQM scores, intervals and status per facility and stratum."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.compute import aggregate, compute_period, load_indicators, load_valuesets
from pipelines.tables import ALL_FACILITIES, INDICATOR_RESULTS, INDICATOR_SUBJECTS, empty_frame
from tests.compute._frames import frames

ROOT = Path(__file__).resolve().parents[2] / "indicators"
# The CMS eCQMs need VSAC value sets and are covered by tests/conformance.
INDICATORS = {i.id: i for i in load_indicators(ROOT) if not i.cms_id}
VALUESETS = load_valuesets([ROOT / "valuesets"])


def _subjects(indicator_id: str, rows: list[dict]) -> pd.DataFrame:
    base = {
        "indicator_id": indicator_id,
        "period": "2026-03",
        "facility_id": "f1",
        "ward_id": "w1",
        "service": "med",
        "initial_population": True,
        "denominator": True,
        "denominator_exclusion": False,
        "numerator": False,
        "numerator_exclusion": False,
    }
    df = pd.DataFrame([{**base, "subject_id": f"s{i}", **r} for i, r in enumerate(rows)])
    return pd.concat([empty_frame(INDICATOR_SUBJECTS), df], ignore_index=True).astype(INDICATOR_SUBJECTS.dtypes)


def _overall(results: pd.DataFrame, facility: str = ALL_FACILITIES) -> pd.Series:
    hit = results[(results.facility_id == facility) & (results.stratifier == "overall")]
    assert len(hit) == 1
    return hit.iloc[0]


def test_one_of_four_is_a_quarter_with_wilson_interval() -> None:
    subj = _subjects("recommend_top_box", [{"numerator": True}, {}, {}, {}])
    row = _overall(aggregate(INDICATORS["recommend_top_box"], subj, "2026-03"))
    ref = stats.binomtest(1, 4).proportion_ci(method="wilson")
    assert (row.denominator, row.numerator, row.measure_score) == (4, 1, 0.25)
    assert (row.ci_low, row.ci_high) == pytest.approx((ref.low, ref.high))
    assert row.status == "red"  # 0.25 against 0.75: the whole interval is below the target


def test_exclusions_leave_the_proportion_denominator_and_numerator_exclusions_the_numerator() -> None:
    rows = [
        {"numerator": True},
        {"numerator": True, "numerator_exclusion": True},
        {},
        {"denominator_exclusion": True},
    ]
    subj = _subjects("pressure_injury_hospital_acquired", rows)
    row = _overall(aggregate(INDICATORS["pressure_injury_hospital_acquired"], subj, "2026-03"))
    assert row.measure_score == pytest.approx(1 / 3)  # (2 - 1) / (4 - 1)


def test_ratio_is_events_per_thousand_exposure_days_with_garwood_interval() -> None:
    rows = [
        {"numerator": True, "numerator_events": 2, "denominator_value": 400.0},
        {"numerator_events": 0, "denominator_value": 600.0},
        {"denominator_exclusion": True, "denominator_value": pd.NA},
    ]
    subj = _subjects("falls_with_injury", rows)
    row = _overall(aggregate(INDICATORS["falls_with_injury"], subj, "2026-03"))
    assert (row.numerator_events, row.denominator_value, row.measure_score) == (2, 1000.0, 2.0)
    assert row.ci_low == pytest.approx(stats.chi2.ppf(0.025, 4) / 2)
    assert row.ci_high == pytest.approx(stats.chi2.ppf(0.975, 6) / 2)
    assert row.status == "green"  # exactly on target (2.0, lower is better)


def test_continuous_median_over_measure_population_minus_exclusions() -> None:
    rows = [{"observation": v} for v in (3.0, 10.0, 40.0)] + [{"denominator_exclusion": True}]
    subj = _subjects("complaint_days_to_resolve", rows)
    row = _overall(aggregate(INDICATORS["complaint_days_to_resolve"], subj, "2026-03"))
    assert row.measure_score == 10.0 and (row.ci_low, row.ci_high) == (3.0, 40.0)
    assert row.status == "green"


def test_rows_for_every_facility_and_stratum_and_unknowns_are_kept() -> None:
    rows = [
        {"numerator": True},
        {"facility_id": "f2", "ward_id": "w9"},
        {"facility_id": pd.NA, "ward_id": pd.NA},
    ]
    res = aggregate(INDICATORS["recommend_top_box"], _subjects("recommend_top_box", rows), "2026-03")
    assert list(res.columns) == INDICATOR_RESULTS.column_names
    assert res.dtypes.astype(str).to_dict() == INDICATOR_RESULTS.dtypes
    assert res.facility_id.iloc[0] == ALL_FACILITIES and res.stratifier.iloc[0] == "overall"
    assert set(res.facility_id) == {ALL_FACILITIES, "f1", "f2", "unknown"}
    wards = res[(res.facility_id == ALL_FACILITIES) & (res.stratifier == "ward_id")]
    assert dict(zip(wards.stratum, wards.denominator, strict=True)) == {"w1": 1, "w9": 1, "unknown": 1}
    for fac in ("f1", "f2", "unknown"):  # every subject is in exactly one facility row
        assert _overall(res, fac).initial_population == 1


def test_zero_denominator_is_grey_with_no_score() -> None:
    subj = _subjects("recommend_top_box", [{"denominator": False}])
    row = _overall(aggregate(INDICATORS["recommend_top_box"], subj, "2026-03"))
    assert row.initial_population == 1 and row.denominator == 0
    assert pd.isna(row.measure_score) and pd.isna(row.ci_low) and row.status == "grey"


def test_no_subjects_still_reports_the_system_row() -> None:
    for ind in INDICATORS.values():
        res = aggregate(ind, empty_frame(INDICATOR_SUBJECTS), "2026-03")
        assert len(res) == 1 and res.status.iloc[0] == "grey" and res.initial_population.iloc[0] == 0


def test_compute_period_runs_every_indicator_end_to_end() -> None:
    data = frames(
        encounters=[
            {
                "encounter_id": f"e{i}",
                "patient_id": f"p{i}",
                "class_code": "IMP",
                "start_at": "2026-03-01",
                "end_at": "2026-03-05",
                "facility_id": "f1",
                "ward_id": "w1",
                "service": "med",
            }
            for i in range(4)
        ],
        adverse_events=[
            {
                "adverse_event_id": "a1",
                "patient_id": "p0",
                "encounter_id": "e0",
                "code": "217082002",
                "code_system": "http://snomed.info/sct",
                "harm_level": "severe",
                "occurred_at": "2026-03-02T10:00:00",
            }
        ],
    )
    subjects, results = compute_period(list(INDICATORS.values()), data, "2026-03", VALUESETS)
    assert list(subjects.columns) == INDICATOR_SUBJECTS.column_names
    assert set(results.indicator_id) == set(INDICATORS)
    falls = results[
        (results.indicator_id == "falls_with_injury")
        & (results.facility_id == ALL_FACILITIES)
        & (results.stratifier == "overall")
    ].iloc[0]
    assert falls.measure_score == pytest.approx(1 / 16 * 1000)  # 1 fall over 4 stays x 4 bed days
    assert not math.isnan(falls.ci_high) and np.isfinite(falls.ci_high)
