"""Hand-made indicator results for the export room: one month, two facilities, a ward stratifier."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pipelines.compute.model import Indicator
from pipelines.tables import INDICATOR_RESULTS
from tests.catalogue import make_indicator

PERIOD = "2026-10"


def row(
    iid: str,
    facility: str,
    stratifier: str,
    stratum: str,
    den: int,
    num: int,
    *,
    ip: int | None = None,
    excl: int = 0,
    score: float | None = None,
    status: str = "green",
    target: float = 0.9,
    events: int | None = None,
    exposure: float | None = None,
    period: str = PERIOD,
    state: str = "final",
    reason: str | None = None,
) -> dict[str, Any]:
    if score is None and den:
        score = num / den
    return {
        "indicator_id": iid,
        "period": period,
        "facility_id": facility,
        "stratifier": stratifier,
        "stratum": stratum,
        "initial_population": den if ip is None else ip,
        "denominator": den,
        "denominator_exclusion": excl,
        "numerator": num,
        "numerator_exclusion": 0,
        "numerator_events": events,
        "denominator_value": exposure,
        "measure_score": score,
        "ci_low": None if score is None else score * 0.9,
        "ci_high": None if score is None else min(score * 1.1, 1.0),
        "target": target,
        "status": status if state == "final" else None,
        "censored": 0,
        "state": state,
        "state_reason": reason,
    }


def typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for name, dtype in INDICATOR_RESULTS.dtypes.items():
        frame[name] = frame[name].astype(dtype)
    return frame


@pytest.fixture
def indicators() -> list[Indicator]:
    return [
        make_indicator(
            "vte",
            title="VTE prophylaxis",
            domain="guideline_adherence",
            scoring="proportion",
            improvement="increase",
            target=0.9,
            unit="%",
            multiplier=100,
            stratifiers=["ward"],
            cms_id="CMS108FHIRVTEProphylaxis",
            measure_url="https://madie.cms.gov/Measure/CMS108FHIRVTEProphylaxis",
        ),
        make_indicator(
            "days",
            title="Days to resolve complaints",
            domain="responsiveness",
            scoring="continuous",
            improvement="decrease",
            target=20.0,
            unit="days",
        ),
    ]


@pytest.fixture
def results() -> pd.DataFrame:
    """VTE: F1 has wards W1 (numerator 5: primary suppression) and W2; F2 has one ward.

    System row = F1 + F2; F1 overall = W1 + W2. A month outside the period is included
    to prove it is ignored."""
    return typed(
        [
            row("vte", "ALL", "overall", "all", 200, 120),
            row("vte", "ALL", "ward", "W1", 60, 5, score=5 / 60, status="red"),
            row("vte", "ALL", "ward", "W2", 60, 55),
            row("vte", "ALL", "ward", "W3", 80, 60),
            row("vte", "F1", "overall", "all", 120, 60, status="red"),
            row("vte", "F1", "ward", "W1", 60, 5, status="red"),
            row("vte", "F1", "ward", "W2", 60, 55),
            row("vte", "F2", "overall", "all", 80, 60),
            row("vte", "F2", "ward", "W3", 80, 60),
            row("days", "ALL", "overall", "all", 40, 0, score=18.5, target=20.0),
            row("days", "F1", "overall", "all", 33, 0, score=17.0, target=20.0),
            row("days", "F2", "overall", "all", 7, 0, score=30.0, target=20.0, status="red"),
            row("vte", "ALL", "overall", "all", 3, 3, period="2026-09"),
        ]
    )


def bundle_reports(paths: list[Any]) -> dict[str, dict[str, Any]]:
    """The MeasureReports of the one Bundle a MeasureReport export writes, by report id
    without its period suffix (``vte-2026-10`` -> ``vte``)."""
    import json

    (path,) = paths
    bundle = json.loads(path.read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    reports = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MeasureReport"]
    return {r["id"].rsplit("-", 2)[0] if r["id"].count("-") >= 2 else r["id"]: r for r in reports}
