"""Regulator Parquet: the aggregate CSV's rows, typed, for analysts who load it with a
dataframe library instead of parsing text.

The rows are the CSV's own (:func:`csv_export.csv_rows`: same suppression, same order,
same values), converted by the column types of the data dictionary
(:data:`dictionary.COLUMN_SPECS`): counts are nullable 64-bit integers, scores
doubles, period bounds dates, the rest strings. A blank CSV cell is a null. Text cells
keep the CSV's leading apostrophe on a would-be formula, so the two files hold the
very same values.

Byte-reproducible: the table is built from an explicit schema (no pandas metadata,
which would carry index details), the only key-value metadata is the period and the
threshold, and Parquet itself writes no timestamp; two writes with the same pyarrow
version give identical bytes (``created_by`` names that version).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import outputs
from pipelines.compute.model import Indicator
from pipelines.export.csv_export import COLUMNS, csv_rows
from pipelines.export.dictionary import COLUMN_SPECS

log = logging.getLogger(__name__)

_ARROW_TYPES = {"string": pa.string(), "integer": pa.int64(), "decimal": pa.float64(), "date": pa.date32()}


def parquet_schema(period: str, small_number_threshold: int) -> pa.Schema:
    """The CSV's columns in order, typed from the data dictionary."""
    fields = [pa.field(name, _ARROW_TYPES[COLUMN_SPECS[name].type], nullable=True) for name in COLUMNS]
    metadata = {"careqi.period": period, "careqi.small_number_threshold": str(small_number_threshold)}
    return pa.schema(fields, metadata=metadata)


def _typed(text: str, kind: str) -> Any:
    if text == "":
        return None
    if kind == "integer":
        return int(text)
    if kind == "decimal":
        return float(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    return text


def parquet_table(rows: Sequence[dict[str, str]], schema: pa.Schema) -> pa.Table:
    """The CSV rows (strings) as an Arrow table of ``schema``."""
    columns = {
        name: [_typed(row[name], COLUMN_SPECS[name].type) for row in rows] for name in schema.names
    }  # fmt: skip
    return pa.Table.from_pydict(columns, schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    """The file's bytes; one row group and fixed options, so the layout never varies."""
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        compression="zstd",
        compression_level=3,
        version="2.6",
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
        row_group_size=max(table.num_rows, 1),
    )
    return buf.getvalue()


def export_parquet(
    results: pd.DataFrame,
    indicators: Sequence[Indicator],
    period: str,
    out_dir: Path,
    *,
    small_number_threshold: int = 11,
    rounding: int = 0,
    controlled: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ``out_dir/careqi-indicators-<period>.parquet`` and return ``[its path]``."""
    rows = csv_rows(results, indicators, period, small_number_threshold, rounding, controlled)
    data = parquet_bytes(parquet_table(rows, parquet_schema(period, small_number_threshold)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = outputs.write_file(out_dir / f"careqi-indicators-{period}.parquet", data)
    log.info("wrote %d rows to %s", len(rows), path)
    return [path]


__all__ = ["export_parquet", "parquet_bytes", "parquet_schema", "parquet_table"]
