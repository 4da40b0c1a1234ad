"""The committee's own records in the warehouse: improvement actions, approved SPC
change points and the pseudonym key of the restricted case appendix.

These are decisions people make, not data a feed delivers, so they are never replaced
by a batch load: actions are upserted by their id, a change point is added once with
who approved it, and the pseudonym key is created once and then only read.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import ConfigError
from pipelines.load import schema as S
from pipelines.load.engine import read_connection, write_transaction
from pipelines.load.frames import insert_frame, prepare, read_typed
from pipelines.periods import Month


def upsert_actions(engine: Engine, actions: pd.DataFrame) -> int:
    """Store these actions, replacing earlier rows with the same ``action_id``."""
    frame = prepare(actions, T.IMPROVEMENT_ACTIONS, unique=["action_id"])
    t = S.improvement_actions
    keys = frame["action_id"].astype(str).tolist()
    with write_transaction(engine, "storing improvement actions") as conn:
        for start in range(0, len(keys), 500):  # bounded IN lists (SQLite's parameter limit)
            conn.execute(sa.delete(t).where(t.c.action_id.in_(keys[start : start + 500])))
        return insert_frame(conn, t, frame, T.IMPROVEMENT_ACTIONS.column_names)


def read_actions(engine: Engine) -> pd.DataFrame:
    """The whole register, by due date then id."""
    t = S.improvement_actions
    stmt = sa.select(*(t.c[c] for c in T.IMPROVEMENT_ACTIONS.column_names)).order_by(t.c.due_on, t.c.action_id)
    with read_connection(engine, "reading improvement actions") as conn:
        return read_typed(conn, stmt, T.IMPROVEMENT_ACTIONS)


def add_phase(
    engine: Engine,
    *,
    indicator_id: str,
    unit: str,
    starts: str,
    approved_by: str,
    reason: str,
    approved_at: datetime,
) -> None:
    """Record an approved change point: from ``starts`` the indicator's SPC chart in
    ``unit`` gets a new baseline. Refused without a named approver and a reason
    (re-phasing hides a shift, so it must be a decision someone owns), and refused when
    the same change point is already recorded (its approval is not rewritten)."""
    if not approved_by.strip():
        raise ConfigError("re-phasing refused: name who approved it (--approved-by)")
    if not reason.strip():
        raise ConfigError("re-phasing refused: say why the process changed (--reason)")
    month = Month.parse(starts).label
    row = pd.DataFrame(
        [
            {
                "indicator_id": indicator_id,
                "unit": unit,
                "starts": month,
                "approved_by": approved_by.strip(),
                "approved_at": pd.Timestamp(approved_at).tz_localize(None).floor("s"),
                "reason": reason.strip(),
            }
        ]
    )
    frame = prepare(row, T.SPC_PHASES)
    t = S.spc_phases
    with write_transaction(engine, "recording an SPC change point") as conn:
        found = conn.execute(
            sa.select(t.c.approved_by).where(t.c.indicator_id == indicator_id, t.c.unit == unit, t.c.starts == month)
        ).first()
        if found is not None:
            raise ConfigError(
                f"{indicator_id} in {unit} is already re-phased from {month} (approved by {found[0]}); "
                "remove that record first to change it"
            )
        insert_frame(conn, t, frame, T.SPC_PHASES.column_names)


def remove_phase(engine: Engine, *, indicator_id: str, unit: str, starts: str) -> int:
    """Withdraw a change point; returns how many rows went (0 or 1)."""
    t = S.spc_phases
    month = Month.parse(starts).label
    with write_transaction(engine, "removing an SPC change point") as conn:
        res = conn.execute(sa.delete(t).where(t.c.indicator_id == indicator_id, t.c.unit == unit, t.c.starts == month))
        return int(res.rowcount or 0)


def read_phases(engine: Engine) -> pd.DataFrame:
    """Every approved change point, by indicator, unit and month."""
    t = S.spc_phases
    stmt = sa.select(*(t.c[c] for c in T.SPC_PHASES.column_names)).order_by(t.c.indicator_id, t.c.unit, t.c.starts)
    with read_connection(engine, "reading SPC change points") as conn:
        return read_typed(conn, stmt, T.SPC_PHASES)


def pseudonym_key(engine: Engine, *, create: bool = True) -> tuple[str, bytes]:
    """(key id, secret) of the newest pseudonym key; a new random one is made the first
    time (``create``). Never logged, never written outside the warehouse."""
    t = S.pseudonym_keys
    with write_transaction(engine, "reading the pseudonym key") as conn:
        row = conn.execute(sa.select(t.c.key_id, t.c.secret).order_by(t.c.created_at.desc(), t.c.key_id)).first()
        if row is None:
            if not create:
                raise ConfigError("the warehouse holds no pseudonym key: no restricted appendix was written from it")
            key_id = f"k{datetime.now().strftime('%Y%m%d')}-{secrets.token_hex(3)}"
            secret = secrets.token_hex(32)
            conn.execute(sa.insert(t), {"key_id": key_id, "secret": secret, "created_at": S.utc_now()})
            return key_id, bytes.fromhex(secret)
        return str(row[0]), bytes.fromhex(str(row[1]))


__all__ = ["add_phase", "pseudonym_key", "read_actions", "read_phases", "remove_phase", "upsert_actions"]
