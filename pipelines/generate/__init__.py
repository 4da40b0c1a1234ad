"""Deterministic synthetic hospital-system data: FHIR R4 Bulk NDJSON + feedback CSVs per month."""

from __future__ import annotations

from pipelines.generate.run import GenerateSummary, generate

__all__ = ["GenerateSummary", "generate"]
