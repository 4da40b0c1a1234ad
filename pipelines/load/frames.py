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
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines import tables as T
from pipelines.errors import WarehouseError

#: Rows per executemany call: bounds memory for the Python row dicts while keeping
#: round trips few (PostgreSQL batches further with insertmanyvalues / pipelining).
CHUNK_ROWS = 20_000
#: Rows converted to Python values at a time on the way in (:func:`row_chunks`).
CONVERT_ROWS = 200_000


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


def row_chunks(
    df: pd.DataFrame,
    columns: Sequence[str],
    dialect: str,
    size: int = CHUNK_ROWS,
    order: np.ndarray | None = None,
) -> Iterator[list[tuple]]:
    """Chunks of row tuples in ``columns`` order, converted column-wise a block of
    :data:`CONVERT_ROWS` at a time (a month's table as Python objects at once would
    outweigh the frame itself); ``order`` (row positions) is the order they come in."""
    for block in range(0, len(df), CONVERT_ROWS):
        rows = slice(block, block + CONVERT_ROWS)
        part = df.iloc[rows] if order is None else df.take(order[rows])
        arrays = [_python_values(part[c], dialect) for c in columns]
        for start in range(0, len(part), size):
            yield list(zip(*(a[start : start + size] for a in arrays), strict=True))


def insert_frame(
    conn: Connection, table: sa.Table, df: pd.DataFrame, columns: Sequence[str], order: np.ndarray | None = None
) -> int:
    """Insert every row of ``df`` (already prepared) inside the caller's transaction,
    in ``order`` (row positions; default: as they stand); returns the row count.

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
        _copy_postgres(conn, table, df, columns, order)
        return len(df)
    compiled = sa.insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
    params = list(compiled.positiontup or [])
    if sorted(params) != sorted(columns):
        raise WarehouseError(f"{table.name}: unexpected insert parameters {params}")
    for rows in row_chunks(df, params, dialect, order=order):
        conn.exec_driver_sql(compiled.string, rows)
    return len(df)


def _copy_postgres(
    conn: Connection, table: sa.Table, df: pd.DataFrame, columns: Sequence[str], order: np.ndarray | None
) -> None:
    quote = conn.dialect.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(c) for c in columns)})"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for rows in row_chunks(df, columns, "postgresql", order=order):
                for row in rows:
                    copy.write_row(row)
    finally:
        cursor.close()


def _column(values: Sequence[object], dtype: str | None) -> pd.Series:
    """Build a column straight in its contract dtype (conform then has little left to
    do); anything that does not convert stays object so conform can report it."""
    if dtype is not None:
        arrow = _arrow_column(values, dtype)
        if arrow is not None:
            return arrow
        try:
            return pd.Series(values, dtype=dtype)
        except (TypeError, ValueError):
            pass
    return pd.Series(values, dtype=object)


_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)


def _arrow_column(values: Sequence[object], dtype: str) -> pd.Series | None:
    """Driver values converted by Arrow, in C, to the contract dtype, or None when they
    are not of the type the warehouse stores for it (the general path then decides,
    and conform reports what does not fit).

    Reading is most of what compute and the report spend: converting through pandas'
    sequence constructors checks every value in Python, and SQLAlchemy's SQLite
    DateTime processor parses each timestamp with a regular expression. The stored
    forms are known: text, integers, floats, booleans (0/1 on SQLite) and timestamps
    (text in ``SQLITE_DATETIME_FORMAT`` on SQLite, datetimes from psycopg)."""
    try:
        if dtype == "string":
            return pd.Series(_STRING.__from_arrow__(pa.array(values, type=pa.large_string())))
        if dtype == "Int64":
            return pd.Series(_INT.__from_arrow__(pa.array(values, type=pa.int64())))
        if dtype == "Float64":
            # from_pandas: a NaN (PostgreSQL can store one) is missing, as pandas reads it.
            return pd.Series(_FLOAT.__from_arrow__(pa.array(values, type=pa.float64(), from_pandas=True)))
        if dtype == "boolean":
            arr = pa.array(values)
            if pa.types.is_integer(arr.type) or pa.types.is_null(arr.type):
                if pc.any(pc.invert(pc.is_in(arr, pa.array([0, 1], arr.type)))).as_py():
                    return None  # a stored integer other than 0/1 is not a boolean
                arr = pc.cast(arr, pa.bool_())
            return pd.Series(_BOOL.__from_arrow__(arr)) if pa.types.is_boolean(arr.type) else None
        if dtype == T.TS:
            arr = pa.array(values)
            if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
                # Arrow reads naive ISO 8601 text only: an offset or any other shape
                # raises, and the general path then reports the value.
                arr = pc.cast(arr, pa.timestamp("us"))
            elif pa.types.is_null(arr.type):
                arr = pa.nulls(len(arr), pa.timestamp("us"))
            elif not pa.types.is_timestamp(arr.type) or arr.type.tz is not None:
                return None
            return pd.Series(arr.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False), dtype=T.TS)
    except _ARROW_ERRORS:
        return None
    return None


_STRING = pd.StringDtype()
_INT = pd.Int64Dtype()
_FLOAT = pd.Float64Dtype()
_BOOL = pd.BooleanDtype()


def fetch_typed(
    conn: Connection,
    stmt: sa.Select,
    spec: T.TableSpec,
    extra: dict[str, str] | None = None,
    *,
    chunk_rows: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Run ``stmt`` and yield its rows typed by ``spec`` (plus ``extra``), in frames of
    at most ``chunk_rows`` rows (None: one frame), at least one frame even when empty.

    On SQLite the rows come straight from the driver's cursor: SQLAlchemy's result
    rows and type processors (a Python call per timestamp) cost more than the query.
    Any statement whose parameters need SQLAlchemy's processing, and PostgreSQL (where
    large reads stream through a server-side cursor), go through SQLAlchemy."""
    rows_of = _driver_rows(conn, stmt, chunk_rows) if conn.dialect.name == "sqlite" else None
    if rows_of is None:
        rows_of = _sqlalchemy_rows(conn, stmt, chunk_rows)
    names, chunks = rows_of
    yielded = False
    for rows in chunks:
        yielded = True
        yield typed_frame(rows, names, spec, extra)
    if not yielded:
        yield typed_frame([], names, spec, extra)


