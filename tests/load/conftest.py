"""Warehouse fixtures: every test runs on a fresh SQLite file and, when reachable,
on a fresh PostgreSQL schema that is dropped afterwards (nothing left behind)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.schema import CreateSchema, DropSchema

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import create_schema, make_engine

PG_URL = os.environ.get("CAREQI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An engine on the test server's default schema, used only to create and drop
    the per-test schemas. Unreachable server: skip locally, fail in CI."""
    try:
        admin = make_engine(PG_URL)
    except WarehouseError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL required in CI but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    yield admin
    admin.dispose()


def postgres_url_for(schema: str) -> str:
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, empty warehouse engine (no tables yet)."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'wh' / 'warehouse.db'}")
        yield eng
        eng.dispose()
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"careqi_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(CreateSchema(schema))
    eng = make_engine(postgres_url_for(schema))
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True))


@pytest.fixture
def warehouse(engine: Engine) -> Engine:
    """A fresh warehouse with the schema created."""
    create_schema(engine)
    return engine


def make_frame(
    spec: T.TableSpec,
    n: int,
    *,
    seed: int = 0,
    prefix: str = "id",
    fixed: dict[str, object] | None = None,
) -> pd.DataFrame:
    """``n`` rows conformed to ``spec`` exercising every dtype: nulls in every
    nullable column, NaT, both booleans, microsecond timestamps, awkward text.
    Row ``i`` of the key column is ``f"{prefix}{i:07d}"``."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    cols: dict[str, object] = {}
    for col in spec.columns:
        name, dtype = col.name, col.dtype
        if name == spec.key and dtype == "string":
            values: pd.Series = pd.Series([f"{prefix}{k:07d}" for k in i], dtype="string")
        elif dtype == "string":
            pool = np.array([f"{name}-{k}" for k in range(40)] + ['O\'Brien; "quoted" é ✓', "a\nb"], dtype=object)
            values = pd.Series(pool[rng.integers(0, len(pool), n)], dtype="string")
        elif dtype == "Int64":
            values = pd.Series(rng.integers(-5, 2**40, n), dtype="Int64")
        elif dtype == "Float64":
            values = pd.Series(rng.normal(50, 30, n).round(6), dtype="Float64")
        elif dtype == "boolean":
            values = pd.Series(i % 2 == 0, dtype="boolean")
        else:
            micros = rng.integers(0, 400 * 86_400 * 10**6, n)
            values = pd.Series(pd.Timestamp("2025-06-01") + pd.to_timedelta(micros, unit="us"), dtype=T.TS)
        if col.nullable and n:
            values = values.mask(pd.Series(i % 5 == (len(cols) % 5), index=values.index))
        cols[name] = values
    if spec.provenance:
        cols["source_file"] = pd.Series([f"{spec.name}.ndjson"] * n, dtype="string")
        cols["source_line"] = pd.Series(i + 1, dtype="Int64")
    df = pd.DataFrame(cols)
    for name, value in (fixed or {}).items():
        df[name] = value
    typed, failures = T.conform(df, spec)
    assert (failures == "").all()
    return typed


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one())
