from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import create_schema, read_table, replace_batch, table_counts
from pipelines.load import schema as S
from pipelines.load.shards import MOVABLE_TABLES, SHARDED_TABLES
from tests.load.test_batches import batch_frames


def _layout(engine: Engine) -> dict[str, tuple[list[str], list[str]]]:
    insp = sa.inspect(engine)
    return {
        t: (
            [c["name"] for c in insp.get_columns(t)],
            sorted(ix["name"] for ix in insp.get_indexes(t)),
        )
        for t in insp.get_table_names()
    }


def test_create_schema_is_idempotent(engine: Engine) -> None:
    create_schema(engine)
    first = _layout(engine)
    create_schema(engine)
    assert _layout(engine) == first
    assert set(first) == {t.name for t in S.metadata.sorted_tables}
    with engine.connect() as conn:
        versions = conn.execute(sa.select(S.schema_version.c.version)).scalars().all()
    assert versions == [S.SCHEMA_VERSION]
    assert set(table_counts(engine).values()) == {0}


def test_batch_tables_carry_a_required_batch_and_source_tables_key_on_it(warehouse: Engine) -> None:
    insp = sa.inspect(warehouse)
    for name in S.BATCH_TABLES:
        batch = next(c for c in insp.get_columns(name) if c["name"] == "batch")
        assert batch["nullable"] is False
    for name, spec in T.TABLES.items():
        assert insp.get_pk_constraint(name)["constrained_columns"] == ["batch", *spec.key_columns]
        indexed = {tuple(ix["column_names"]) for ix in insp.get_indexes(name)}
        expected = {(c,) for c in S.QUERY_INDEXES.get(name, ())}
        expected |= {("bucket",)} if name in SHARDED_TABLES else set()
        expected |= {tuple(spec.key_columns)} if name in MOVABLE_TABLES else set()
        # Only what a query of the project filters or joins on: every index is paid for
        # on each monthly load.
        assert indexed == expected, name


def test_create_schema_drops_the_indexes_no_query_uses_and_keeps_the_rows(warehouse: Engine) -> None:
    """A warehouse of this schema version built by an earlier release still carries the
    per-patient and per-date indexes; the next run drops them and reads the same rows."""
    replace_batch(warehouse, "2026-01", **batch_frames(12))
    before = {name: read_table(warehouse, name) for name in T.TABLES}
    retired = [("encounters", "start_at"), ("observations", "patient_id"), ("claim_diagnoses", "encounter_id")]
    with warehouse.begin() as conn:
        for table, column in retired:
            conn.exec_driver_sql(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})")
    assert {f"ix_{t}_{c}" for t, c in retired} <= set(S.RETIRED_INDEXES)
    create_schema(warehouse)
    insp = sa.inspect(warehouse)
    for table, column in retired:
        assert (column,) not in {tuple(ix["column_names"]) for ix in insp.get_indexes(table)}
    for name, frame in before.items():
        pd.testing.assert_frame_equal(read_table(warehouse, name), frame, check_like=False)


def test_rows_are_stored_in_bucket_order_within_a_batch(warehouse: Engine) -> None:
    """A shard's rows of one batch sit together in the table (its read touches about
    1/shards of the pages); the order read back is the readers' own, unchanged."""
    replace_batch(warehouse, "2026-01", **batch_frames(40))
    order = "ctid" if warehouse.dialect.name == "postgresql" else "rowid"
    with warehouse.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.text(f"SELECT bucket FROM encounters ORDER BY {order}"))]
    assert len(set(stored)) > 5
    assert stored == sorted(stored, key=lambda b: (b is not None, b if b is not None else -1))


def test_types_follow_the_pandas_dtypes(warehouse: Engine) -> None:
    cols = {c["name"]: c["type"] for c in sa.inspect(warehouse).get_columns("survey_responses")}
    assert isinstance(cols["completed_on"], sa.DateTime)
    assert isinstance(cols["recommend"], sa.BigInteger)
    assert isinstance(cols["comment"], sa.Text)
    subj = {c["name"]: c["type"] for c in sa.inspect(warehouse).get_columns("indicator_subjects")}
    assert isinstance(subj["numerator"], sa.Boolean) or subj["numerator"].python_type is bool


def test_other_schema_version_is_refused(warehouse: Engine) -> None:
    with warehouse.begin() as conn:
        conn.execute(sa.update(S.schema_version).values(version=S.SCHEMA_VERSION + 1))
    with pytest.raises(WarehouseError, match="schema version"):
        create_schema(warehouse)


def test_reading_a_warehouse_without_schema_says_what_to_do(engine: Engine) -> None:
    with pytest.raises(WarehouseError, match="create_schema"):
        read_table(engine, "encounters")
