"""Extract stage: FHIR R4 Bulk NDJSON, FHIR Bundles and feedback CSVs -> tidy tables.

Public entry points are :func:`extract_batch` and :func:`extract_paths`; see
:mod:`pipelines.extract.batch`.
"""

from __future__ import annotations

from pipelines.extract.batch import ExtractResult, extract_batch, extract_paths

__all__ = ["ExtractResult", "extract_batch", "extract_paths"]
