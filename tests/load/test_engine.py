from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from pipelines.errors import WarehouseError
from pipelines.load import make_engine
from tests.load.conftest import PG_URL


def test_sqlite_engine_creates_missing_folder_and_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "warehouse.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            timeout_ms = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert db.exists()
        assert mode == "wal"
        assert timeout_ms >= 10_000
    finally:
        engine.dispose()


def test_sqlite_transactions_are_real_so_a_rollback_undoes_ddl(tmp_path: Path) -> None:
    """Legacy sqlite3 autocommits DDL; our BEGIN handling must make it transactional."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
            raise RuntimeError("abort")
        assert "scratch" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["", "not a url", "://nothing"])
def test_unparseable_url_is_a_warehouse_error(url: str) -> None:
    with pytest.raises(WarehouseError, match="invalid warehouse URL"):
        make_engine(url)


def test_unsupported_database_is_refused_without_showing_the_password() -> None:
    with pytest.raises(WarehouseError, match="unsupported warehouse database 'mysql'") as err:
        make_engine("mysql://careqi:Sup3rSecret@db.example.org/wh")
    assert "Sup3rSecret" not in str(err.value)


def test_unreachable_postgres_is_one_line_without_password() -> None:
    with pytest.raises(WarehouseError, match="cannot connect to warehouse") as err:
        make_engine("postgresql+psycopg://careqi:Sup3rSecret@127.0.0.1:1/wh?connect_timeout=2")
    message = str(err.value)
    assert "Sup3rSecret" not in message
    assert "\n" not in message
    assert "127.0.0.1" in message


def test_sqlite_path_under_a_file_is_a_warehouse_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(WarehouseError, match="cannot create the folder"):
        make_engine(f"sqlite:///{blocker / 'sub' / 'warehouse.db'}")


@pytest.mark.postgres
def test_plain_postgresql_url_is_routed_to_psycopg(postgres_admin: Engine) -> None:
    url = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()
