"""Engines for the warehouse: one SQLAlchemy URL, two supported back ends.

SQLite is the laptop/CI default and PostgreSQL the production server, and the same
code must behave identically on both. SQLite needs help for that:

* Python 3.11's ``sqlite3`` runs in "legacy transaction control", which does not
  wrap DDL or SELECTs in a transaction; a half-loaded batch could then become
  visible. We switch the driver's own BEGIN off and emit BEGIN ourselves (the
  recipe in SQLAlchemy's SQLite dialect documentation), so every ``engine.begin()``
  is a real transaction.
* Writers start with ``BEGIN IMMEDIATE``: a deferred transaction that reads first
  and writes later cannot be retried by the busy handler when another process holds
  the write lock (it fails at once with "database is locked"). Taking the write
  lock up front lets the busy timeout do its job when two DAG tasks overlap.
* WAL journal mode lets report readers run while a batch is being loaded.

PostgreSQL sessions set ``lock_timeout`` to the same wait (:data:`LOCK_TIMEOUT_S`, or
``CAREQI_LOCK_TIMEOUT_S``): without it a load queued behind a ``LOCK TABLE`` held by
another session waits silently for ever, where SQLite gives up with a message.

Errors are turned into :class:`~pipelines.errors.WarehouseError` with one line that
names the database (password hidden) and what to check, because the CLI prints the
message instead of a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from pipelines.errors import WarehouseError

log = logging.getLogger(__name__)

#: How long a writer waits for another session's lock before giving up (SQLite busy
#: timeout, PostgreSQL lock_timeout): the default of ``make_engine``.
LOCK_TIMEOUT_S = 60.0
SQLITE_BUSY_TIMEOUT_S = LOCK_TIMEOUT_S
#: Fail fast when a PostgreSQL server is down instead of hanging a DAG task.
PG_CONNECT_TIMEOUT_S = 10
#: Execution option marking a connection whose transaction will write.
WRITE_OPTION = "careqi_write"

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_EXAMPLES = "e.g. sqlite:///var/warehouse.db or postgresql+psycopg://user@host:5432/db"


def _mask(url: str) -> str:
    """A URL string with any password replaced, for messages about unparseable URLs."""
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def safe_url(engine_or_url: Engine | URL) -> str:
    """The engine's URL with the password hidden, fit for logs and error messages."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url
    return url.render_as_string(hide_password=True)


def one_line(exc: BaseException, password: str | None = None) -> str:
    """The first line of the driver's message (PostgreSQL puts row values in DETAIL
    lines, which may be patient identifiers), with any password removed, and a hint
    when the cause is a lock held by another session."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    line = text[0].strip() if text else type(orig).__name__
    if password:
        line = line.replace(password, "***")
    if "lock timeout" in line or "database is locked" in line:
        line += (
            " (another session holds a lock on the warehouse: wait for it to finish or stop it; "
            "the wait is CAREQI_LOCK_TIMEOUT_S)"
        )
    return line


def _driver_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the database said no": SQLAlchemy's, and the drivers' own, which
    the fast paths raise without SQLAlchemy wrapping them: psycopg's from COPY
    (frames.insert_frame), sqlite3's from cursor reads (frames.fetch_typed)."""
    import sqlite3

    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return (SQLAlchemyError, sqlite3.Error)
    return (SQLAlchemyError, sqlite3.Error, psycopg.Error)


DRIVER_ERRORS = _driver_errors()


def _normalise(url: URL) -> URL:
    """Accept the common spellings of a PostgreSQL URL and route them to psycopg 3,
    the only PostgreSQL driver the project installs."""
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


def _is_file_sqlite(url: URL) -> bool:
    db = url.database or ""
    return db not in ("", ":memory:") and not db.startswith("file:")


def _sqlite_engine(url: URL, lock_timeout_s: float) -> Engine:
    if _is_file_sqlite(url):
        path = Path(url.database or "").expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(
                f"cannot create the folder for SQLite warehouse {path}: {exc.strerror or exc}"
            ) from None
        url = url.set(database=str(path))
    engine = sa.create_engine(url, connect_args={"timeout": lock_timeout_s})
    file_db = _is_file_sqlite(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see module doc)
        cursor = dbapi_connection.cursor()
        if file_db:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        # The default 2 MB page cache thrashes when a month of rows is inserted into
        # the secondary indexes in random key order; 64 MB keeps them resident.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def _postgres_engine(url: URL, lock_timeout_s: float) -> Engine:
    connect_args: dict[str, object] = {"application_name": "careqi"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    timeout_ms = max(1, int(lock_timeout_s * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # SET is not parameterisable; the value is an int we formatted ourselves.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {timeout_ms}")
        dbapi_connection.commit()

    return engine


def make_engine(url: str, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> Engine:
    """Create and check a warehouse engine for ``url`` (SQLite or PostgreSQL).

    The engine is connected once here so that a wrong URL, a stopped server or a bad
    credential is reported at start-up as a :class:`WarehouseError` rather than deep
    inside a load. ``lock_timeout_s`` bounds how long any statement waits for a lock
    another session holds.
    """
    try:
        parsed = _normalise(make_url(url))
    except ArgumentError:
        raise WarehouseError(f"invalid warehouse URL {_mask(url)!r}; expected {_EXAMPLES}") from None
    backend = parsed.get_backend_name()
    shown = safe_url(parsed)
    if backend not in ("sqlite", "postgresql"):
        raise WarehouseError(
            f"unsupported warehouse database {backend!r} in {shown}; CareQI supports SQLite and "
            f"PostgreSQL ({_EXAMPLES})"
        )
    try:
        build = _sqlite_engine if backend == "sqlite" else _postgres_engine
        engine = build(parsed, lock_timeout_s)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise WarehouseError(f"invalid warehouse URL {shown}: {one_line(exc, parsed.password)}") from None
    try:
        with engine.connect() as conn:
            conn.execute(sa.select(sa.literal(1)))
    except DRIVER_ERRORS as exc:
        engine.dispose()
        raise WarehouseError(f"cannot connect to warehouse {shown}: {one_line(exc, parsed.password)}") from None
    log.info("warehouse engine ready: %s", shown)
    return engine


@contextmanager
def write_transaction(engine: Engine, action: str) -> Iterator[Connection]:
    """One write transaction; any database error becomes a one-line WarehouseError
    (the transaction is rolled back, so the warehouse is never left half-written)."""
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn
    except DRIVER_ERRORS as exc:
        raise WarehouseError(f"{action} failed on {safe_url(engine)}: {one_line(exc, engine.url.password)}") from None


@contextmanager
def read_connection(engine: Engine, action: str) -> Iterator[Connection]:
    """A connection for reads, with the same one-line error reporting as writes."""
    try:
        with engine.connect() as conn:
            yield conn
    except DRIVER_ERRORS as exc:
        raise WarehouseError(
            f"{action} failed on {safe_url(engine)}: {one_line(exc, engine.url.password)} "
            "(has create_schema been run on this warehouse?)"
        ) from None
