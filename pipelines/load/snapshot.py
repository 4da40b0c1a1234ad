"""The read model: the warehouse as it was known at a batch horizon.

Records are delivered more than once (a Patient is re-sent with every batch that
references it; a source corrects a record in a later batch), and every delivery is
kept. What any reader means by "the encounters" is one row per record, the latest
delivery winning, as of a batch horizon (a past month is recomputed exactly as it was
known then). That rule lives here, once: :func:`latest_per_key`, and for the rows that
are parts of a record (its codings, location history, diagnoses), those delivered with
the record's latest delivery (:func:`of_latest_parents`: a correction that drops a code
withdraws it). Compute, report and export read source tables only through a
:class:`Snapshot`.

A snapshot also reads no more than the computation needs (:class:`Needs`): the columns
the indicators being computed read (provenance is never needed), and from ``codings``,
the largest table by far, only the rows whose (system, code) is in a value set those
indicators use or is a code they name directly. The database applies that filter
(the pairs are joined as a temporary table) and ``codings`` is read in chunks, so
neither Python nor memory ever holds the rows left out.

Several horizons share one read of every table (:class:`DeliveryReader`): a backfill
computes each month from its own horizon, and the month's revision window from theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import schema as S
from pipelines.load.engine import read_connection
from pipelines.load.frames import fetch_typed, read_typed
from pipelines.load.shards import BUCKET, MOVABLE_TABLES, SHARD_BUCKETS, SHARDED_TABLES, bucket_range
from pipelines.periods import Month
from pipelines.strings import arrow_strings, positions

#: (system, code) pairs: the ``codings`` rows worth keeping.
CodingPairs = frozenset[tuple[str, str]]
#: Rows per chunk when streaming ``codings``.
CHUNK_ROWS = 250_000
#: Separates system and code in the joined keys matched in memory (a control
#: character, which text in the warehouse never holds: :func:`pipelines.tables.clean_text`).
_SEP = "\x1f"


SURVEYS = "survey_responses"


def latest_per_key(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """One row per record of table ``name``: the latest ``batch`` wins (rows without a
    ``batch`` column count as one delivery; within one, the last row in source order)."""
    spec = T.TABLES[name]
    keys = [c for c in spec.key_columns if c in frame.columns]
    if "batch" in frame.columns:
        frame = frame.sort_values("batch", kind="stable")
    dup = frame.duplicated(subset=keys, keep="last").to_numpy(dtype=bool)
    return frame[~dup].reset_index(drop=True) if dup.any() else frame.reset_index(drop=True)


#: Child tables whose parent is an encounter, by the column naming it (``codings`` name
#: theirs by ``table_name`` and ``record_id``).
ENCOUNTER_CHILDREN = {"encounter_locations": "encounter_id", "encounter_diagnoses": "encounter_id"}


def of_latest_parents(children: pd.DataFrame, name: str, parents: Callable[[str], pd.DataFrame | None]) -> pd.DataFrame:
    """The rows of child table ``name`` delivered with their parent's latest delivery.

    A record's codings, location history and diagnoses come and go with the record: a
    source that corrects an encounter and sends one diagnosis code where it sent two
    has withdrawn the other, and no later row repeats the withdrawn one's key, so
    :func:`latest_per_key` alone would keep it for ever. ``parents(table)`` is that
    table's latest rows (None: not read, and its children are left as they are); a
    child whose parent is not among them is not current either. Rows without a
    ``batch`` (frames of one delivery) are left as they are.
    """
    if "batch" not in children.columns or not len(children):
        return children
    keep = np.ones(len(children), dtype=bool)
    batch = children["batch"].astype("string")
    if name in ENCOUNTER_CHILDREN:
        groups = {"encounters": (np.ones(len(children), dtype=bool), children[ENCOUNTER_CHILDREN[name]])}
    else:
        tables = children["table_name"].astype("string")
        groups = {}
        for parent in sorted(set(tables.dropna().unique()) & set(T.TABLES)):
            rows = (tables == parent).to_numpy(dtype=bool, na_value=False)
            ids = children.loc[rows, [c for c in ("record_type", "record_id") if c in children.columns]]
            groups[parent] = (rows, T.coding_record_keys(ids))
    for parent, (rows, keys) in groups.items():
        latest = parents(parent)
        if latest is None or "batch" not in latest.columns:
            continue
        at = positions(keys, T.record_keys(parent, latest))
        current = pc.take(arrow_strings(latest["batch"]), pa.array(at, mask=at < 0))
        same = pc.equal(current, arrow_strings(batch[rows]))
        keep[rows] = same.fill_null(False).to_numpy(zero_copy_only=False)
    return children if keep.all() else children[keep].reset_index(drop=True)


@dataclass(frozen=True)
class Needs:
    """What a reader needs from the source tables.

    ``columns``: table -> the columns read (None: every contract column but provenance).
    Tables not named are not read at all (an empty frame of the contract stands in).
    ``codings``: the (system, code) pairs of the ``codings`` rows worth keeping (None:
    all of them). The warehouse matches them in SQL, so rows no indicator can use never
    become Python objects; frames in memory are matched by :meth:`keeps`.
    """

    columns: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    codings: CodingPairs | None = None

    def keeps(self, codings: pd.DataFrame) -> np.ndarray:
        """Which rows of a ``codings`` frame to keep (all, without a filter)."""
        if self.codings is None:
            return np.ones(len(codings), dtype=bool)
        joined = codings["system"].astype("string") + _SEP + codings["code"].astype("string")
        return joined.isin(self._joined).to_numpy(dtype=bool, na_value=False)

    @cached_property
    def _joined(self) -> frozenset[str]:
        return frozenset(f"{system}{_SEP}{code}" for system, code in self.codings or ())

    @classmethod
    def everything(cls) -> Needs:
        return cls({name: None for name in T.TABLES})

    def read_columns(self, name: str) -> list[str] | None:
        """The columns to read for ``name`` (the keys always), None if it is not needed."""
        if name not in self.columns:
            return None
        spec = T.TABLES[name]
        wanted = self.columns[name]
        provenance = {p for p, _ in T.PROVENANCE}
        if wanted is None:
            return [c for c in spec.column_names if c not in provenance]
        unknown = sorted(set(wanted) - set(spec.column_names))
        if unknown:
            raise WarehouseError(f"{name}: no column(s) {', '.join(unknown)} in the table contract")
        return [c for c in spec.column_names if c in set(wanted) | set(spec.key_columns)]


def read_deliveries(
    engine: Engine,
    name: str,
    *,
    upto_batch: str | None = None,
    columns: list[str] | None = None,
    codings: CodingPairs | None = None,
    shard: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Every delivery of a source table's records (no later than ``upto_batch``), with the
    ``batch`` that delivered each: a record re-sent in three batches appears three times.
    ``columns`` (default: all) are read; ``codings`` (for the ``codings`` table) keeps
    only rows with one of those (system, code) pairs, matched by the database.
    ``shard`` = (index, count) reads only that patient shard's rows (and shared ones),
    plus every delivery of a record that moved into or out of it (``moved_records``),
    with each row's ``bucket``: which of those the shard keeps is decided once the
    latest delivery is known (:class:`Snapshot`)."""
    if name not in T.TABLES:
        raise WarehouseError(f"unknown source table {name!r}; expected one of {', '.join(T.TABLES)}")
    spec = T.TABLES[name]
    table = S.SOURCE_TABLES[name]
    cols = columns or spec.column_names
    bcol = table.c[S.BATCH]
    stmt = sa.select(*(table.c[c] for c in cols), bcol)
    order = [bcol, *(table.c[c] for c in ("source_file", "source_line") if c in spec.column_names)]
    stmt = stmt.order_by(*order, *(table.c[c] for c in spec.key_columns))
    if upto_batch is not None:
        stmt = stmt.where(bcol <= Month.parse(upto_batch).label)
    low, high = bucket_range(*shard) if shard is not None else (0, SHARD_BUCKETS)
    extra = {S.BATCH: "string"}
    moved: list[sa.Select] = []
    if name in SHARDED_TABLES and (low, high) != (0, SHARD_BUCKETS):  # one shard of all: a plain scan is faster
        bucket = table.c[BUCKET]
        stmt = stmt.where(sa.or_(sa.and_(bucket >= low, bucket < high), bucket.is_(None)))
        if name in MOVABLE_TABLES:
            stmt = stmt.add_columns(bucket)
            extra[BUCKET] = "Int16"
            moved.append(_moved_deliveries(name, cols, upto_batch, (low, high)))
            if name == SURVEYS and "encounter_id" in cols:
                moved.append(_surveys_of_moved_encounters(cols, upto_batch, (low, high)))
    sub = _subset(spec, cols)
    with read_connection(engine, f"reading {name}") as conn:
        if moved:
            own = read_typed(conn, stmt, sub, extra)
            others = [frame for frame in (read_typed(conn, m, sub, extra) for m in moved) if len(frame)]
            return pd.concat([own, *others], ignore_index=True) if others else own
        if codings is None or name != "codings":
            return read_typed(conn, stmt, sub, extra)
        keys = _pairs_table(conn, codings)
        stmt = stmt.where(sa.exists().where(keys.c["system"] == table.c["system"], keys.c["code"] == table.c["code"]))
        parts = list(fetch_typed(conn, stmt, sub, extra, chunk_rows=CHUNK_ROWS))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _moved_deliveries(name: str, cols: list[str], upto_batch: str | None, buckets: tuple[int, int]) -> sa.Select:
    """The deliveries outside ``buckets`` of the records of ``name`` that moved between
    buckets (``moved_records``, found at load), up to ``upto_batch``: a shard holding one
    delivery of such a record needs the others to tell which one is the latest."""
    table, moves = S.SOURCE_TABLES[name], S.moved_records
    spec = T.TABLES[name]
    wanted = sa.select(moves.c.delivery_batch, moves.c.record_type, moves.c.record_id).where(moves.c.table_name == name)
    if upto_batch is not None:
        wanted = wanted.where(moves.c[S.BATCH] <= Month.parse(upto_batch).label)
    pairs = wanted.distinct().subquery("moved")
    on = [table.c[S.BATCH] == pairs.c.delivery_batch, table.c[spec.key] == pairs.c.record_id]
    if spec.type_column:
        on.append(table.c[spec.type_column] == pairs.c.record_type)
    bucket, low, high = table.c[BUCKET], *buckets
    stmt = sa.select(*(table.c[c] for c in cols), table.c[S.BATCH], bucket).select_from(table.join(pairs, sa.and_(*on)))
    stmt = stmt.where(sa.or_(bucket < low, bucket >= high))
    if upto_batch is not None:
        stmt = stmt.where(table.c[S.BATCH] <= Month.parse(upto_batch).label)
    return stmt.order_by(table.c[S.BATCH], *(table.c[c] for c in spec.key_columns))