def _sqlalchemy_rows(
    conn: Connection, stmt: sa.Select, chunk_rows: int | None
) -> tuple[list[str], Iterator[Sequence[Any]]]:
    if chunk_rows is None:
        result = conn.execute(stmt)
        return list(result.keys()), iter([result.fetchall()])
    result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt)
    return list(result.keys()), result.partitions(chunk_rows)


def _driver_rows(
    conn: Connection, stmt: sa.Select, chunk_rows: int | None
) -> tuple[list[str], Iterator[Sequence[Any]]] | None:
    """Column names and row chunks from the DBAPI cursor, or None when a parameter
    needs a bind processor (only plain text and numbers are passed through as is)."""
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    for bind in compiled.binds.values():
        if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            return None
    params = compiled.params
    args: Sequence[Any] | dict[str, Any] = (
        tuple(params[name] for name in compiled.positiontup or ()) if dialect.positional else params
    )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(compiled.string, args)
    names = [d[0] for d in cursor.description]

    def chunks() -> Iterator[Sequence[Any]]:
        try:
            if chunk_rows is None:
                yield cursor.fetchall()
                return
            while rows := cursor.fetchmany(chunk_rows):
                yield rows
        finally:
            cursor.close()

    return names, chunks()


def read_typed(
    conn: Connection, stmt: sa.Select, spec: T.TableSpec, extra: dict[str, str] | None = None
) -> pd.DataFrame:
    """Run ``stmt`` and return its rows typed by ``spec`` (plus ``extra`` columns with
    their dtypes, e.g. ``batch``). A stored value that no longer fits the contract
    means the warehouse was written by something else: that is an error, not a null."""
    # Executed here rather than through pd.read_sql so that a database error stays a
    # driver error (pandas re-wraps it) and becomes a one-line WarehouseError.
    return next(fetch_typed(conn, stmt, spec, extra))


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
