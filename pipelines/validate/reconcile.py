"""Reconciliation: every row read is either accepted or quarantined, per table.

This is the audit trail a data owner (and an inspector) asks for first: if
``rows_read != rows_accepted + rows_quarantined`` some records vanished between the
source file and the warehouse, and the batch must not be trusted. Quarantine rows from
both stages count (extract: unparseable lines and values; validate: failed
expectations), because together they are everything that was read but not accepted.
"""

from __future__ import annotations

import pandas as pd

from pipelines.tables import RECONCILIATION


def reconcile(rows_read: dict[str, int], valid: dict[str, pd.DataFrame], quarantine: pd.DataFrame) -> pd.DataFrame:
    """One row per table in ``rows_read``, plus any table that has accepted or
    quarantined rows but was never counted as read (reported with ``rows_read`` 0,
    so it shows up unbalanced rather than disappearing)."""
    quarantined = quarantine["table_name"].value_counts() if len(quarantine) else pd.Series(dtype="int64")
    names = list(rows_read)
    extra = {t for t, df in valid.items() if len(df)} | set(quarantined.index)
    names += sorted(str(t) for t in extra if t not in rows_read)

    read = [int(rows_read.get(t, 0)) for t in names]
    accepted = [len(valid[t]) if t in valid else 0 for t in names]
    held = [int(quarantined.get(t, 0)) for t in names]
    out = pd.DataFrame(
        {
            "table_name": names,
            "rows_read": read,
            "rows_accepted": accepted,
            "rows_quarantined": held,
            "balanced": [r == a + q for r, a, q in zip(read, accepted, held, strict=True)],
        }
    )
    return out.astype(RECONCILIATION.dtypes)[RECONCILIATION.column_names]