def _surveys_of_moved_encounters(cols: list[str], upto_batch: str | None, buckets: tuple[int, int]) -> sa.Select:
    """The survey responses outside ``buckets`` about encounters that moved between
    buckets (or were stored apart from a response about them): such a response belongs
    where its encounter lives, which the shard decides once it knows that
    (:meth:`Snapshot._in_shard`)."""
    table, moves = S.SOURCE_TABLES[SURVEYS], S.moved_records
    wanted = sa.select(moves.c.record_id).where(moves.c.table_name == "encounters")
    if upto_batch is not None:
        wanted = wanted.where(moves.c[S.BATCH] <= Month.parse(upto_batch).label)
    bucket, low, high = table.c[BUCKET], *buckets
    stmt = sa.select(*(table.c[c] for c in cols), table.c[S.BATCH], bucket).where(
        table.c["encounter_id"].in_(wanted.distinct()), sa.or_(bucket < low, bucket >= high)
    )
    if upto_batch is not None:
        stmt = stmt.where(table.c[S.BATCH] <= Month.parse(upto_batch).label)
    return stmt


def _pairs_table(conn: Connection, pairs: CodingPairs) -> sa.Table:
    """A temporary table of ``pairs`` on ``conn`` (SQLite and PostgreSQL both keep
    temporary tables per session, and the read's transaction is rolled back when its
    connection closes, which drops it): a value-set filter as a join, whatever its size,
    rather than thousands of bound parameters."""
    keys = sa.Table(
        "careqi_coding_pairs",
        sa.MetaData(),
        sa.Column("system", sa.Text(), primary_key=True),
        sa.Column("code", sa.Text(), primary_key=True),
        prefixes=["TEMPORARY"],
    )
    keys.drop(conn, checkfirst=True)
    keys.create(conn)
    if pairs:
        conn.execute(keys.insert(), [{"system": system, "code": code} for system, code in sorted(pairs)])
    return keys


