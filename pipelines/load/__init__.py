"""The warehouse: SQLAlchemy Core on SQLite (default) or PostgreSQL (production).

Stages hand DataFrames conformed to ``pipelines.tables`` in and get the same dtypes
back; nothing outside this package writes SQL.
"""

from __future__ import annotations

from pipelines.load.batches import (
    batch_records,
    list_batches,
    read_batch,
    read_batches,
    read_check_history,
    replace_batch,
    table_counts,
)
from pipelines.load.engine import make_engine
from pipelines.load.results import read_results, read_subjects, replace_results, retire_indicator, stored_indicator_ids
from pipelines.load.schema import SCHEMA_VERSION, create_schema
from pipelines.load.snapshot import (
    DeliveryReader,
    Needs,
    Snapshot,
    count_patients,
    latest_per_key,
    lookup_records,
    read_deliveries,
    read_table,
)

__all__ = [
    "SCHEMA_VERSION",
    "DeliveryReader",
    "Needs",
    "Snapshot",
    "batch_records",
    "count_patients",
    "create_schema",
    "latest_per_key",
    "list_batches",
    "lookup_records",
    "make_engine",
    "read_batch",
    "read_check_history",
    "read_batches",
    "read_deliveries",
    "read_results",
    "read_subjects",
    "read_table",
    "replace_batch",
    "replace_results",
    "retire_indicator",
    "stored_indicator_ids",
    "table_counts",
]
