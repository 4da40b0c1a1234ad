from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.errors import CareQIError
from pipelines.publish import build_report_context
from pipelines.publish.formatting import change_vs_previous, format_ci, format_value
from pipelines.publish.sections import CASE_LIMIT
from pipelines.tables import INDICATOR_RESULTS, INDICATOR_SUBJECTS
from tests.catalogue import make_indicator, with_fields

from .conftest import PERIOD, subject, typed


@pytest.fixture
def ctx(indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards):
    return build_report_context(
        period=PERIOD,
        indicators=indicators,
        results=results,
        subjects=subjects,
        reconciliation=reconciliation,
        checks=checks,
        quarantine=quarantine,
        facilities=facilities,
        wards=wards,
        generated_at="2026-11-02T06:00:00Z",
    )


def section(ctx, iid):
    return next(s for s in ctx["indicators"] if s["id"] == iid)


def test_scorecard_groups_indicators_by_domain_in_committee_order(ctx):
    assert [d["id"] for d in ctx["domains"]] == [
        "patient_safety",
        "guideline_adherence",
        "patient_experience",
    ]
    assert [r["id"] for d in ctx["domains"] for r in d["rows"]] == ["falls", "vte", "fft"]
    vte = ctx["domains"][1]["rows"][0]
    assert vte["value_full"] == "80.0%"
    assert vte["ci_text"] == "72.0–88.0%"
    assert vte["target_short"] == "95.0%"
    assert vte["status"] == "red" and vte["status_label"] == "Off target"
    assert len(vte["spark"]) == 12 and vte["spark"][-3:] == [0.90, 0.93, 0.80]


def test_values_are_formatted_in_the_indicator_unit(indicators):
    vte, falls, _ = indicators
    assert format_value(0.8765, vte) == "87.6%"
    assert format_value(0.8, falls) == "0.80 per 1,000 patient-days"
    assert format_value(12.345, make_indicator("los", scoring="continuous", unit="days")) == "12.3 days"
    assert format_value(None, vte) == "–"


def test_change_is_called_better_when_it_moves_the_right_way(ctx, indicators):
    falls = section(ctx, "falls")["change"]
    assert falls["direction"] == "better" and falls["text"].startswith("▼ -0.38")
    vte = section(ctx, "vte")["change"]
    assert vte["direction"] == "worse" and vte["text"] == "▼ -13.0 pp"
    assert change_vs_previous(0.5, None, indicators[0])["direction"] == "none"
    assert change_vs_previous(0.50001, 0.5, indicators[0])["direction"] == "same"


def test_rag_counts_use_the_system_row_and_missing_results_are_grey(
    indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards
):
    extra = [*indicators, with_fields(indicators[2], id="silent", title="No results yet")]
    ctx = build_report_context(
        period=PERIOD,
        indicators=extra,
        results=results,
        subjects=subjects,
        reconciliation=reconciliation,
        checks=checks,
        quarantine=quarantine,
        facilities=facilities,
        wards=wards,
        generated_at="x",
    )
    assert ctx["rag_counts"] == {"green": 1, "amber": 0, "red": 2, "grey": 1, "provisional": 0, "not_computed": 0}
    assert [a["id"] for a in ctx["attention"]] == ["falls", "vte"]


def test_facility_and_stratum_breakdowns_use_display_names(ctx):
    vte = section(ctx, "vte")
    assert [f["facility"] for f in vte["facilities"]] == ["<script>alert(1)</script>", "General Hospital"]
    assert vte["facilities"][1]["numerator_text"] == "45" and vte["facilities"][1]["denominator_text"] == "50"
    assert vte["stratifiers"][0]["label"] == "Ward"
    assert vte["stratifiers"][0]["rows"][0]["label"] == "Ward One"


def test_ratio_counts_show_events_and_exposure(ctx):
    falls = section(ctx, "falls")
    assert falls["current"]["numerator_text"] == "1"
    assert falls["current"]["denominator_text"] == "1,250"
    assert {e["label"] for e in falls["extra_counts"]} == {
        "Events (ratio numerator)",
        "Exposure (ratio denominator)",
    }


def test_lower_is_better_counts_the_numerator_cases_by_ward_without_naming_them(ctx):
    cases = section(ctx, "falls")["cases"]
    assert cases["rows"] == [{"facility": "General Hospital", "ward": "Ward One", "count": 1, "count_text": "1"}]
    assert cases["total"] == 1
    assert "enc-fall" not in repr(section(ctx, "falls"))


def test_higher_is_better_lists_missed_opportunities_without_exclusions(ctx):
    cases = section(ctx, "vte")["cases"]
    assert cases["total"] == 2 and cases["more"] == 0
    assert sum(r["count"] for r in cases["rows"]) == 2


