from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import create_schema, read_table, table_counts
from pipelines.load import schema as S


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
        indexed = {col for ix in insp.get_indexes(name) for col in ix["column_names"]}
        assert {"patient_id", "encounter_id"} & set(spec.column_names) - {spec.key} <= indexed
        assert set(S.DATE_INDEXES.get(name, ())) <= indexed


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
