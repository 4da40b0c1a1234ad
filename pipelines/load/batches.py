"""Loading and reading monthly batches.

A batch (``YYYY-MM``) is the unit of delivery and therefore the unit of replacement:
re-running a month's load must leave the warehouse exactly as one run would (Airflow
retries and back-fills re-run tasks), so a load deletes everything the batch wrote
before and inserts the new rows in the same transaction. Readers never see a half
batch, and a failed load leaves the previous state intact.

Records may be delivered more than once: Patient, Organization and Location
resources are re-sent in every batch that references them, and a source may correct
a record in a later batch. Each delivery is kept (history, provenance); which one a
reader sees is the read model's rule (:mod:`pipelines.load.snapshot`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import schema as S
from pipelines.load.engine import read_connection, write_transaction
from pipelines.load.frames import insert_frame, prepare, read_typed
from pipelines.load.shards import BUCKET, MOVABLE_TABLES, SHARED, assign_buckets
from pipelines.load.snapshot import lookup_records
from pipelines.periods import Month

log = logging.getLogger(__name__)


def _batch_table(name: str) -> tuple[sa.Table, T.TableSpec]:
    if name not in S.BATCH_TABLES:
        raise WarehouseError(f"unknown warehouse table {name!r}; expected one of {', '.join(S.BATCH_TABLES)}")
    return S.BATCH_TABLES[name]


def replace_batch(
    engine: Engine,
    batch: str,
    *,
    tables: dict[str, pd.DataFrame],
    quarantine: pd.DataFrame,
    reconciliation: pd.DataFrame,
    checks: pd.DataFrame,
    profiles: pd.DataFrame | None = None,
    fingerprint: str | None = None,
    accepted_as: str = "",
) -> dict[str, int]:
    """Replace everything ``batch`` holds in the warehouse with these frames.

    Source tables missing from ``tables`` end up empty for this batch (the batch did
    not deliver them). Each source row is stamped with its patient shard's bucket
    (:mod:`pipelines.load.shards`). Every frame is checked against the contract before anything is
    written. Returns rows written per table (every batch table, zeros included).
    ``fingerprint`` (of the delivered files) and ``accepted_as`` (how the delivery
    guard was passed) are recorded in ``load_batches``.
    """
    batch = Month.parse(batch).label
    unknown = sorted(set(tables) - set(T.TABLES))
    if unknown:
        raise WarehouseError(f"replace_batch: unknown source table(s): {', '.join(unknown)}")
    fixed = {S.BATCH: batch}
    frames: dict[str, pd.DataFrame] = {}
    for name, spec in T.TABLES.items():
        df = tables.get(name)
        frames[name] = prepare(
            df if df is not None else T.empty_frame(spec), spec, unique=list(spec.key_columns), fixed=fixed
        )
    buckets = assign_buckets(frames, lambda table, ids, columns: lookup_records(engine, table, ids, columns))
    for name in T.TABLES:
        stamped = pd.Series(buckets.get(name, SHARED), index=frames[name].index, dtype="Int16")
        frames[name][BUCKET] = stamped.mask(stamped == SHARED)
    frames[T.QUARANTINE.name] = prepare(quarantine, T.QUARANTINE, fixed=fixed)
    frames[T.RECONCILIATION.name] = prepare(reconciliation, T.RECONCILIATION, unique=["table_name"], fixed=fixed)
    frames[T.VALIDATION_CHECKS.name] = prepare(checks, T.VALIDATION_CHECKS, unique=["table_name", "check"], fixed=fixed)
    frames[T.COLUMN_PROFILES.name] = prepare(
        profiles if profiles is not None else T.empty_frame(T.COLUMN_PROFILES),
        T.COLUMN_PROFILES,
        unique=["table_name", "column_name"],
        fixed=fixed,
    )

    written: dict[str, int] = {}
    with write_transaction(engine, f"loading batch {batch}") as conn:
        _keep_check_history(conn, batch, frames[T.VALIDATION_CHECKS.name])
        for name, (table, spec) in S.BATCH_TABLES.items():
            conn.execute(sa.delete(table).where(table.c[S.BATCH] == batch))
            extra = [BUCKET] if name in T.TABLES else []
            order = _bucket_order(frames[name]) if name in T.TABLES else None
            written[name] = insert_frame(conn, table, frames[name], [S.BATCH, *extra, *spec.column_names], order)
        moved = _record_moves(conn, batch)
        conn.execute(sa.delete(S.load_batches).where(S.load_batches.c[S.BATCH] == batch))
        conn.execute(
            sa.insert(S.load_batches),
            {
                S.BATCH: batch,
                "loaded_at": S.utc_now(),
                "rows_written": sum(written.values()),
                "fingerprint": fingerprint,
                "accepted_as": accepted_as,
            },
        )
    log.info("batch %s loaded: %d rows", batch, sum(written.values()))
    if moved:
        log.info("batch %s: %d record(s) moved to another patient shard", batch, moved)
    return written


def _bucket_order(frame: pd.DataFrame) -> np.ndarray:
    """The order a source table's rows are stored in: by bucket (stable; shared rows
    first). A shard's rows of one batch then sit together in the table's pages, so its
    read touches about 1/shards of them instead of every page. Readers order rows
    themselves, so nothing else changes."""
    return np.argsort(frame[BUCKET].fillna(SHARED).to_numpy(dtype=np.int16), kind="stable")


def _record_moves(conn: sa.Connection, batch: str) -> int:
    """Replace ``moved_records`` of ``batch``: every record this batch delivered in a
    different bucket from another delivery of it (a patient merge re-sends encounters
    under the surviving patient), with both deliveries, so each shard the record passed
    through reads them all (:func:`pipelines.load.snapshot.read_deliveries`). Runs in the
    load's transaction, after its rows are written; returns how many records moved."""
    moves = S.moved_records
    conn.execute(sa.delete(moves).where(moves.c[S.BATCH] == batch))
    found = 0
    for name in MOVABLE_TABLES:
        table = S.SOURCE_TABLES[name]
        spec = T.TABLES[name]
        new, old = table.alias("delivered"), table.alias("other")
        typed = new.c[spec.type_column] if spec.type_column else sa.literal("")
        stmt = (
            sa.select(typed.label("record_type"), new.c[spec.key].label("record_id"), old.c[S.BATCH])
            .select_from(new.join(old, sa.and_(*(old.c[k] == new.c[k] for k in spec.key_columns))))
            .where(new.c[S.BATCH] == batch, old.c[S.BATCH] != batch, old.c[BUCKET] != new.c[BUCKET])
        )
        rows = {(str(t), str(i), str(b)) for t, i, b in conn.execute(stmt)}
        if not rows:
            continue
        records = {(t, i) for t, i, _ in rows}
        found += len(records)
        pairs = rows | {(t, i, batch) for t, i in records}
        conn.execute(
            sa.insert(moves),
            [
                {S.BATCH: batch, "table_name": name, "record_type": t, "record_id": i, "delivery_batch": b}
                for t, i, b in sorted(pairs)
            ],
        )
    found += _record_apart_surveys(conn, batch)
    return found


