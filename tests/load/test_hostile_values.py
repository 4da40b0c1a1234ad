"""Values that used to break one backend and not the other (issue 11, defects 4, 16, 19)."""

from __future__ import annotations

import threading
import time
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import make_engine, read_batch, read_table, replace_batch
from tests.load.conftest import postgres_url_for
from tests.load.test_batches import batch_frames


def test_nul_and_control_characters_store_the_same_on_every_backend(warehouse: Engine) -> None:
    """Regression (defect 4): one NUL in a survey comment failed the whole month on
    PostgreSQL (psycopg.DataError) while SQLite stored it."""
    frames = batch_frames(3)
    surveys = frames["tables"]["survey_responses"]  # type: ignore[index]
    surveys["comment"] = pd.array(["nul\x00here", "bell\x07", "tab\tand\nnewline"], dtype="string")
    quarantine = frames["quarantine"]  # type: ignore[index]
    quarantine["payload"] = pd.array(['{"x": "\x00"}'] * len(quarantine), dtype="string")
    replace_batch(warehouse, "2026-01", **frames)  # type: ignore[arg-type]
    got = read_table(warehouse, "survey_responses").sort_values("source_line")["comment"].tolist()
    assert got == [f"nul{T.REPLACEMENT}here", f"bell{T.REPLACEMENT}", "tab\tand\nnewline"]
    assert set(read_batch(warehouse, "quarantine", "2026-01")["payload"]) == {f'{{"x": "{T.REPLACEMENT}"}}'}


@pytest.mark.postgres
def test_a_lock_held_elsewhere_fails_with_a_clear_message_instead_of_waiting(postgres_admin: Engine) -> None:
    """Regression (defect 16): with LOCK TABLE encounters held by another session the load
    waited silently (83 s seen); sessions now give up after the lock timeout."""
    schema = f"careqi_lock_{uuid.uuid4().hex[:10]}"
    with postgres_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = postgres_url_for(schema)
    engine = make_engine(url, lock_timeout_s=1.0)
    try:
        from pipelines.load import create_schema

        create_schema(engine)
        holder = sa.create_engine(url)
        locked, release = threading.Event(), threading.Event()

        def hold() -> None:
            with holder.begin() as conn:
                conn.execute(sa.text("LOCK TABLE encounters IN ACCESS EXCLUSIVE MODE"))
                locked.set()
                release.wait(30)

        thread = threading.Thread(target=hold)
        thread.start()
        assert locked.wait(10)
        started = time.monotonic()
        with pytest.raises(WarehouseError, match="lock timeout.*another session holds a lock"):
            replace_batch(engine, "2026-01", **batch_frames(2))  # type: ignore[arg-type]
        assert time.monotonic() - started < 15
        release.set()
        thread.join()
        holder.dispose()
    finally:
        engine.dispose()
        with postgres_admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def test_a_wrong_postgres_url_is_a_one_line_warehouse_error() -> None:
    with pytest.raises(WarehouseError, match="cannot connect to warehouse") as info:
        make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert "\n" not in str(info.value)


def test_a_driver_error_escaping_sqlalchemy_is_a_one_line_warehouse_error(warehouse: Engine) -> None:
    """Regression (defect 19): psycopg errors raised outside SQLAlchemy (the COPY fast path)
    printed a traceback instead of the promised one line."""
    import psycopg

    from pipelines.load.engine import write_transaction

    with pytest.raises(WarehouseError, match=r"^storing x failed on .*: value too long\n?$"):
        with write_transaction(warehouse, "storing x"):
            raise psycopg.DataError("value too long\nDETAIL: Key (patient_id)=(p-secret) ...")
