"""Exports that never carry a wrong or dangerous cell (issue 11, defects 2, 3, 7, 17)."""

from __future__ import annotations

import csv
import io

import pytest

from pipelines.export import export_csv, export_measure_reports
from pipelines.export.csv_export import safe_cell

from .conftest import PERIOD, bundle_reports, row, typed


def _rows(path) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


@pytest.mark.parametrize(
    "value", ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x","y")', "@SUM(A1:A2)", "+1+2", "-2+3", "\t=1", "\r=1"]
)
def test_a_cell_that_could_run_as_a_formula_is_neutralised(value: str, indicators, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Regression (defect 3): a ward_id of =cmd|' /C calc'!A0 became a live formula."""
    results = typed(
        [
            row("vte", "ALL", "overall", "all", 200, 120),
            row("vte", "ALL", "ward", value, 200, 120),
            row("vte", value, "overall", "all", 200, 120),
            row("vte", value, "ward", value, 200, 120),
            row("days", "ALL", "overall", "all", 40, 0, score=18.5, target=20.0),
        ]
    )
    rows = _rows(export_csv(results, indicators, PERIOD, tmp_path)[0])
    cells = [v for r in rows for v in r.values()]
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells if c)
    shown = "'" + value.replace("\r", " ")  # a line break inside a cell would split the row
    assert sum(c == shown for c in cells) == 4
    assert safe_cell("0.500000") == "0.500000" and safe_cell("ward 3") == "ward 3"


def test_a_suppressed_score_takes_its_status_with_it(indicators, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Regression (defect 7): where the score was blanked the RAG status stayed: a row
    pinned at 100% read green, giving the score away."""
    results = typed(
        [
            row("vte", "ALL", "overall", "all", 40, 34, status="amber"),
            row("vte", "F1", "overall", "all", 7, 7, status="green"),  # 7/7 = 100%: suppressed
            row("vte", "F2", "overall", "all", 33, 27, status="amber"),
            row("days", "ALL", "overall", "all", 40, 0, score=18.5, target=20.0),
        ]
    )
    rows = {
        r["facility_id"]: r
        for r in _rows(export_csv(results, indicators, PERIOD, tmp_path)[0])
        if r["indicator_id"] == "vte"
    }
    assert rows["F1"]["measure_score"] == "" and rows["F1"]["status"] == ""
    assert "status" in rows["F1"]["suppressed"].split(";")
    assert rows["F2"]["status"] == "" and rows["F2"]["numerator"] == ""  # complementary: F2 = ALL - F1
    assert rows["ALL"]["status"] == "amber"


def test_provisional_and_not_computed_rows_say_so(indicators, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Regressions (defects 2 and 17): an indicator not computed this time kept its old
    figure in the CSV and the MeasureReport; a month still open to revision was exported
    as final and graded."""
    results = typed(
        [
            row("vte", "ALL", "overall", "all", 200, 120, state="provisional", reason="open to revision until 2026-12"),
            row("days", "ALL", "overall", "all", 0, 0, score=None, target=20.0, state="not_computed",
                reason="value sets not supplied"),
        ]
    )  # fmt: skip
    rows = {r["indicator_id"]: r for r in _rows(export_csv(results, indicators, PERIOD, tmp_path)[0])}
    assert (rows["vte"]["state"], rows["vte"]["status"]) == ("provisional", "")
    assert rows["vte"]["measure_score"] == "0.600000"  # shown, not graded
    assert rows["days"]["state"] == "not_computed" and rows["days"]["state_reason"] == "value sets not supplied"
    assert rows["days"]["denominator"] == "" and rows["days"]["measure_score"] == ""
    reports = bundle_reports(export_measure_reports(results, indicators, PERIOD, tmp_path))
    assert reports["vte"]["status"] == "pending"
    days = reports["days"]
    assert days["status"] == "error" and "measureScore" not in days["group"][0]
    assert all("count" not in p and p["_count"]["extension"][0]["valueCode"] == "not-performed"
               for p in days["group"][0]["population"])  # fmt: skip
