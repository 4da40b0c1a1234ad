"""Indicator results and per-subject membership in the warehouse.

Compute writes one reporting period at a time, and may recompute only some
indicators (a definition was fixed, a new indicator was added). Replacement is
therefore scoped to (period, indicator ids present in the new frames): other
periods and other indicators of the same period stay untouched, and re-running a
computation leaves exactly one copy of each row.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.load import schema as S
from pipelines.load.batches import check_month
from pipelines.load.engine import read_connection, write_transaction
from pipelines.load.frames import insert_frame, prepare, read_typed

_RESULT_KEY = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
_SUBJECT_KEY = ["indicator_id", "period", "subject_id"]


def replace_results(engine: Engine, period: str, *, subjects: pd.DataFrame, results: pd.DataFrame) -> None:
    """Replace ``period``'s rows of every indicator that appears in either frame."""
    check_month(period, "period")
    subj = prepare(subjects, T.INDICATOR_SUBJECTS, unique=_SUBJECT_KEY, fixed={"period": period})
    res = prepare(results, T.INDICATOR_RESULTS, unique=_RESULT_KEY, fixed={"period": period})
    ids = sorted(set(subj["indicator_id"].dropna()) | set(res["indicator_id"].dropna()))
    if not ids:
        return
    with write_transaction(engine, f"storing indicator results for {period}") as conn:
        for table, df, spec in (
            (S.indicator_subjects, subj, T.INDICATOR_SUBJECTS),
            (S.indicator_results, res, T.INDICATOR_RESULTS),
        ):
            conn.execute(sa.delete(table).where(table.c.period == period, table.c.indicator_id.in_(ids)))
            insert_frame(conn, table, df, spec.column_names)


def read_results(
    engine: Engine,
    *,
    periods: Sequence[str] | None = None,
    indicator_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Aggregated results, typed as INDICATOR_RESULTS, optionally filtered."""
    t = S.indicator_results
    stmt = sa.select(*(t.c[c] for c in T.INDICATOR_RESULTS.column_names))
    if periods is not None:
        stmt = stmt.where(t.c.period.in_([check_month(p, "period") for p in periods]))
    if indicator_ids is not None:
        stmt = stmt.where(t.c.indicator_id.in_(list(indicator_ids)))
    stmt = stmt.order_by(*(t.c[c] for c in _RESULT_KEY))
    with read_connection(engine, "reading indicator results") as conn:
        return read_typed(conn, stmt, T.INDICATOR_RESULTS)


def read_subjects(engine: Engine, period: str, indicator_id: str | None = None) -> pd.DataFrame:
    """Per-subject membership of one period (drill-down lists; stays internal)."""
    t = S.indicator_subjects
    stmt = sa.select(*(t.c[c] for c in T.INDICATOR_SUBJECTS.column_names)).where(
        t.c.period == check_month(period, "period")
    )
    if indicator_id is not None:
        stmt = stmt.where(t.c.indicator_id == indicator_id)
    stmt = stmt.order_by(*(t.c[c] for c in _SUBJECT_KEY))
    with read_connection(engine, f"reading indicator subjects for {period}") as conn:
        return read_typed(conn, stmt, T.INDICATOR_SUBJECTS)
