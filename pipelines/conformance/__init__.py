"""Measure conformance: run a CMS eCQM test deck (MADiE cases with expected MeasureReports)
through the real pipeline path and compare population counts case by case.

    read_deck(measure_dir) -> Deck
    run_deck(measure_dir, settings, valueset_dirs=None, indicator_id=None) -> ConformanceRun
    render_text(run) / to_json(run) / write_measure_reports(run, out_dir)
"""

from __future__ import annotations

from pipelines.conformance.deck import CaseProblem, Deck, TestCase, read_deck
from pipelines.conformance.report import render_text, to_json, write_measure_reports
from pipelines.conformance.runner import CaseResult, ConformanceRun, run_deck

__all__ = [
    "CaseProblem",
    "CaseResult",
    "ConformanceRun",
    "Deck",
    "TestCase",
    "read_deck",
    "render_text",
    "run_deck",
    "to_json",
    "write_measure_reports",
]
