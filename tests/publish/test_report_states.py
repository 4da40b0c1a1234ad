"""The report shows provisional figures ungraded, not-computed indicators as such, and
never crashes on a label from a file (issue 11, defects 2, 14, 17)."""

from __future__ import annotations

from pipelines.config import PROJECT_ROOT
from pipelines.publish import build_report_context, render_report
from pipelines.tables import INDICATOR_RESULTS
from tests.catalogue import with_fields

from .conftest import PERIOD, result, typed

TEMPLATES = PROJECT_ROOT / "reports"


def _ctx(indicators, rows, subjects, reconciliation, checks, quarantine, facilities, wards):  # type: ignore[no-untyped-def]
    return build_report_context(
        period=PERIOD,
        indicators=indicators,
        results=typed(rows, INDICATOR_RESULTS),
        subjects=subjects,
        reconciliation=reconciliation,
        checks=checks,
        quarantine=quarantine,
        facilities=facilities,
        wards=wards,
        generated_at="2026-11-02 06:00",
    )


def _rows() -> list[dict]:
    final_aug = {**result("vte", "2026-08", 0.96, "green", target=0.95), "state": "final"}
    final_sep = {**result("vte", "2026-09", 0.80, "red", target=0.95), "state": "final"}
    provisional = {
        **result("vte", PERIOD, 0.50, "red", target=0.95),
        "status": None,
        "state": "provisional",
        "state_reason": "open to revision until batch 2026-12 is loaded",
    }
    not_computed = {
        **result("fft", PERIOD, None, "grey", den=0, num=0, target=0.9),
        "status": None,
        "state": "not_computed",
        "state_reason": "value sets not supplied (set CAREQI_VALUESET_DIR): x",
    }
    old_fft = {**result("fft", "2026-09", 0.95, "green", target=0.9), "state": "final"}
    return [final_aug, final_sep, provisional, not_computed, old_fft]


def test_a_provisional_month_is_shown_not_graded_and_not_compared(  # type: ignore[no-untyped-def]
    indicators, subjects, reconciliation, checks, quarantine, facilities, wards
) -> None:
    """Regression (defect 17): a month open to revision was graded and compared with final
    months ("on target, -5.3 pp (better)")."""
    ctx = _ctx(indicators, _rows(), subjects, reconciliation, checks, quarantine, facilities, wards)
    vte = next(s for s in ctx["indicators"] if s["id"] == "vte")
    assert vte["current"]["status"] == "provisional" and vte["current"]["value_text"] == "50.0%"
    assert vte["change"]["text"] == "–"
    # Not graded, but 50% is already below the 95% target: its cases still go before
    # reviewers (sections.needs_review), counted by ward, no record named.
    assert vte["cases"] is not None and vte["cases"]["total"] == 2
    assert vte["last_final"]["period"] == "2026-09" and vte["last_final"]["status"] == "red"
    assert vte["trend"][-1]["state"] == "provisional"
    assert "vte" not in [a["id"] for a in ctx["attention"]]
    assert ctx["rag_counts"]["provisional"] == 1


def test_an_indicator_not_computed_says_so_and_shows_no_old_figure(  # type: ignore[no-untyped-def]
    indicators, subjects, reconciliation, checks, quarantine, facilities, wards
) -> None:
    """Regression (defect 2): an indicator not computed this run showed its old value."""
    ctx = _ctx(indicators, _rows(), subjects, reconciliation, checks, quarantine, facilities, wards)
    fft = next(s for s in ctx["indicators"] if s["id"] == "fft")
    assert fft["current"]["status"] == "not_computed"
    assert fft["current"]["value_text"] == "–"
    assert "value sets not supplied" in fft["current"]["state_reason"]


def test_a_unit_with_mathtext_or_markup_renders_as_text(  # type: ignore[no-untyped-def]
    indicators, subjects, reconciliation, checks, quarantine, facilities, wards, tmp_path
) -> None:
    """Regression (defect 14): a unit containing ``$\\badcmd{...$`` crashed ``careqi report``."""
    odd = [with_fields(i, unit="$\\badcmd{x$ per <b>1,000</b>") if i.id == "falls" else i for i in indicators]
    rows = _rows() + [
        result("falls", PERIOD, 0.8, "red", target=0.5, events=1, exposure=1250.0),
        result("falls", "2026-09", 1.1, "red", target=0.5, events=2, exposure=1700.0),
    ]
    ctx = _ctx(odd, rows, subjects, reconciliation, checks, quarantine, facilities, wards)
    html = render_report(ctx, TEMPLATES, tmp_path).read_text(encoding="utf-8")
    assert "<b>1,000</b>" not in html and "&lt;b&gt;1,000&lt;/b&gt;" in html
    assert "badcmd" in html and "Chart unavailable" not in html