#: Ids per query when looking records up by id (well under SQLite's variable limit).
LOOKUP_CHUNK = 5_000


def lookup_records(engine: Engine, name: str, ids: Sequence[str], columns: Sequence[str] = ()) -> pd.DataFrame:
    """The latest delivery of each of ``ids`` in a source table, with its key columns and
    ``columns``: how validation resolves a reference to a record loaded earlier. Only the
    ids asked for are read (parameterised, in chunks), never the whole table."""
    if name not in T.TABLES:
        raise WarehouseError(f"unknown source table {name!r}; expected one of {', '.join(T.TABLES)}")
    spec = T.TABLES[name]
    table = S.SOURCE_TABLES[name]
    wanted = [*spec.key_columns, *[c for c in columns if c not in spec.key_columns]]
    order = [c for c in ("source_file", "source_line") if c in spec.column_names]
    sub = _subset(spec, [*wanted, *order])
    key = table.c[spec.key]
    parts = []
    unique = sorted({str(i) for i in ids})
    with read_connection(engine, f"looking up {name}") as conn:
        for start in range(0, len(unique), LOOKUP_CHUNK):
            stmt = (
                sa.select(*(table.c[c] for c in sub.column_names), table.c[S.BATCH])
                .where(key.in_(unique[start : start + LOOKUP_CHUNK]))
                .order_by(table.c[S.BATCH], *(table.c[c] for c in order))
            )
            parts.append(read_typed(conn, stmt, sub, {S.BATCH: "string"}))
    frame = pd.concat(parts, ignore_index=True) if parts else T.empty_frame(sub).assign(batch=pd.Series(dtype="string"))
    return latest_per_key(frame, name)[wanted]


