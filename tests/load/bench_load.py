"""Load throughput benchmark (not collected by pytest): 300,000 encounters written
with replace_batch and read back with read_table, on SQLite and PostgreSQL.

    .venv/bin/python -m tests.load.bench_load [rows] [sqlite,postgresql]
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.schema import CreateSchema, DropSchema

from pipelines import tables as T
from pipelines.load import create_schema, make_engine, read_table, replace_batch
from tests.load.conftest import PG_URL, make_frame, postgres_url_for


def _bench(url: str, label: str, rows: int) -> None:
    engine = make_engine(url)
    create_schema(engine)
    frame = make_frame(T.TABLES["encounters"], rows)
    empty = {}
    for spec, arg in ((T.QUARANTINE, "quarantine"), (T.RECONCILIATION, "reconciliation")):
        empty[arg] = T.empty_frame(spec)
    empty["checks"] = T.empty_frame(T.VALIDATION_CHECKS)
    for attempt in ("first load", "reload", "read"):
        t0, c0 = time.perf_counter(), time.process_time()
        if attempt == "read":
            assert len(read_table(engine, "encounters")) == rows
        else:
            replace_batch(engine, "2026-01", tables={"encounters": frame}, **empty)
        dt, ct = time.perf_counter() - t0, time.process_time() - c0
        sys.stdout.write(
            f"{label:10s} {attempt:10s} {rows:,} rows: wall {dt:5.2f} s = {rows / dt:7,.0f} rows/s; "
            f"client CPU {ct:5.2f} s = {rows / ct:7,.0f} rows/s\n"
        )
    engine.dispose()


def main(rows: int = 300_000, backends: str = "sqlite,postgresql") -> None:
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            _bench(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", rows)
    if "postgresql" not in backends:
        return
    schema = f"careqi_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(CreateSchema(schema))
    try:
        _bench(postgres_url_for(schema), "postgresql", rows)
    finally:
        with admin.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True))
        admin.dispose()


if __name__ == "__main__":
    main(*(int(sys.argv[1]),) if len(sys.argv) > 1 else (), *sys.argv[2:3])
