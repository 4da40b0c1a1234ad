"""Complaints past a service-level deadline: what the complaints team must chase today.

The deadlines are not configured here. They are the complaint indicators that carry a
``follow_up`` (``complaint_ack_2_working_days``: acknowledged within 2 working days;
``complaint_resolved_25_working_days``: resolved within 25), read from the indicator
catalogue: the rule that grades the month is the rule that raises the alert, so the
two cannot disagree. A rule is "done" when the column its numerator measures to
(``acknowledged_at``, ``resolved_at``) is filled.

A complaint is *open past its deadline* on day D when its deadline day (the facility's
working days, :mod:`pipelines.workdays`) has ended by the end of D, that is when it is D
or earlier, and the rule is still not done at the end of D: the same test as the month's
backlog indicator (``overdue_at_period_end``: the last day allowed is before the period's
end) and as censoring. A complaint resolved by then owes nothing, whatever else it lacks.

Each day's list is complete (not only the new ones), so the breaches table answers "what
was overdue on 14 October" and a missed run loses nothing; ``new`` marks the complaints
that were not on the previous run's list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.compute import model as m
from pipelines.compute.dates import DEFAULT_CALENDARS, day_difference, deadline_days, timestamps
from pipelines.tables import SLA_BREACHES, empty_frame
from pipelines.workdays import WorkingCalendars


@dataclass(frozen=True)
class ServiceLevel:
    """One complaint deadline: ``done`` must be filled within ``days`` (``by``) of ``start``."""

    indicator_id: str
    title: str
    start: str
    done: str
    days: int
    by: m.DayCount


def service_levels(indicators: Iterable[m.Indicator]) -> list[ServiceLevel]:
    """The complaint deadlines the catalogue defines, in indicator order."""
    out = []
    for ind in indicators:
        follow = ind.follow_up
        numerator = ind.populations.get(m.Population.NUMERATOR)
        if ind.basis is not m.Basis.COMPLAINT or follow is None or numerator is None:
            continue
        ends = [
            c.end
            for c in m.criterion_parts(numerator.criteria)
            if isinstance(c, m.DaysBetween) and c.start == follow.start
        ]
        if ends:
            out.append(ServiceLevel(ind.id, ind.title, follow.start, ends[0], follow.days, follow.by))
    return out


def open_breaches(
    complaints: pd.DataFrame,
    levels: Sequence[ServiceLevel],
    day: str,
    *,
    calendars: WorkingCalendars = DEFAULT_CALENDARS,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Complaints open past a deadline at the end of ``day``, shaped as ``SLA_BREACHES``.

    ``complaints`` is the register as it stood that day (one row per complaint, local
    timestamps); ``previous`` the last earlier run's breaches (for ``new``). Withdrawn and
    resolved complaints owe no response and are not listed. ``days_overdue`` counts the
    days (of the rule's kind) after the last day allowed: 0 on the day it ended."""
    today = np.datetime64(day, "D")
    end_of_day = pd.Timestamp(day) + pd.Timedelta(days=1)
    end_us = np.datetime64(end_of_day.to_datetime64(), "us")
    parts = []
    withdrawn = complaints["outcome"].astype("string").fillna("") == "withdrawn"
    resolved = timestamps(complaints["resolved_at"])
    closed = ~np.isnat(resolved) & (resolved < end_us)
    live = complaints[~(withdrawn.to_numpy(dtype=bool) | closed)].reset_index(drop=True)
    for level in levels:
        if not len(live):
            break
        start = live[level.start]
        due = deadline_days(start, level.days, level.by, calendars=calendars, facility=live["facility_id"])
        done_at = timestamps(live[level.done])
        not_done = np.isnat(done_at) | (done_at >= end_us)
        late = ~np.isnat(due) & (due <= today) & not_done
        if not late.any():
            continue
        rows = live.loc[late].reset_index(drop=True)
        due_late = pd.Series(due[late]).astype("datetime64[us]")
        overdue = day_difference(
            due_late, pd.Series([pd.Timestamp(day)] * len(rows)), level.by,
            calendars=calendars, facility=rows["facility_id"],
        )  # fmt: skip
        parts.append(
            pd.DataFrame(
                {
                    "detected_on": pd.Timestamp(day),
                    "indicator_id": level.indicator_id,
                    "complaint_id": rows["complaint_id"].astype("string"),
                    "facility_id": rows["facility_id"].astype("string"),
                    "ward_id": rows["ward_id"].astype("string"),
                    "service": rows["service"].astype("string"),
                    "category": rows["category"].astype("string"),
                    "received_at": rows["received_at"],
                    "due_on": due_late,
                    "days_allowed": level.days,
                    "day_count": level.by.value,
                    "days_overdue": pd.array(overdue.astype(np.int64), dtype="Int64"),
                }
            )
        )
    if not parts:
        return empty_frame(SLA_BREACHES)
    out = pd.concat(parts, ignore_index=True)
    seen: set[tuple[str, str]] = set()
    if previous is not None and len(previous):
        seen = set(zip(previous["indicator_id"].astype(str), previous["complaint_id"].astype(str), strict=True))
    keys = zip(out["indicator_id"].astype(str), out["complaint_id"].astype(str), strict=True)
    out["new"] = pd.array([k not in seen for k in keys], dtype="boolean")
    out = out.sort_values(["indicator_id", "facility_id", "due_on", "complaint_id"], kind="stable")
    return out.astype(SLA_BREACHES.dtypes)[SLA_BREACHES.column_names].reset_index(drop=True)


def breach_summary(breaches: pd.DataFrame, levels: Sequence[ServiceLevel]) -> dict[str, object]:
    """Counts for an alert: per rule and per facility/ward, never a complaint id (an alert
    goes to e-mail or chat; the ids stay in the warehouse's breaches table)."""
    by_rule = {
        lv.indicator_id: {
            "title": lv.title,
            "open": int((breaches["indicator_id"] == lv.indicator_id).sum()),
            "new": int(((breaches["indicator_id"] == lv.indicator_id) & breaches["new"].fillna(False)).sum()),
        }
        for lv in levels
    }
    wards = (
        breaches.groupby(["facility_id", "ward_id"], dropna=False, sort=True).size().rename("open").reset_index()
        if len(breaches)
        else pd.DataFrame(columns=["facility_id", "ward_id", "open"])
    )
    return {
        "open": int(len(breaches)),
        "new": int(breaches["new"].fillna(False).sum()) if len(breaches) else 0,
        "by_rule": by_rule,
        "by_ward": [
            {
                "facility_id": str(r.facility_id),
                "ward_id": None if pd.isna(r.ward_id) else str(r.ward_id),
                "open": int(r.open),
            }
            for r in wards.itertuples()
        ],  # fmt: skip
    }


__all__ = ["ServiceLevel", "breach_summary", "open_breaches", "service_levels"]