def _subset(spec: T.TableSpec, cols: list[str]) -> T.TableSpec:
    """The contract of ``cols`` of ``spec`` (provenance columns included when asked for)."""
    provenance = tuple(T.Column(p, dtype) for p, dtype in T.PROVENANCE if spec.provenance and p in cols)
    own = tuple(c for c in spec.columns if c.name in cols)
    return T.TableSpec(spec.name, spec.key, own + provenance, spec.grain, False, spec.type_column)


class Snapshot(Mapping[str, pd.DataFrame]):
    """Source tables as of a batch horizon, one row per record, the latest delivery
    winning; tables are read when first asked for. A table the needs do not name reads
    as an empty frame of the contract."""

    def __init__(
        self,
        deliveries: Callable[[str], pd.DataFrame | None],
        horizon: str | None,
        buckets: tuple[int, int] | None = None,
    ) -> None:
        self._deliveries = deliveries
        self._horizon = None if horizon is None else Month.parse(horizon).label
        self._buckets = buckets
        self._tables: dict[str, pd.DataFrame] = {}
        #: encounter id -> bucket of its latest delivery (a shard's read of encounters).
        self._homes = pd.Series(dtype="Int16")

    @classmethod
    def of(cls, frames: Mapping[str, pd.DataFrame], horizon: str | None = None, needs: Needs | None = None) -> Snapshot:
        """A snapshot of frames already in memory (one extraction, a test's rows): the same
        latest-delivery rule as the warehouse's, and with ``needs`` the same columns and
        codings a warehouse snapshot would hold."""

        def deliveries(name: str) -> pd.DataFrame | None:
            frame = frames.get(name)
            if frame is None or needs is None:
                return frame
            columns = needs.read_columns(name)
            if columns is None:
                return None
            frame = frame[[c for c in [*columns, S.BATCH] if c in frame.columns]]
            if name == "codings" and needs.codings is not None:
                frame = frame[needs.keeps(frame)]
            return frame

        return cls(deliveries, horizon)

    @property
    def horizon(self) -> str | None:
        return self._horizon

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in T.TABLES:
            raise KeyError(name)
        if name not in self._tables:
            frame = self._deliveries(name)
            if frame is None:
                frame = T.empty_frame(T.TABLES[name])
            if self._horizon is not None and "batch" in frame.columns:
                later = (frame["batch"] > self._horizon).to_numpy(dtype=bool, na_value=False)
                if later.any():
                    frame = frame[~later]
            frame = latest_per_key(frame, name)
            if BUCKET in frame.columns:  # a shard's read: records whose latest delivery is its own
                frame = self._in_shard(name, frame)
            if name in T.CHILD_TABLES:
                frame = of_latest_parents(frame, name, self._parent)
            self._tables[name] = frame
        return self._tables[name]

    def _in_shard(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Drop the records whose latest delivery lies in another shard's buckets (read
        because the record moved), and the bucket column. A survey response lives where
        its encounter's latest delivery does, when the shard read that encounter."""
        bucket = frame[BUCKET]
        if name == "encounters":
            self._homes = pd.Series(bucket.to_numpy(), index=frame["encounter_id"].to_numpy())
        elif name == SURVEYS and "encounter_id" in frame.columns and self._deliveries("encounters") is not None:
            self["encounters"]
            followed = frame["encounter_id"].map(self._homes).astype("Int16")
            bucket = followed.fillna(bucket)
        frame = frame.drop(columns=[BUCKET])
        if self._buckets is None:
            return frame
        low, high = self._buckets
        outside = ((bucket < low) | (bucket >= high)).to_numpy(dtype=bool, na_value=False)
        return frame[~outside].reset_index(drop=True) if outside.any() else frame

    def _parent(self, name: str) -> pd.DataFrame | None:
        """A parent table's latest rows, None when it is not read."""
        return None if self._deliveries(name) is None else self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(T.TABLES)

    def __len__(self) -> int:
        return len(T.TABLES)


