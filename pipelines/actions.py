"""Improvement actions: what a committee agreed to do, who owns it, by when.

A quality system is only as good as its follow-through (the PDCA "act" step): every
off-target indicator should carry an action with an owner and a due date, and the
report shows it beside the indicator, overdue ones first. The register lives in the
warehouse (:mod:`pipelines.load.governance`); it is edited from a YAML or CSV file
(``careqi actions import``) or one action at a time (``careqi actions set``).

A file is a list of actions::

    - action_id: falls-2026-01
      indicator_id: falls_with_injury
      unit: ward-3          # ALL, a facility, a department or a ward id
      title: Hourly rounding on the night shift
      owner: Ward manager, Ward 3
      due_on: 2026-12-15
      status: in_progress   # open | in_progress | done | cancelled
      opened_on: 2026-10-02 # optional: today when left out
      note: Audit of the first two weeks done
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipelines.errors import ConfigError


class ActionStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def closed(self) -> bool:
        return self in (ActionStatus.DONE, ActionStatus.CANCELLED)


REQUIRED = ("action_id", "indicator_id", "unit", "title", "owner", "due_on", "status")
OPTIONAL = ("opened_on", "closed_on", "note")


def _date(value: Any, field: str, where: str) -> pd.Timestamp | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return pd.Timestamp(date.fromisoformat(str(value).strip()[:10]))
    except ValueError:
        raise ConfigError(f"{where}: {field} must be a date YYYY-MM-DD, got {value!r}") from None


def action_rows(records: Iterable[Mapping[str, Any]], *, today: date, known_indicators: Sequence[str]) -> pd.DataFrame:
    """Checked action rows, ready for the warehouse. Every problem of every row is
    reported at once (a register edited by hand has several)."""
    rows, problems = [], []
    known = set(known_indicators)
    for n, rec in enumerate(records, start=1):
        where = f"action {n}" + (f" ({rec.get('action_id')})" if rec.get("action_id") else "")
        try:
            missing = [f for f in REQUIRED if not str(rec.get(f) or "").strip()]
            if missing:
                raise ConfigError(f"{where}: missing {', '.join(missing)}")
            unknown = sorted(set(rec) - set(REQUIRED) - set(OPTIONAL))
            if unknown:
                raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
            status = str(rec["status"]).strip().lower()
            if status not in set(ActionStatus):
                raise ConfigError(f"{where}: status must be one of {', '.join(ActionStatus)}, got {rec['status']!r}")
            indicator = str(rec["indicator_id"]).strip()
            if known and indicator not in known:
                raise ConfigError(f"{where}: no indicator {indicator!r}")
            opened = _date(rec.get("opened_on"), "opened_on", where) or pd.Timestamp(today)
            closed = _date(rec.get("closed_on"), "closed_on", where)
            if closed is None and ActionStatus(status).closed:
                closed = pd.Timestamp(today)
            rows.append(
                {
                    "action_id": str(rec["action_id"]).strip(),
                    "indicator_id": indicator,
                    "unit": str(rec["unit"]).strip(),
                    "title": str(rec["title"]).strip(),
                    "owner": str(rec["owner"]).strip(),
                    "due_on": _date(rec["due_on"], "due_on", where),
                    "status": status,
                    "opened_on": opened,
                    "closed_on": closed,
                    "note": str(rec.get("note") or "").strip() or None,
                }
            )
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("the action register has problems:\n  " + "\n  ".join(problems))
    ids = [r["action_id"] for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"the action register lists these ids more than once: {', '.join(dupes)}")
    columns = [*REQUIRED, *OPTIONAL]
    return pd.DataFrame(rows, columns=columns)


def read_action_file(path: Path) -> list[dict[str, Any]]:
    """The records of a YAML (a list of mappings, loaded safely) or CSV file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the action file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".csv":
        return [dict(r) for r in csv.DictReader(text.splitlines())]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return []
    if isinstance(data, dict) and isinstance(data.get("actions"), list):
        data = data["actions"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ConfigError(f"{path}: expected a list of actions (mappings)")
    return data


def is_overdue(actions: pd.DataFrame, as_of: date) -> pd.Series:
    """Open actions whose due date has passed by ``as_of`` (the report's data date)."""
    closed = actions["status"].astype("string").isin([s.value for s in ActionStatus if s.closed])
    return (~closed & (pd.to_datetime(actions["due_on"]) < pd.Timestamp(as_of))).fillna(False).astype(bool)


__all__ = ["OPTIONAL", "REQUIRED", "ActionStatus", "action_rows", "is_overdue", "read_action_file"]