def test_indicator_on_target_has_no_case_list(ctx):
    assert section(ctx, "fft")["cases"] is None


def test_case_list_is_capped_and_counts_the_rest(
    indicators, results, reconciliation, checks, quarantine, facilities, wards
):
    many = typed([subject("vte", f"enc-{i:03d}") for i in range(CASE_LIMIT + 7)], INDICATOR_SUBJECTS)
    ctx = build_report_context(
        period=PERIOD,
        indicators=indicators,
        results=results,
        subjects=many,
        reconciliation=reconciliation,
        checks=checks,
        quarantine=quarantine,
        facilities=facilities,
        wards=wards,
        generated_at="x",
    )
    cases = section(ctx, "vte")["cases"]
    assert cases["total"] == CASE_LIMIT + 7 and sum(r["count"] for r in cases["rows"]) == CASE_LIMIT + 7


def test_continuous_cases_are_those_worse_than_target_worst_first(
    results, reconciliation, checks, quarantine, facilities, wards
):
    ind = make_indicator(
        "days",
        title="Days to resolve",
        domain="responsiveness",
        scoring="continuous",
        improvement="decrease",
        target=20.0,
        unit="days",
    )
    res = typed(
        [
            {
                **results.iloc[0].to_dict(),
                "indicator_id": "days",
                "period": PERIOD,
                "measure_score": 25.0,
                "target": 20.0,
                "status": "red",
            }
        ],
        INDICATOR_RESULTS,
    )
    subs = typed(
        [{**subject("days", sid), "observation": obs} for sid, obs in [("c1", 10.0), ("c2", 40.0), ("c3", 21.0)]],
        INDICATOR_SUBJECTS,
    )
    ctx = build_report_context(
        period=PERIOD,
        indicators=[ind],
        results=res,
        subjects=subs,
        reconciliation=reconciliation,
        checks=checks,
        quarantine=quarantine,
        facilities=facilities,
        wards=wards,
        generated_at="x",
    )
    assert ctx["indicators"][0]["cases"]["total"] == 2  # c2 and c3 are worse than the target; c1 is not


def test_reconciliation_arithmetic_is_rechecked(ctx):
    dq = ctx["data_quality"]
    assert dq["unbalanced"] == ["patients"]
    patients = next(r for r in dq["reconciliation"] if r["table"] == "patients")
    assert patients["balanced"] is False and patients["difference"] == 1


def test_failed_checks_and_quarantine_reasons(ctx):
    dq = ctx["data_quality"]
    assert [c["check"] for c in dq["failed_checks"]] == ["expect_column_values_to_not_be_null(facility_id)"]
    assert dq["failed_checks"][0]["pct_text"] == "5.00%"
    assert dq["checks_run"] == 2
    assert [(r["reason"], r["count"]) for r in dq["quarantine_reasons"]] == [
        ("facility missing", 5),
        ("end before start", 2),
    ]
    assert dq["quarantine_total"] == 5


def test_context_is_plain_json(ctx):
    text = json.dumps(ctx)
    assert "<svg" not in text
    assert ctx["period_start"] == "2026-10-01" and ctx["period_end"] == "2026-10-31"
    assert ctx["months"][0] == "2025-11" and ctx["months"][-1] == PERIOD
    assert ctx["data_as_of"] == "2026-10-31"


def test_bad_period_is_a_clear_error(indicators, results, subjects, reconciliation, checks, quarantine):
    with pytest.raises(CareQIError, match="YYYY-MM"):
        build_report_context(
            period="Oct 2026",
            indicators=indicators,
            results=results,
            subjects=subjects,
            reconciliation=reconciliation,
            checks=checks,
            quarantine=quarantine,
            facilities={},
            wards={},
            generated_at="x",
        )


def test_duplicate_result_rows_are_refused(indicators, results, subjects, reconciliation, checks, quarantine):
    with pytest.raises(CareQIError, match="more than one row"):
        build_report_context(
            period=PERIOD,
            indicators=indicators,
            results=pd.concat([results, results.iloc[:1]]),
            subjects=subjects,
            reconciliation=reconciliation,
            checks=checks,
            quarantine=quarantine,
            facilities={},
            wards={},
            generated_at="x",
        )


def test_percent_units_with_a_noun_read_naturally():
    ind = make_indicator("vte", scoring="proportion", unit="% of adult inpatient stays", multiplier=100)
    assert format_value(0.912, ind) == "91.2% of adult inpatient stays"
    assert format_ci(0.9, 0.93, ind) == "90.0–93.0%"
