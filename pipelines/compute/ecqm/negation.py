"""QI-Core negation: events documented as not done, orders as not requested, with why.

QI-Core records "did not happen" as a MedicationAdministrationNotDone / ProcedureNotDone
(status not-done, statusReason), a MedicationNotRequested / ServiceNotRequested
(doNotPerform, reasonCode or the doNotPerformReason extension) or a TaskRejected (status
rejected, statusReason, focus = the order). CQL times such an event by when it was
recorded, not by when it would have happened.
"""

from __future__ import annotations

import pandas as pd

from pipelines.compute.ecqm.retrieve import Retrieve
from pipelines.strings import isin
from pipelines.tables import record_keys


def recorded(frame: pd.DataFrame, fallback: str) -> pd.Series:
    """When a not-done event was recorded: the QI-Core ``recorded`` extension
    (``recorded_at``), else the event's own time, so a sender that omits the extension
    still dates the event rather than losing it."""
    at = frame[fallback]
    if "recorded_at" in frame.columns:
        return frame["recorded_at"].where(frame["recorded_at"].notna(), at)
    return at


def reasons(
    rows: pd.DataFrame, table: str, key: str, r: Retrieve, element: str, code: str, system: str
) -> pd.DataFrame:
    """Every reason coding of the given records (all of one resource type): ``rid`` (the
    record id), ``system``, ``code``; the record's own first reason coding and every coding
    of ``element`` in ``codings``."""
    own = pd.DataFrame(
        {"rid": rows[key].astype("string").to_numpy(dtype=object), "system": rows[system].to_numpy(),
         "code": rows[code].to_numpy()}
    )  # fmt: skip
    c = r.codings(table, element)
    extra = c[isin(c["key"], record_keys(table, rows, key))]
    coded = pd.DataFrame(
        {"rid": extra["record_id"].to_numpy(dtype=object), "system": extra["system"].to_numpy(),
         "code": extra["code"].to_numpy()}
    )  # fmt: skip
    return pd.concat([own, coded], ignore_index=True)


__all__ = ["reasons", "recorded"]
