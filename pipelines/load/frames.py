"""DataFrame <-> database rows, checked against the table contract.

Writes: a frame is conformed to its spec before it is written, and anything the
database would reject (unknown column, null in a required column, a record id twice
in one batch) is refused up front with a message that counts the rows but never
shows their identifiers (they are patient-level ids).

Rows are converted column-wise (``None`` for every NA/NaT) rather than per cell and
written in bulk (see :func:`insert_frame`), so that a 300,000-row month loads in
seconds.

Reads: whatever the driver returns (SQLite gives booleans as 0/1 and timestamps as
text-parsed datetimes) goes back through ``tables.conform`` so that readers get
exactly the dtypes the extract stage produced.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines import tables as T
from pipelines.errors import WarehouseError

#: Rows per executemany call: bounds memory for the Python row dicts while keeping
#: round trips few (PostgreSQL batches further with insertmanyvalues / pipelining).
CHUNK_ROWS = 20_000


def prepare(
    df: pd.DataFrame,
    spec: T.TableSpec,
    *,
    unique: Sequence[str] = (),
    fixed: dict[str, str] | None = None,
) -> pd.DataFrame:
    """``df`` conformed to ``spec``, or a WarehouseError naming what is wrong.

    ``fixed`` are columns every row must carry with one value (``batch``, ``period``):
    when present in ``df`` they must agree, otherwise they are filled in.
    """
    fixed = fixed or {}
    extra = sorted(set(df.columns) - set(spec.column_names) - set(fixed))
    if extra:
        raise WarehouseError(f"{spec.name}: columns not in the table contract: {', '.join(extra)}")
    for name, value in fixed.items():
        if name in df.columns and name not in spec.dtypes:
            wrong = int((df[name].astype("string") != value).fillna(True).sum())
            if wrong:
                raise WarehouseError(f"{spec.name}: {wrong} row(s) have {name} other than {value!r}")
    if all(c in df.columns and df[c].dtype == t for c, t in spec.dtypes.items()):
        # Already conformed upstream (the normal case): conform again would cost a
        # tenth of the load time to change nothing. Text is still cleaned of control
        # characters here, the one gate every write passes, so that SQLite and
        # PostgreSQL (which cannot store NUL) always hold the same text.
        typed = df[spec.column_names].reset_index(drop=True)
        for name, dtype in spec.dtypes.items():
            if dtype == "string":
                typed[name] = T.clean_text(typed[name])
    else:
        typed, failures = T.conform(df, spec)
        bad = int((failures != "").sum())
        if bad:
            raise WarehouseError(
                f"{spec.name}: {bad} row(s) have values that do not fit the contract "
                f"(first: {failures[failures != ''].iloc[0]}); quarantine them before loading"
            )
    for name, value in fixed.items():
        if name in spec.dtypes:
            wrong = int((typed[name] != value).fillna(True).sum())
            if wrong:
                raise WarehouseError(f"{spec.name}: {wrong} row(s) have {name} other than {value!r}")
        else:
            typed[name] = pd.Series(value, index=typed.index, dtype="string")
    for col in spec.columns:
        nulls = int(typed[col.name].isna().sum()) if not col.nullable else 0
        if nulls:
            raise WarehouseError(f"{spec.name}: {nulls} row(s) have no {col.name}, which is required")
    if unique and len(typed):
        dups = int(typed.duplicated(subset=list(unique)).sum())
        if dups:
            raise WarehouseError(
                f"{spec.name}: {dups} duplicate row(s) on ({', '.join(unique)}); "
                "duplicates must be quarantined by validation before load"
            )
    return typed


#: SQLAlchemy's storage format for DateTime on SQLite, so that rows written here read
#: back through SQLAlchemy (and compare in SQL) exactly like rows it wrote itself.
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _python_values(s: pd.Series, dialect: str) -> np.ndarray:
    """One column as an object array of plain Python values, None for NA/NaT."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if dialect == "sqlite":
            return s.dt.strftime(SQLITE_DATETIME_FORMAT).to_numpy(dtype=object, na_value=None)
        out = np.array(s.dt.to_pydatetime(), dtype=object)
        out[s.isna().to_numpy()] = None
        return out
    return s.to_numpy(dtype=object, na_value=None)