class DeliveryReader:
    """Reads each needed table's deliveries once (up to ``upto_batch``), for snapshots at
    several horizons; with ``shard`` = (index, count), only that patient shard's."""

    def __init__(
        self, engine: Engine, needs: Needs, upto_batch: str | None = None, shard: tuple[int, int] | None = None
    ) -> None:
        self._engine = engine
        self._needs = needs
        self._upto = upto_batch
        self._shard = shard
        self._read: dict[str, pd.DataFrame | None] = {}
        #: The last snapshot handed out (only one is kept: horizons are asked for in
        #: order and never again, and each holds a full set of frames).
        self._last: Snapshot | None = None

    def deliveries(self, name: str) -> pd.DataFrame | None:
        if name not in self._read:
            columns = self._needs.read_columns(name)
            if columns is None:
                self._read[name] = None
            else:
                keep = self._needs.codings if name == "codings" else None
                self._read[name] = read_deliveries(
                    self._engine, name, upto_batch=self._upto, columns=columns, codings=keep, shard=self._shard
                )
        return self._read[name]

    def snapshot(self, horizon: str | None) -> Snapshot:
        """The tables as of ``horizon``. Every horizon at or past ``upto_batch`` sees the
        same deliveries, so those share one snapshot and the tables it has settled: a
        monthly run's month and its revision months are evaluated on one set of frames
        rather than three identical ones."""
        label = None if horizon is None else Month.parse(horizon).label
        if self._upto is not None:
            upto = Month.parse(self._upto).label
            label = upto if label is None or label >= upto else label
        if self._last is None or self._last.horizon != label:
            self._last = Snapshot(self.deliveries, label, None if self._shard is None else bucket_range(*self._shard))
        return self._last


def count_patients(engine: Engine, upto_batch: str | None = None) -> int:
    """Distinct patients delivered up to ``upto_batch``: what the shard count is sized by."""
    table = S.SOURCE_TABLES["patients"]
    stmt = sa.select(sa.func.count(sa.distinct(table.c["patient_id"])))
    if upto_batch is not None:
        stmt = stmt.where(table.c[S.BATCH] <= Month.parse(upto_batch).label)
    with read_connection(engine, "counting patients") as conn:
        return int(conn.execute(stmt).scalar_one())


def read_table(engine: Engine, name: str, *, upto_batch: str | None = None) -> pd.DataFrame:
    """One source table as of ``upto_batch`` (default: everything loaded), every column
    with provenance and the ``batch`` that delivered each row: a snapshot of one table."""
    frame = read_deliveries(engine, name, upto_batch=upto_batch)
    return Snapshot.of({name: frame}, upto_batch)[name]


__all__ = [
    "CHUNK_ROWS",
    "LOOKUP_CHUNK",
    "CodingPairs",
    "DeliveryReader",
    "Needs",
    "Snapshot",
    "count_patients",
    "latest_per_key",
    "lookup_records",
    "of_latest_parents",
    "read_deliveries",
    "read_table",
]
