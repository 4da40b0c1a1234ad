"""Export: regulator extracts (CSV and FHIR R4 MeasureReport) with small-number suppression."""

from __future__ import annotations

from pipelines.export.csv_export import export_csv
from pipelines.export.measure_report import export_measure_reports, measure_report_from_counts

__all__ = ["export_csv", "export_measure_reports", "measure_report_from_counts"]
