"""Indicator results and per-subject membership in the warehouse.

A month's results are a set: computing a month replaces *every* result of that month,
so an indicator that could not be computed this time (value sets not supplied) is
stored as ``not_computed`` and never keeps its old figure, and re-running a month
leaves exactly one copy of each row. Other months stay untouched.

An indicator that is withdrawn is *retired*: its results move to
``retired_indicator_results`` / ``retired_indicator_subjects`` (with when), so old
months export without it while its history is kept.
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
from pipelines.periods import Month

_RESULT_KEY = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
_SUBJECT_KEY = ["indicator_id", "period", "subject_id"]


def replace_results(engine: Engine, period: str, *, subjects: pd.DataFrame, results: pd.DataFrame) -> None:
    """Replace every result of ``period`` (all indicators) with these frames."""
    period = Month.parse(period).label
    subj = prepare(subjects, T.INDICATOR_SUBJECTS, unique=_SUBJECT_KEY, fixed={"period": period})
    res = prepare(results, T.INDICATOR_RESULTS, unique=_RESULT_KEY, fixed={"period": period})
    with write_transaction(engine, f"storing indicator results for {period}") as conn:
        for table, df, spec in (
            (S.indicator_subjects, subj, T.INDICATOR_SUBJECTS),
            (S.indicator_results, res, T.INDICATOR_RESULTS),
        ):
            conn.execute(sa.delete(table).where(table.c.period == period))
            insert_frame(conn, table, df, spec.column_names)


def retire_indicator(engine: Engine, indicator_id: str) -> dict[str, int]:
    """Move every stored result of ``indicator_id`` to the retired tables; returns the
    rows moved per table. Retiring twice moves nothing the second time."""
    moved: dict[str, int] = {}
    now = S.utc_now()
    with write_transaction(engine, f"retiring indicator {indicator_id}") as conn:
        for live, retired, spec in (
            (S.indicator_results, S.retired_indicator_results, T.INDICATOR_RESULTS),
            (S.indicator_subjects, S.retired_indicator_subjects, T.INDICATOR_SUBJECTS),
        ):
            cols = spec.column_names
            # An id retired, reintroduced and retired again: its newer months replace the archived ones.
            live_periods = sa.select(live.c.period).where(live.c.indicator_id == indicator_id).distinct()
            conn.execute(
                sa.delete(retired).where(retired.c.indicator_id == indicator_id, retired.c.period.in_(live_periods))
            )
            conn.execute(
                sa.insert(retired).from_select(
                    [*cols, "retired_at"],
                    sa.select(*(live.c[c] for c in cols), sa.literal(now, sa.DateTime()).label("retired_at")).where(
                        live.c.indicator_id == indicator_id
                    ),
                )
            )
            moved[live.name] = conn.execute(sa.delete(live).where(live.c.indicator_id == indicator_id)).rowcount
    return moved


def stored_indicator_ids(engine: Engine) -> list[str]:
    """Indicator ids that have results in the warehouse (to find retired definitions)."""
    t = S.indicator_results
    with read_connection(engine, "listing indicators with results") as conn:
        return sorted(r[0] for r in conn.execute(sa.select(t.c.indicator_id).distinct()))


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
        stmt = stmt.where(t.c.period.in_([Month.parse(p).label for p in periods]))
    if indicator_ids is not None:
        stmt = stmt.where(t.c.indicator_id.in_(list(indicator_ids)))
    stmt = stmt.order_by(*(t.c[c] for c in _RESULT_KEY))
    with read_connection(engine, "reading indicator results") as conn:
        return read_typed(conn, stmt, T.INDICATOR_RESULTS)


def read_subjects(engine: Engine, period: str, indicator_id: str | None = None) -> pd.DataFrame:
    """Per-subject membership of one period (drill-down lists; stays internal)."""
    t = S.indicator_subjects
    stmt = sa.select(*(t.c[c] for c in T.INDICATOR_SUBJECTS.column_names)).where(
        t.c.period == Month.parse(period).label
    )
    if indicator_id is not None:
        stmt = stmt.where(t.c.indicator_id == indicator_id)
    stmt = stmt.order_by(*(t.c[c] for c in _SUBJECT_KEY))
    with read_connection(engine, f"reading indicator subjects for {period}") as conn:
        return read_typed(conn, stmt, T.INDICATOR_SUBJECTS)