def _record_apart_surveys(conn: sa.Connection, batch: str) -> int:
    """An encounter that a survey response about it is not stored beside (the response
    arrived first and was stamped by the encounter id, or was stamped before a merge
    moved the encounter) is recorded as moved, with its deliveries: every shard then
    reads it, and the responses about it follow it to its shard when read
    (:class:`pipelines.load.snapshot.Snapshot`)."""
    moves = S.moved_records
    survey, encounter = S.SOURCE_TABLES["survey_responses"].alias("s"), S.SOURCE_TABLES["encounters"].alias("e")
    rows: set[tuple[str, str]] = set()
    for delivered in (survey, encounter):  # one side in this batch: each read through an index
        stmt = (
            sa.select(encounter.c["encounter_id"], encounter.c[S.BATCH])
            .select_from(survey.join(encounter, survey.c["encounter_id"] == encounter.c["encounter_id"]))
            .where(delivered.c[S.BATCH] == batch, survey.c[BUCKET] != encounter.c[BUCKET])
            .distinct()
        )
        rows |= {(str(i), str(b)) for i, b in conn.execute(stmt)}
    if not rows:
        return 0
    recorded = {
        (str(i), str(b))
        for i, b in conn.execute(
            sa.select(moves.c.record_id, moves.c.delivery_batch).where(
                moves.c[S.BATCH] == batch, moves.c.table_name == "encounters"
            )
        )
    }
    new = sorted(rows - recorded)
    if new:
        conn.execute(
            sa.insert(moves),
            [
                {S.BATCH: batch, "table_name": "encounters", "record_type": "", "record_id": i, "delivery_batch": b}
                for i, b in new
            ],
        )
    return len({i for i, _ in new})


