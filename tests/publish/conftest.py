"""Small hand-made inputs for the publish room: two facilities, three months, three indicators."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pipelines.compute.model import Indicator
from pipelines.tables import (
    INDICATOR_RESULTS,
    INDICATOR_SUBJECTS,
    QUARANTINE,
    RECONCILIATION,
    VALIDATION_CHECKS,
    empty_frame,
)
from tests.catalogue import make_indicator

PERIOD = "2026-10"


def typed(rows: list[dict[str, Any]], spec) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for name, dtype in spec.dtypes.items():
        if name not in frame.columns:
            frame[name] = pd.NA
        frame[name] = frame[name].astype(dtype)
    return frame[spec.column_names]


def result(
    iid: str,
    period: str,
    score: float | None,
    status: str,
    *,
    facility: str = "ALL",
    stratifier: str = "overall",
    stratum: str = "all",
    den: int = 100,
    num: int = 10,
    excl: int = 0,
    target: float = 0.5,
    events: int | None = None,
    exposure: float | None = None,
) -> dict:
    return {
        "indicator_id": iid,
        "period": period,
        "facility_id": facility,
        "stratifier": stratifier,
        "stratum": stratum,
        "initial_population": den + excl,
        "denominator": den,
        "denominator_exclusion": excl,
        "numerator": num,
        "numerator_exclusion": 0,
        "numerator_events": events,
        "denominator_value": exposure,
        "measure_score": score,
        "ci_low": None if score is None else score * 0.9,
        "ci_high": None if score is None else score * 1.1,
        "target": target,
        "status": status,
    }


@pytest.fixture(scope="module")
def indicators() -> list[Indicator]:
    return [
        make_indicator(
            "vte",
            title="VTE prophylaxis",
            description="Prophylaxis by day 2.",
            domain="guideline_adherence",
            owner="Medical Director",
            scoring="proportion",
            improvement="increase",
            target=0.95,
            unit="%",
            multiplier=100,
            stratifiers=["ward"],
            populations={"denominator": "Adult inpatients.", "numerator": "Given."},
        ),
        make_indicator(
            "falls",
            title="Falls with harm",
            description="Falls per 1,000 bed days.",
            domain="patient_safety",
            owner="Director of Nursing",
            scoring="ratio",
            improvement="decrease",
            target=0.5,
            unit="per 1,000 patient-days",
            multiplier=1000,
            populations={"numerator": "Falls with moderate harm or worse."},
        ),
        make_indicator(
            "fft",
            title="Would recommend",
            description="FFT.",
            domain="patient_experience",
            owner="Head of Experience",
            scoring="proportion",
            basis="survey_response",
            improvement="increase",
            target=0.9,
            unit="%",
            multiplier=100,
        ),
    ]


@pytest.fixture(scope="module")
def facilities() -> dict[str, str]:
    return {"F1": "General Hospital", "F2": "<script>alert(1)</script>"}


@pytest.fixture(scope="module")
def wards() -> dict[str, str]:
    return {"W1": "Ward One", "W2": "Ward Two"}


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    rows = [
        result("vte", "2026-08", 0.90, "amber", target=0.95),
        result("vte", "2026-09", 0.93, "amber", target=0.95),
        result("vte", PERIOD, 0.80, "red", num=80, target=0.95),
        result("vte", PERIOD, 0.70, "red", facility="F2", num=35, den=50, target=0.95),
        result("vte", PERIOD, 0.90, "amber", facility="F1", num=45, den=50, target=0.95),
        result("vte", PERIOD, 0.75, "red", stratifier="ward", stratum="W1", num=30, den=40, target=0.95),
        result("falls", "2026-09", 0.0012, "red", target=0.5, events=2, exposure=1700.0),
        result("falls", PERIOD, 0.0008, "red", target=0.5, events=1, exposure=1250.0),
        result("fft", "2026-09", 0.91, "green", target=0.9),
        result("fft", PERIOD, 0.92, "green", target=0.9),
    ]
    # ratio scores are already per 1,000: rescale the synthetic ones
    for r in rows:
        if r["indicator_id"] == "falls":
            r["measure_score"] = r["numerator_events"] / r["denominator_value"] * 1000
            r["ci_low"], r["ci_high"] = r["measure_score"] * 0.5, r["measure_score"] * 2
    return typed(rows, INDICATOR_RESULTS)


def subject(
    iid: str,
    sid: str,
    *,
    fac: str = "F1",
    ward: str = "W1",
    den: bool = True,
    num: bool = False,
    excl: bool = False,
    events: int | None = None,
) -> dict:
    return {
        "indicator_id": iid,
        "period": PERIOD,
        "subject_id": sid,
        "patient_id": "p-" + sid,
        "facility_id": fac,
        "ward_id": ward,
        "service": "medicine",
        "initial_population": True,
        "denominator": den,
        "denominator_exclusion": excl,
        "numerator": num,
        "numerator_exclusion": False,
        "numerator_events": events,
    }


@pytest.fixture(scope="module")
def subjects() -> pd.DataFrame:
    rows = [
        subject("vte", "enc-met", num=True),
        subject("vte", "enc-missed-1", fac="F2"),
        subject("vte", "enc-missed-2"),
        subject("vte", "enc-excluded", excl=True),
        subject("falls", "enc-fall", num=True, events=1),
        subject("falls", "enc-no-fall", events=0),
        subject("fft", "resp-1"),
    ]
    return typed(rows, INDICATOR_SUBJECTS)


@pytest.fixture(scope="module")
def reconciliation() -> pd.DataFrame:
    return typed(
        [
            {
                "table_name": "encounters",
                "rows_read": 100,
                "rows_accepted": 95,
                "rows_quarantined": 5,
                "balanced": True,
            },
            # the flag claims balanced but the arithmetic does not: the report must not trust the flag
            {
                "table_name": "patients",
                "rows_read": 50,
                "rows_accepted": 45,
                "rows_quarantined": 4,
                "balanced": True,
            },
        ],
        RECONCILIATION,
    )


@pytest.fixture(scope="module")
def checks() -> pd.DataFrame:
    return typed(
        [
            {
                "table_name": "encounters",
                "check": "expect_column_values_to_not_be_null(facility_id)",
                "description": "Every encounter names its facility",
                "category": "completeness",
                "violated": 5,
                "denominator": 100,
                "pct": 0.05,
                "status": "fail",
            },
            {
                "table_name": "patients",
                "check": "expect_column_values_to_be_unique(patient_id)",
                "description": "",
                "category": "uniqueness",
                "violated": 0,
                "denominator": 50,
                "pct": 0.0,
                "status": "pass",
            },
        ],
        VALIDATION_CHECKS,
    )


@pytest.fixture(scope="module")
def quarantine() -> pd.DataFrame:
    rows = [
        {
            "table_name": "encounters",
            "record_id": f"e{i}",
            "stage": "validate",
            "reasons": "facility missing; end before start" if i < 2 else "facility missing",
            "payload": "{}",
            "source_file": "Encounter.ndjson",
            "source_line": i + 1,
        }
        for i in range(5)
    ]
    return typed(rows, QUARANTINE)


@pytest.fixture(scope="module")
def empty_checks() -> pd.DataFrame:
    return empty_frame(VALIDATION_CHECKS)
