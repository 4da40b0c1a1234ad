"""Reading rows back (pipelines.load.frames.fetch_typed): the driver fast path gives
exactly what SQLAlchemy's result rows gave, for every dtype of every table, in
chunks or whole, and a stored value that does not fit the contract is still an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import create_schema, make_engine
from pipelines.load import schema as S
from pipelines.load.engine import read_connection, write_transaction
from pipelines.load.frames import _sqlalchemy_rows, fetch_typed, insert_frame, prepare, read_typed, typed_frame
from tests.load.conftest import make_frame


def _store(engine: Engine, name: str, frame: pd.DataFrame) -> None:
    table = S.SOURCE_TABLES[name]
    typed = prepare(frame, T.TABLES[name], fixed={S.BATCH: "2026-10"})
    with write_transaction(engine, "test insert") as conn:
        insert_frame(conn, table, typed, list(typed.columns))


def _select(name: str) -> sa.Select:
    table = S.SOURCE_TABLES[name]
    spec = T.TABLES[name]
    return sa.select(*(table.c[c] for c in spec.column_names)).order_by(*(table.c[c] for c in spec.key_columns))


def _through_sqlalchemy(conn: sa.Connection, stmt: sa.Select, spec: T.TableSpec) -> pd.DataFrame:
    names, chunks = _sqlalchemy_rows(conn, stmt, None)
    return typed_frame(next(chunks), names, spec)


@pytest.mark.parametrize("name", sorted(T.TABLES))
def test_every_dtype_reads_back_as_written_and_as_sqlalchemy_read_it(warehouse: Engine, name: str) -> None:
    spec = T.TABLES[name]
    written = make_frame(spec, 23, seed=3)
    _store(warehouse, name, written)
    with read_connection(warehouse, "test read") as conn:
        whole = read_typed(conn, _select(name), spec)
        chunks = list(fetch_typed(conn, _select(name), spec, chunk_rows=5))
        reference = _through_sqlalchemy(conn, _select(name), spec)
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    pd.testing.assert_frame_equal(whole, reference, check_exact=True)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole, check_exact=True)
    expected = written.sort_values(list(spec.key_columns), kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, expected[spec.column_names], check_exact=True)


def test_an_empty_result_is_one_empty_typed_frame(warehouse: Engine) -> None:
    spec = T.TABLES["encounters"]
    with read_connection(warehouse, "test read") as conn:
        chunks = list(fetch_typed(conn, _select("encounters"), spec, chunk_rows=5))
    assert len(chunks) == 1 and len(chunks[0]) == 0
    assert dict(chunks[0].dtypes.astype(str)) == {c: str(pd.Series(dtype=d).dtype) for c, d in spec.dtypes.items()}


def test_parameters_and_expanding_lists_reach_the_driver(warehouse: Engine) -> None:
    spec = T.TABLES["encounters"]
    _store(warehouse, "encounters", make_frame(spec, 30, prefix="e"))
    table = S.SOURCE_TABLES["encounters"]
    stmt = _select("encounters").where(table.c["encounter_id"].in_(["e0000003", "e0000011", "nobody"]))
    with read_connection(warehouse, "test read") as conn:
        found = read_typed(conn, stmt.where(table.c[S.BATCH] <= "2026-10"), spec)
    assert found["encounter_id"].tolist() == ["e0000003", "e0000011"]


@pytest.mark.parametrize(
    ("column", "stored"),
    [("source_line", "'twelve'"), ("end_at", "'last tuesday'")],
)
def test_a_stored_value_that_does_not_fit_is_an_error_not_a_null(tmp_path: Path, column: str, stored: str) -> None:
    """SQLite only: its dynamic typing is what can store a value of another type."""
    warehouse = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    try:
        create_schema(warehouse)
        _store(warehouse, "encounters", make_frame(T.TABLES["encounters"], 3))
        with warehouse.begin() as conn:
            conn.exec_driver_sql(f"UPDATE encounters SET {column} = {stored}")  # test-only literal, no input
        with read_connection(warehouse, "test read") as conn, pytest.raises((WarehouseError, ValueError)):
            read_typed(conn, _select("encounters"), T.TABLES["encounters"])
    finally:
        warehouse.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_rows_go_in_whatever_order_asked_and_in_blocks(monkeypatch: pytest.MonkeyPatch, dialect: str) -> None:
    """The conversion to Python values works a block at a time (memory), and the rows
    it yields are the frame's rows in ``order``, whatever the block and chunk sizes."""
    from pipelines.load import frames as F

    typed = prepare(make_frame(T.TABLES["encounters"], 23, seed=3), T.TABLES["encounters"], fixed={S.BATCH: "2026-10"})
    columns = ["encounter_id", "start_at", "batch"]
    order = np.random.default_rng(1).permutation(len(typed))
    whole = [row for chunk in F.row_chunks(typed, columns, dialect, size=1_000) for row in chunk]
    monkeypatch.setattr(F, "CONVERT_ROWS", 5)
    blocks = [row for chunk in F.row_chunks(typed, columns, dialect, size=3) for row in chunk]
    assert blocks == whole and len(whole) == 23
    shuffled = [row for chunk in F.row_chunks(typed, columns, dialect, size=4, order=order) for row in chunk]
    assert shuffled == [whole[i] for i in order]
