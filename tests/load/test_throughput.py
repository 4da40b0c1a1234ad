from __future__ import annotations

import time

from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.load import read_table, replace_batch
from tests.load.conftest import make_frame


def test_bulk_load_is_not_row_by_row(warehouse: Engine) -> None:
    """A floor far below the measured rate (~60k rows/s SQLite, see bench_load.py)
    but far above a per-row INSERT loop, so a regression to one is caught even on a
    busy CI runner."""
    rows = 50_000
    frame = make_frame(T.TABLES["encounters"], rows)
    empty = {
        "quarantine": T.empty_frame(T.QUARANTINE),
        "reconciliation": T.empty_frame(T.RECONCILIATION),
        "checks": T.empty_frame(T.VALIDATION_CHECKS),
    }
    start = time.process_time()
    replace_batch(warehouse, "2026-01", tables={"encounters": frame}, **empty)
    elapsed = time.process_time() - start
    assert rows / elapsed > 15_000
    assert len(read_table(warehouse, "encounters")) == rows
