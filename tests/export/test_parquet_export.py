from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.export import FORMATS, export_csv, export_parquet
from pipelines.export.csv_export import COLUMNS

from .conftest import PERIOD

COUNTS = ["initial_population", "denominator", "denominator_exclusion", "numerator", "numerator_exclusion"]
DECIMALS = ["measure_score", "ci_low", "ci_high", "target"]


def _text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def test_parquet_holds_the_csv_rows_row_for_row(results, indicators, tmp_path):
    (csv_path,) = export_csv(results, indicators, PERIOD, tmp_path)
    (pq_path,) = export_parquet(results, indicators, PERIOD, tmp_path)
    assert pq_path.name == f"careqi-indicators-{PERIOD}.parquet"
    as_text = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    parquet = pd.read_parquet(pq_path, dtype_backend="numpy_nullable")  # integers stay integers
    assert list(parquet.columns) == COLUMNS and len(parquet) == len(as_text) == 12
    for column in COLUMNS:
        assert [_text(v) for v in parquet[column].tolist()] == as_text[column].tolist(), column
    typed = pd.read_csv(csv_path)  # numbers as a reader would load them: blanks are NaN
    for column in COUNTS + DECIMALS:
        pd.testing.assert_series_equal(parquet[column].astype("float64"), typed[column].astype("float64"))


def test_suppressed_cells_are_nulls_and_the_schema_is_typed(results, indicators, tmp_path):
    (path,) = export_parquet(results, indicators, PERIOD, tmp_path)
    table = pq.read_table(path)
    schema = table.schema
    assert schema.field("numerator").type == pa.int64()
    assert schema.field("measure_score").type == pa.float64()
    assert schema.field("period_start").type == pa.date32()
    assert schema.field("facility_id").type == pa.string()
    assert b"pandas" not in (schema.metadata or {})
    assert schema.metadata[b"careqi.period"] == PERIOD.encode()
    rows = table.to_pylist()
    w1 = next(r for r in rows if (r["indicator_id"], r["facility_id"], r["stratum"]) == ("vte", "F1", "W1"))
    assert w1["numerator"] is None and w1["measure_score"] is None and w1["denominator"] == 60
    assert all(r["numerator"] != 5 for r in rows)


def test_parquet_is_byte_identical_across_runs_and_row_orders(results, indicators, tmp_path):
    a = export_parquet(results, indicators, PERIOD, tmp_path / "a")[0].read_bytes()
    shuffled = results.sample(frac=1.0, random_state=7).reset_index(drop=True)
    b = export_parquet(shuffled, list(reversed(indicators)), PERIOD, tmp_path / "b")[0].read_bytes()
    assert a == b
    assert FORMATS["parquet"] is export_parquet


def test_an_empty_month_gives_a_schema_only_file(results, indicators, tmp_path):
    (path,) = export_parquet(results, indicators, "2026-08", tmp_path)
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.column_names == COLUMNS