def _keep_check_history(conn: sa.Connection, batch: str, new_checks: pd.DataFrame) -> None:
    """Copy the checks of the load about to be replaced into ``validation_check_history``
    (stamped with that load's time), so a report can compare this run with the last. A
    reload whose checks come out the same keeps nothing: an identical rerun leaves the
    warehouse identical, and "the last run" then reads the same as this one."""
    checks, history, loads = S.validation_checks, S.validation_check_history, S.load_batches
    cols = [c for c in T.CHECK_HISTORY.column_names if c not in ("batch", "loaded_at")]
    key = ["table_name", "check", "violated", "denominator", "status"]
    old = conn.execute(sa.select(*(checks.c[c] for c in key)).where(checks.c[S.BATCH] == batch)).fetchall()
    new = [tuple(r) for r in new_checks[key].itertuples(index=False, name=None)] if len(new_checks) else []
    norm = lambda rows: sorted((str(a), str(b), int(c), int(d), str(e)) for a, b, c, d, e in rows)  # noqa: E731
    if not old or norm(old) == norm(new):
        return
    source = (
        sa.select(checks.c[S.BATCH], loads.c.loaded_at, *(checks.c[c] for c in cols))
        .join(loads, loads.c[S.BATCH] == checks.c[S.BATCH])
        .where(checks.c[S.BATCH] == batch)
    )
    conn.execute(sa.insert(history).from_select(["batch", "loaded_at", *cols], source))


def read_check_history(engine: Engine, batch: str) -> pd.DataFrame:
    """Checks of the earlier loads of ``batch``, newest load first."""
    t = S.validation_check_history
    stmt = sa.select(*(t.c[c] for c in T.CHECK_HISTORY.column_names)).where(t.c.batch == batch)
    stmt = stmt.order_by(t.c.loaded_at.desc(), t.c.table_name, t.c.check)
    with read_connection(engine, f"reading the check history of {batch}") as conn:
        return read_typed(conn, stmt, T.CHECK_HISTORY)


def read_batch(engine: Engine, name: str, batch: str) -> pd.DataFrame:
    """Rows one batch wrote to ``quarantine``, ``reconciliation`` or ``validation_checks``
    (a source table name also works: that batch's deliveries, undeduplicated)."""
    return read_batches(engine, name, [batch])


def read_batches(engine: Engine, name: str, batches: Sequence[str]) -> pd.DataFrame:
    """Rows several batches wrote to one batch table (``reconciliation``,
    ``column_profiles`` ...), with their ``batch``, in batch order and within a batch in
    the order written (quarantine) or by key: the delivery guard's history."""
    table, spec = _batch_table(name)
    wanted = [Month.parse(b).label for b in batches]
    within = (
        [table.c[S.QUARANTINE_ID]]
        if name == T.QUARANTINE.name
        else [table.c[c] for c in table.primary_key.columns.keys() if c != S.BATCH]
    )
    stmt = sa.select(*(table.c[c] for c in spec.column_names), table.c[S.BATCH]).where(table.c[S.BATCH].in_(wanted))
    stmt = stmt.order_by(table.c[S.BATCH], *within)
    with read_connection(engine, f"reading {name} for {', '.join(wanted)}") as conn:
        return read_typed(conn, stmt, spec, {S.BATCH: "string"})


def batch_records(engine: Engine) -> pd.DataFrame:
    """``load_batches``: every loaded batch, when, how many rows, its fingerprint and
    how it passed the delivery guard."""
    t = S.load_batches
    with read_connection(engine, "listing batches") as conn:
        rows = conn.execute(sa.select(*t.c).order_by(t.c[S.BATCH])).fetchall()
    return pd.DataFrame(rows, columns=[c.name for c in t.c])


def list_batches(engine: Engine) -> list[str]:
    """Batches loaded so far, oldest first."""
    stmt = sa.select(S.load_batches.c[S.BATCH]).order_by(S.load_batches.c[S.BATCH])
    with read_connection(engine, "listing batches") as conn:
        return [row[0] for row in conn.execute(stmt)]


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per warehouse table (every delivery, all batches): for status output and
    for checking that a re-run changed nothing."""
    names = [t for t in S.metadata.sorted_tables if t.name != S.schema_version.name]
    counts: dict[str, int] = {}
    with read_connection(engine, "counting rows") as conn:
        for table in sorted(names, key=lambda t: t.name):
            counts[table.name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    return counts
