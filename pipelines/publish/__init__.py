"""Publish: the monthly quality-committee report (context -> self-contained HTML)."""

from __future__ import annotations

from pipelines.publish.context import build_report_context
from pipelines.publish.html import render_report

__all__ = ["build_report_context", "render_report"]
