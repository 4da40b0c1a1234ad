"""The delivery guard: is this batch a whole delivery, fit to replace what is loaded?

A month already in the warehouse is replaced by whatever the next run for it loads.
An empty folder, a batch without ``Encounter.ndjson``, a file of garbage lines or a
feed that dropped a column used to replace a good month silently (its encounters
became 0, its indicators went grey or to zero, and the revision window recomputed
the months before it). Validation judges records; this judges the delivery as a
whole, against the deliveries before it, *before* anything is replaced:

* **empty**: the batch holds no accepted record at all;
* **missing**: a table delivered by each of the reference batches (at least
  :data:`MIN_ROWS` rows every time) delivered nothing;
* **short**: a table accepted fewer than ``min_share`` of the *smallest* delivery of
  its reference batches, judged only where that smallest delivery is at least
  :data:`MIN_SHORT` rows. Clinical activity is clustered (one long stay brings dozens of
  doses), so monthly counts of a table vary by a factor of two or more in a small
  system; a broken feed falls far below every recent month, and that is what this
  catches, not a quiet month;
* **emptied column**: a column that was filled in at least half the rows of the
  reference batches has no value at all now (at least :data:`MIN_ROWS` rows), e.g. a
  Patient feed without birth dates;
* **missing column**: a CSV header lacks a contract column that the reference batches
  filled.

The reference batches are the :data:`HISTORY` loaded batches nearest to this one
(earlier or later: a rerun of an old month is judged against its neighbours). The
operator can accept a delivery anyway (``--force``), or declare single tables really
empty this month (``--empty complaints``); either is recorded with the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median

import pandas as pd

from pipelines.errors import ValidationFailed
from pipelines.tables import CHILD_TABLES

#: Reference batches compared with.
HISTORY = 3
#: A table or column is judged only where the reference batches held at least this many rows.
MIN_ROWS = 20
#: A short (but not empty) delivery is judged only against batches of at least this many rows.
MIN_SHORT = 100


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a delivery; ``table`` is ``*`` for the whole batch."""

    table: str
    kind: str  # empty | missing | short | emptied_column | missing_column
    message: str


class DeliveryRejected(ValidationFailed):
    """The batch is not fit to replace what is loaded: nothing was replaced."""

    def __init__(self, period: str, problems: Sequence[Problem]) -> None:
        self.period = period
        self.problems = list(problems)
        listed = "; ".join(p.message for p in self.problems)
        super().__init__(
            f"delivery {period} refused, nothing replaced: {listed}. Fix the delivery and rerun; if it is really "
            "so, rerun with --empty TABLE for a table that is truly empty this month, or --force to load it anyway"
        )


def reference_batches(period: str, loaded: Iterable[str], n: int = HISTORY) -> list[str]:
    """The ``n`` loaded batches nearest to ``period`` (other than itself), nearest first."""
    from pipelines.periods import Month

    target = Month.parse(period).index
    others = [b for b in loaded if b != period]
    return sorted(others, key=lambda b: (abs(Month.parse(b).index - target), b))[:n]


def check_delivery(
    accepted: Mapping[str, int],
    profiles: pd.DataFrame,
    history: pd.DataFrame,
    history_profiles: pd.DataFrame,
    *,
    missing_columns: Mapping[str, Sequence[str]] | None = None,
    min_share: float = 0.25,
    empty_tables: Iterable[str] = (),
) -> list[Problem]:
    """Problems with this delivery (empty list: fit to load).

    ``accepted``: rows accepted per table in this batch. ``profiles``: this batch's
    ``table_name, column_name, rows, filled``. ``history``: the reference batches'
    reconciliation rows (``batch, table_name, rows_accepted``) and ``history_profiles``
    their column profiles (``batch`` plus the profile columns).
    """
    declared = set(empty_tables)
    if "*" in declared:  # the whole batch is declared empty: every table with it
        declared |= set(accepted) | set(missing_columns or {})
    problems: list[Problem] = []
    if sum(accepted.values()) == 0 and "*" not in declared:
        problems.append(Problem("*", "empty", "the batch holds no accepted record at all"))
        return problems
    batches = sorted(set(history["batch"])) if len(history) else []
    for table in sorted(set(accepted) - set(CHILD_TABLES) - declared):
        now = int(accepted.get(table, 0))
        past = history[history["table_name"] == table] if len(history) else history
        counts = [int(past.loc[past["batch"] == b, "rows_accepted"].sum()) for b in batches]
        if not counts:
            continue
        if now == 0 and len(counts) >= 1 and min(counts) >= MIN_ROWS:
            problems.append(
                Problem(table, "missing", f"{table}: nothing accepted, while each of {', '.join(batches)} had rows")
            )
            continue
        smallest = min(counts)
        if smallest >= MIN_SHORT and now < min_share * smallest:
            problems.append(
                Problem(
                    table,
                    "short",
                    f"{table}: {now:,} rows accepted, below {min_share:.0%} of the fewest ({smallest:,}) "
                    f"any of {', '.join(batches)} delivered (median {median(counts):,.0f})",
                )
            )
    for table, columns in sorted((missing_columns or {}).items()):
        if table in declared:
            continue
        for column in columns:
            if _was_filled(history_profiles, table, column):
                problems.append(
                    Problem(table, "missing_column", f"{table}: the delivery has no {column} column, which it used to")
                )
    if len(profiles) and len(history_profiles):
        current = profiles[(profiles["rows"] >= MIN_ROWS) & (profiles["filled"] == 0)]
        missing = {(t, c) for t, cs in (missing_columns or {}).items() for c in cs}
        for rec in current.itertuples(index=False):
            key = (str(rec.table_name), str(rec.column_name))
            if key in missing or key[0] in declared:
                continue
            if _was_filled(history_profiles, *key):
                problems.append(
                    Problem(
                        key[0],
                        "emptied_column",
                        f"{key[0]}.{key[1]} is empty in all {int(rec.rows):,} rows, but was filled in earlier batches",
                    )
                )
    return problems


def _was_filled(history_profiles: pd.DataFrame, table: str, column: str) -> bool:
    """Filled in at least half the rows of the reference batches that delivered the table."""
    if not len(history_profiles):
        return False
    h = history_profiles[(history_profiles["table_name"] == table) & (history_profiles["column_name"] == column)]
    rows, filled = int(h["rows"].sum()), int(h["filled"].sum())
    return rows >= MIN_ROWS and filled >= 0.5 * rows


__all__ = ["HISTORY", "MIN_ROWS", "MIN_SHORT", "DeliveryRejected", "Problem",
           "check_delivery", "reference_batches"]  # fmt: skip