def row_chunks(df: pd.DataFrame, columns: Sequence[str], dialect: str, size: int = CHUNK_ROWS) -> Iterator[list[tuple]]:
    """Chunks of row tuples in ``columns`` order, converted column-wise."""
    arrays = [_python_values(df[c], dialect) for c in columns]
    for start in range(0, len(df), size):
        yield list(zip(*(a[start : start + size] for a in arrays), strict=True))


def insert_frame(conn: Connection, table: sa.Table, df: pd.DataFrame, columns: Sequence[str]) -> int:
    """Insert every row of ``df`` (already prepared) inside the caller's transaction;
    returns the row count.

    Why not ``conn.execute(insert(table), list_of_dicts)``: SQLAlchemy then builds and
    type-processes a parameter dict per row, which measured ~30k rows/s on SQLite and
    ~30k on PostgreSQL. Instead the values are converted per column with pandas, and

    * SQLite gets the Core ``insert()`` compiled once, run by the driver's
      ``executemany`` with qmark parameters (~55k rows/s, index maintenance included);
    * PostgreSQL gets ``COPY ... FROM STDIN`` through psycopg (~150k rows/s), with
      the values streamed by the COPY protocol, never placed in SQL text.
    """
    if not len(df):
        return 0
    dialect = conn.dialect.name
    if dialect == "postgresql":
        _copy_postgres(conn, table, df, columns)
        return len(df)
    compiled = sa.insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
    order = list(compiled.positiontup or [])
    if sorted(order) != sorted(columns):
        raise WarehouseError(f"{table.name}: unexpected insert parameters {order}")
    for rows in row_chunks(df, order, dialect):
        conn.exec_driver_sql(compiled.string, rows)
    return len(df)


def _copy_postgres(conn: Connection, table: sa.Table, df: pd.DataFrame, columns: Sequence[str]) -> None:
    quote = conn.dialect.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(c) for c in columns)})"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for rows in row_chunks(df, columns, "postgresql"):
                for row in rows:
                    copy.write_row(row)
    finally:
        cursor.close()


def _column(values: Sequence[object], dtype: str | None) -> pd.Series:
    """Build a column straight in its contract dtype (conform then has little left to
    do); anything that does not convert stays object so conform can report it."""
    if dtype is not None:
        try:
            return pd.Series(values, dtype=dtype)
        except (TypeError, ValueError):
            pass
    return pd.Series(values, dtype=object)


def read_typed(
    conn: Connection, stmt: sa.Select, spec: T.TableSpec, extra: dict[str, str] | None = None
) -> pd.DataFrame:
    """Run ``stmt`` and return its rows typed by ``spec`` (plus ``extra`` columns with
    their dtypes, e.g. ``batch``). A stored value that no longer fits the contract
    means the warehouse was written by something else: that is an error, not a null."""
    # Executed here rather than through pd.read_sql so that a database error stays a
    # SQLAlchemy error (pandas re-wraps it) and becomes a one-line WarehouseError.
    result = conn.execute(stmt)
    return typed_frame(result.fetchall(), list(result.keys()), spec, extra)


def typed_frame(
    rows: Sequence[Any], columns: list[str], spec: T.TableSpec, extra: dict[str, str] | None = None
) -> pd.DataFrame:
    """Stored rows (tuples in ``columns`` order) typed by ``spec``, plus ``extra`` columns
    with their dtypes. Text was cleaned when it was written (:func:`prepare`), so reading
    only types it. A stored value that no longer fits the contract means the warehouse
    was written by something else: that is an error, not a null."""
    # Column-wise construction: DataFrame.from_records probes every Row object, which
    # costs more than the query itself on large tables.
    data = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    dtypes = {**spec.dtypes, **(extra or {})}
    raw = pd.DataFrame({c: _column(v, dtypes.get(c)) for c, v in zip(columns, data, strict=True)})
    typed, failures = T.conform(raw, spec, clean=False)
    bad = int((failures != "").sum())
    if bad:
        raise WarehouseError(
            f"{spec.name}: {bad} stored row(s) do not fit the table contract "
            f"(first: {failures[failures != ''].iloc[0]}); the warehouse is inconsistent"
        )
    for name, dtype in (extra or {}).items():
        typed[name] = raw[name].astype(dtype).reset_index(drop=True)
    return typed
