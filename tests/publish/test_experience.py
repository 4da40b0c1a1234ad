"""The report's patient-experience part: survey scores, SERVQUAL gaps, the complaints
register and the comments, rendered through the real templates."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from pipelines.config import PROJECT_ROOT
from pipelines.publish import build_report_context, render_report
from pipelines.publish.experience import MIN_RESPONSES, FeedbackData
from pipelines.surveys import load_surveys
from pipelines.tables import TABLES, conform

from .conftest import PERIOD

TEMPLATES = PROJECT_ROOT / "reports"
HOSTILE = "<script>alert('x')</script> the nurse ignored me"
NAMED = "Thank you to Dr Okafor, call me on 07700 900123 if you need to"


def _typed(table: str, rows: list[dict]) -> pd.DataFrame:
    df, bad = conform(pd.DataFrame(rows), TABLES[table])
    assert (bad == "").all(), bad
    return df


def _surveys() -> pd.DataFrame:
    rows = []
    for i in range(2 * MIN_RESPONSES):
        ward = "W1" if i % 2 else "W2"
        rows.append(
            {
                "response_id": f"r{i}", "facility_id": "F1", "ward_id": ward,
                "completed_on": f"{PERIOD}-{1 + i % 27:02d}",
                "recommend": 4 if i % 3 else 2, "overall_rating": 9 if i % 3 else 5,
                # W2 perceives reliability well below what its patients expect
                "q_reliability": 2 if ward == "W2" else 4, "e_reliability": 5,
                "q_empathy": 4, "e_empathy": 4 if i % 5 else None,
                "comment": HOSTILE if i == 0 else NAMED if i == 1 else "Lovely staff" if i == 2 else
                "Parking was hard to find" if i == 3 else None,
            }
        )  # fmt: skip
    return _typed("survey_responses", rows)


def _complaints() -> pd.DataFrame:
    rows = [
        {"complaint_id": "c1", "facility_id": "F1", "ward_id": "W1", "category": "communication", "channel": "email",
         "received_at": f"{PERIOD}-03T10:00:00", "status": "open", "complainant_id": "p1",
         "description": "Nobody called me back"},
        {"complaint_id": "c2", "facility_id": "F1", "ward_id": "W1", "category": "communication", "channel": "phone",
         "received_at": f"{PERIOD}-10T10:00:00", "resolved_at": f"{PERIOD}-20T10:00:00", "status": "resolved",
         "outcome": "upheld", "complainant_id": "p1"},
        {"complaint_id": "c3", "facility_id": "F1", "ward_id": "W2", "category": "waiting_times", "channel": "email",
         "received_at": f"{PERIOD}-12T10:00:00", "status": "acknowledged", "complainant_id": "p2"},
    ]  # fmt: skip
    return _typed("complaints", rows)


def feedback_of(theme_labels: dict[str, str]) -> FeedbackData:
    """Four survey returns and a complaint with their labels (shared with test_i18n)."""
    labels = pd.DataFrame(
        {
            "source_table": ["survey_responses"] * 4 + ["complaints"],
            "record_id": ["r0", "r1", "r2", "r3", "c1"],
            "themes": ["staff_attitude", "staff_attitude;communication", "staff_attitude", "access", "communication"],
            "sentiment": ["negative", "negative", "positive", "negative", "negative"],
        }
    )
    return FeedbackData(
        surveys=_surveys(),
        complaints=_complaints(),
        patient_days=pd.DataFrame({"facility_id": ["F1"], "patient_days": [2000.0]}),
        labels=labels,
        definitions=load_surveys(PROJECT_ROOT / "surveys"),
        theme_labels=theme_labels,
    )


@pytest.fixture(scope="module")
def feedback() -> FeedbackData:
    return feedback_of({"staff_attitude": "Staff attitude", "communication": "Communication"})


@pytest.fixture(scope="module")
def ctx(indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards, feedback):
    return build_report_context(
        period=PERIOD, indicators=indicators, results=results, subjects=subjects, reconciliation=reconciliation,
        checks=checks, quarantine=quarantine, facilities=facilities, wards=wards, generated_at="2026-11-02 06:00",
        feedback=feedback,
    )  # fmt: skip


@pytest.fixture(scope="module")
def html(ctx, tmp_path_factory) -> str:
    return render_report(ctx, TEMPLATES, tmp_path_factory.mktemp("px")).read_text(encoding="utf-8")


def test_the_part_follows_the_indicator_sections(ctx) -> None:
    parts = ctx["parts"]
    assert parts.index("indicators") < parts.index("patient_experience") < parts.index("data_quality")


def test_servqual_gap_and_shortfall(ctx) -> None:
    sq = ctx["patient_experience"]["servqual"]
    rel = next(r for r in sq["system"] if r["dimension"] == "Reliability")
    # half the returns perceive 2 and half 4 against an expectation of 5: gap -2
    assert rel["gap"] == "-2.00" and rel["shortfall"]
    ward = next(r for r in sq["wards"] if r["dimension"] == "Reliability")
    assert ward["ward"] == "Ward Two" and ward["gap"] == "-3.00"


def test_global_items_box_scores(ctx) -> None:
    rows = ctx["patient_experience"]["global_items"]
    rec = next(r for r in rows if r["facility"] == "All facilities" and r["question"] == "recommend")
    assert rec["n"] == 2 * MIN_RESPONSES and rec["top"] == "67%" and rec["bottom"] == "33%"


def test_complaints_register(ctx) -> None:
    c = ctx["patient_experience"]["complaints"]
    assert c["received"] == 3 and c["rate"] == "1.50"  # 3 per 2,000 patient-days
    assert [(r["label"], r["n"]) for r in c["by_category"]] == [("Communication", 2), ("Waiting times", 1)]
    assert c["open_at_end"] == 2  # c2 was resolved in the month
    assert (c["repeat_complainants"], c["complainants"]) == (1, 2)


def test_comments_are_escaped_and_masked(html) -> None:
    assert "<script>alert('x')</script>" not in html
    assert "&lt;script&gt;alert(" in html  # shown as text
    assert "Okafor" not in html and "07700 900123" not in html
    block = re.search(r'<section id="patient-experience".*?</section>', html, flags=re.S)
    assert block and "[name]" in block.group(0) and "[phone]" in block.group(0)


def test_complaint_texts_and_rare_themes_are_counted_not_quoted(ctx, html) -> None:
    sources = {t["label"]: t for t in ctx["patient_experience"]["themes"]}
    assert set(sources) == {"Survey comments", "Complaint texts"}
    complaints = sources["Complaint texts"]
    assert complaints["themes"][0]["id"] == "communication" and complaints["themes"][0]["examples"] == []
    assert "Nobody called me back" not in html
    access = next(t for t in sources["Survey comments"]["themes"] if t["id"] == "access")
    assert access["n"] == 1 and access["examples"] == []  # one mention: not quoted
    assert "Parking was hard to find" not in html
    staff = next(t for t in sources["Survey comments"]["themes"] if t["id"] == "staff_attitude")
    assert staff["n"] == 3 and len(staff["examples"]) == 2  # the two negative ones


def test_stars_band_the_linear_mean_by_the_survey_files_cut_points(ctx) -> None:
    rows = ctx["patient_experience"]["global_items"]
    rec = next(r for r in rows if r["facility"] == "All facilities" and r["question"] == "recommend")
    # two thirds "definitely yes" (100), one third "probably no" (33.3): 77.8, between the 70 and 80 cut points
    assert rec["linear"] == "78" and rec["stars"] == 3


def test_servqual_per_facility(ctx) -> None:
    facilities = ctx["patient_experience"]["servqual"]["facilities"]
    assert {r["facility"] for r in facilities} == {"General Hospital"}
