"""The daily patient-feedback run's tables: SLA breaches per day and comment labels.

Both are idempotent: a day's breaches are a set (re-running the day replaces them, other
days stay), and a text's labels are keyed by (source table, record id), so classifying
it again with the same or a newer model replaces its row.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.load import schema as S
from pipelines.load.engine import read_connection, write_transaction
from pipelines.load.frames import insert_frame, prepare, read_typed

_BREACH_KEY = ["detected_on", "indicator_id", "complaint_id"]
_LABEL_KEY = ["source_table", "record_id"]


def replace_breaches(engine: Engine, day: str, breaches: pd.DataFrame) -> int:
    """Replace the breaches found on ``day`` with ``breaches``; returns rows written."""
    when = pd.Timestamp(day).to_pydatetime()
    frame = prepare(breaches, T.SLA_BREACHES, unique=_BREACH_KEY)
    if len(frame) and not (pd.to_datetime(frame["detected_on"]) == pd.Timestamp(day)).all():
        from pipelines.errors import WarehouseError

        raise WarehouseError(f"breaches for {day} carry another detected_on")
    t = S.sla_breaches
    with write_transaction(engine, f"storing SLA breaches for {day}") as conn:
        conn.execute(sa.delete(t).where(t.c.detected_on == when))
        return insert_frame(conn, t, frame, T.SLA_BREACHES.column_names)


def read_breaches(engine: Engine, *, day: str | None = None, before: str | None = None) -> pd.DataFrame:
    """Breaches of one day, or of the latest run before ``before`` (the previous list)."""
    t = S.sla_breaches
    cols = [t.c[c] for c in T.SLA_BREACHES.column_names]
    with read_connection(engine, "reading SLA breaches") as conn:
        if before is not None:
            last = conn.execute(
                sa.select(sa.func.max(t.c.detected_on)).where(t.c.detected_on < pd.Timestamp(before).to_pydatetime())
            ).scalar()
            if last is None:
                return T.empty_frame(T.SLA_BREACHES)
            stmt = sa.select(*cols).where(t.c.detected_on == last)
        elif day is not None:
            stmt = sa.select(*cols).where(t.c.detected_on == pd.Timestamp(day).to_pydatetime())
        else:
            stmt = sa.select(*cols)
        return read_typed(conn, stmt.order_by(*(t.c[c] for c in _BREACH_KEY)), T.SLA_BREACHES)


def upsert_labels(engine: Engine, labels: pd.DataFrame) -> int:
    """Store these texts' labels, replacing any earlier labels of the same records."""
    frame = prepare(labels, T.COMMENT_LABELS, unique=_LABEL_KEY)
    t = S.comment_labels
    with write_transaction(engine, "storing comment labels") as conn:
        for source, ids in frame.groupby("source_table")["record_id"]:
            keys = ids.astype(str).tolist()
            for start in range(0, len(keys), 500):  # bounded IN lists (SQLite's parameter limit)
                conn.execute(
                    sa.delete(t).where(t.c.source_table == source, t.c.record_id.in_(keys[start : start + 500]))
                )
        return insert_frame(conn, t, frame, T.COMMENT_LABELS.column_names)


def read_labels(engine: Engine, *, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Every stored comment label (optionally of some source tables)."""
    t = S.comment_labels
    stmt = sa.select(*(t.c[c] for c in T.COMMENT_LABELS.column_names))
    if sources is not None:
        stmt = stmt.where(t.c.source_table.in_(list(sources)))
    with read_connection(engine, "reading comment labels") as conn:
        return read_typed(conn, stmt.order_by(*(t.c[c] for c in _LABEL_KEY)), T.COMMENT_LABELS)


__all__ = ["read_breaches", "read_labels", "replace_breaches", "upsert_labels"]
