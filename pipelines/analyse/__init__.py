"""Pure statistics over indicator counts: intervals and RAG status (no pandas I/O, no other rooms)."""

from __future__ import annotations

from pipelines.analyse.intervals import grouped_mean, grouped_median, mean_ci, median_ci, poisson_rate, wilson
from pipelines.analyse.status import rag_status

__all__ = ["grouped_mean", "grouped_median", "mean_ci", "median_ci", "poisson_rate", "rag_status", "wilson"]
