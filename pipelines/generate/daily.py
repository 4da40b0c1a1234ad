"""Daily patient-feedback extracts, as a complaints system and a survey provider send them.

The monthly batches hold the complaints register as it stood at each month's end. A
complaints team works from the register as it stands *today*: this module derives, for
each day of a month, the extract a register would send that evening from the same
synthetic world, so the daily run (``patient_feedback_daily``) has deliveries to read:

* ``complaints.csv``: every complaint received by the end of the day that was still open
  then, or that changed in the last :data:`CHANGED_DAYS` days (acknowledged, resolved),
  with the events after that day not yet known (nulled) and its status as it was;
* ``survey_responses.csv``: the survey returns completed that day.

Written to ``<incoming>/feedback/<YYYY-MM-DD>/``. Pure derivation from the monthly CSVs
(latest delivery per record wins, as in the warehouse), so the days agree with the months.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from pipelines import periods
from pipelines.errors import ExtractError
from pipelines.load.snapshot import latest_per_key
from pipelines.localtime import TimeZones

#: A closed complaint stays in the daily extract this many days after its last change.
CHANGED_DAYS = 7
FEEDBACK_DIR = "feedback"


def _batches_upto(incoming: Path, month: str) -> list[Path]:
    folders = [p for p in incoming.iterdir() if p.is_dir() and periods.is_period(p.name) and p.name <= month]
    return sorted(folders, key=lambda p: p.name)


def _read(path: Path, batch: str) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    return frame.assign(batch=batch)


def _deliveries(folders: Iterable[Path], file_name: str, table: str) -> tuple[list[str], list[dict[str, str]]]:
    """Every record of ``file_name`` in these monthly batches, its latest delivery each
    (the read model's rule), as CSV rows; and the file's header."""
    frames = [_read(f / file_name, f.name) for f in folders if (f / file_name).exists()]
    if not frames:
        return [], []
    header = [c for c in frames[-1].columns if c != "batch"]
    latest = latest_per_key(pd.concat(frames, ignore_index=True), table)
    return header, latest[header].to_dict("records")


def _day_of(value: str, zone: str = "UTC") -> str:
    """The local day of a timestamp as written (an offset is converted to ``zone``, the
    facility's, as extraction does; a date or a time without an offset is local already)."""
    if not value:
        return ""
    if len(value) > 10:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:  # a deliberately defective record: sent as written, quarantined downstream
            return value[:10]
        if moment.tzinfo is not None:
            return moment.astimezone(ZoneInfo(zone)).date().isoformat()
    return value[:10]


def register_as_of(row: dict[str, str], day: str, zone: str = "UTC") -> dict[str, str] | None:
    """One complaint as the register showed it at the end of ``day`` in its facility's
    ``zone`` (None: not received yet, or closed more than :data:`CHANGED_DAYS` days before)."""
    if not row.get("received_at") or _day_of(row["received_at"], zone) > day:
        return None
    out = dict(row)
    if _day_of(out.get("acknowledged_at", ""), zone) > day:
        out["acknowledged_at"] = ""
    if _day_of(out.get("resolved_at", ""), zone) > day:
        out["resolved_at"] = ""
        out["outcome"] = ""
    out["status"] = "resolved" if out.get("resolved_at") else "acknowledged" if out.get("acknowledged_at") else "open"
    if out["status"] == "resolved":
        cutoff = (date.fromisoformat(day) - timedelta(days=CHANGED_DAYS)).isoformat()
        if _day_of(out["resolved_at"], zone) < cutoff:
            return None
    return out


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def write_feedback_days(
    incoming: Path, month: str, *, days: Iterable[str] | None = None, timezones: TimeZones | None = None
) -> list[Path]:
    """Write the daily extracts of ``month`` (every day, or ``days``, each a facility-local
    day of ``timezones``) under ``<incoming>/feedback/``; returns the folders written."""
    tz = timezones or TimeZones()
    month = periods.validate_period(month)
    folders = _batches_upto(incoming, month)
    if not folders or folders[-1].name != month:
        raise ExtractError(f"no monthly batch {month} under {incoming}: generate it first")
    c_header, complaints = _deliveries(folders, "complaints.csv", "complaints")
    s_header, surveys = _deliveries(folders[-1:], "survey_responses.csv", "survey_responses")
    first = periods.Month.parse(month).start
    wanted = list(days) if days is not None else [
        (first + timedelta(days=i)).isoformat() for i in range(periods.Month.parse(month).days)
    ]  # fmt: skip
    written = []
    for day in wanted:
        out = incoming / FEEDBACK_DIR / day
        register = [
            r
            for r in (register_as_of(row, day, tz.facilities.get(row["facility_id"], tz.default)) for row in complaints)
            if r is not None
        ]
        register.sort(key=lambda r: (r["received_at"], r["complaint_id"]))
        _write(out / "complaints.csv", c_header, register)
        returned = [r for r in surveys if _day_of(r.get("completed_on", "")) == day]
        _write(out / "survey_responses.csv", s_header, returned)
        written.append(out)
    return written


__all__ = ["CHANGED_DAYS", "FEEDBACK_DIR", "register_as_of", "write_feedback_days"]
