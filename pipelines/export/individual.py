"""FHIR R4 ``MeasureReport`` per subject (type ``individual``) and over a test deck (``summary``).

For measure conformance only: the computed result of one MADiE test case, shaped like
the expected MeasureReport in its Bundle, so a reviewer (or another engine) can diff the
two directly. Individual reports name their subject, so they are never part of the
regulator export (:mod:`pipelines.export.measure_report` aggregates only); they are
written only for synthetic test patients by ``careqi conformance --out``.

Unlike the monthly export, the period is a measurement period given as ISO dates
(eCQMs report on a calendar year), and ``date`` is the period's last day, so reruns
give byte-identical files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.compute.model import Indicator, Scoring
from pipelines.errors import ExportError
from pipelines.export.measure_report import (
    POPULATION_SYSTEM,
    measure_canonical,
    report_envelope,
    validate_measure_report,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubjectCounts:
    """One subject's population counts, keyed by measure-population code."""

    name: str  # file stem and report id seed, e.g. the test-case folder
    subject_reference: str | None  # "Patient/<id>"
    counts: Mapping[str, int]


def individual_measure_report(
    indicator: Indicator,
    counts: Mapping[str, int],
    *,
    period_start: str,
    period_end: str,
    report_id: str,
    report_type: str = "individual",
    subject_reference: str | None = None,
    measure_url: str | None = None,
    score: float | None = None,
    reporter: str = "CareQI",
) -> dict[str, Any]:
    """A validated MeasureReport dict with ``counts`` (code -> count) as group[0]."""
    if report_type not in ("individual", "summary"):
        raise ExportError(f"report type must be individual or summary, got {report_type!r}")
    group: dict[str, Any] = {
        "population": [
            {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}, "count": int(count)}
            for code, count in counts.items()
        ]
    }
    if score is not None:
        group["measureScore"] = {"value": float(score)}
    return report_envelope(
        indicator,
        report_id=report_id,
        report_type=report_type,
        measure=measure_url or measure_canonical(indicator),
        start=period_start,
        end=period_end,
        reporter=reporter,
        group=group,
        subject_reference=subject_reference,
    )


def _proportion(totals: Mapping[str, int]) -> float | None:
    """eCQM proportion score: (NUMER - NUMEX) / (DENOM - DENEX); None when that is 0/0."""
    denominator = totals.get("denominator", 0) - totals.get("denominator-exclusion", 0)
    if denominator <= 0:
        return None
    return (totals.get("numerator", 0) - totals.get("numerator-exclusion", 0)) / denominator


def export_individual_reports(
    indicator: Indicator,
    subjects: Sequence[SubjectCounts],
    out_dir: Path,
    *,
    period_start: str,
    period_end: str,
    measure_url: str | None = None,
    reporter: str = "CareQI",
) -> list[Path]:
    """Write ``individual/<name>.json`` per subject and ``summary.json`` (totals).

    Everything is built and validated before anything is written, so an invalid
    report leaves no partial set behind. Proportion summaries carry the score;
    ratio and continuous ones carry counts only (their score needs observations).
    """
    iid = indicator.id
    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        raise ExportError("individual MeasureReports need distinct subject names")
    documents: list[tuple[Path, dict[str, Any]]] = []
    totals: dict[str, int] = {}
    for s in subjects:
        resource = individual_measure_report(
            indicator,
            s.counts,
            period_start=period_start,
            period_end=period_end,
            report_id=f"{iid}-{s.name}",
            subject_reference=s.subject_reference,
            measure_url=measure_url,
            reporter=reporter,
        )
        documents.append((Path("individual") / f"{s.name}.json", resource))
        for code, count in s.counts.items():
            totals[code] = totals.get(code, 0) + int(count)
    score = _proportion(totals) if indicator.scoring is Scoring.PROPORTION else None
    summary = individual_measure_report(
        indicator,
        totals,
        period_start=period_start,
        period_end=period_end,
        report_id=f"{iid}-summary",
        report_type="summary",
        measure_url=measure_url,
        score=score,
        reporter=reporter,
    )
    documents.append((Path("summary.json"), summary))
    out_dir = Path(out_dir)
    written = []
    for rel, resource in documents:
        model = validate_measure_report(resource)
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(model.model_dump_json(indent=2, exclude_none=True, by_alias=True) + "\n", encoding="utf-8")
        written.append(path)
    log.info("wrote %d individual MeasureReports and a summary to %s", len(subjects), out_dir)
    return written


__all__ = ["SubjectCounts", "export_individual_reports", "individual_measure_report"]
