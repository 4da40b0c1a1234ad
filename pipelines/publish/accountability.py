"""Who owns what: the improvement actions beside each indicator, and what the committee
reads first (the executive summary).

The executive summary is computed from the sections already built (their SPC views,
statuses and actions), never from the data again, so it cannot disagree with the pages
behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd

from pipelines.actions import ActionStatus, is_overdue
from pipelines.publish.formatting import text
from pipelines.publish.i18n import N_, _, date_text

STATUS_TEXT = {
    "open": N_("Open"),
    "in_progress": N_("In progress"),
    "done": N_("Done"),
    "cancelled": N_("Cancelled"),
}
#: An action due within this many days of the report's data date is "due".
DUE_SOON_DAYS = 31


def register_rows(actions: pd.DataFrame, as_of: date, names: Mapping[str, str]) -> list[dict[str, Any]]:
    """The register as the report shows it: overdue first, then by due date."""
    if not len(actions):
        return []
    overdue = is_overdue(actions, as_of)
    rows = []
    for rec, late in zip(actions.to_dict("records"), overdue.tolist(), strict=True):
        due = pd.Timestamp(rec["due_on"]).date()
        status = text(rec["status"])
        rows.append(
            {
                "action_id": text(rec["action_id"]),
                "indicator_id": text(rec["indicator_id"]),
                "unit": text(rec["unit"]),
                "unit_name": names.get(text(rec["unit"]), text(rec["unit"])),
                "title": text(rec["title"]),
                "owner": text(rec["owner"]),
                "due_on": due.isoformat(),
                "due_text": date_text(due),
                "status": status,
                "status_text": _(STATUS_TEXT.get(status, status)),
                "closed": ActionStatus(status).closed,
                "overdue": bool(late),
                "due_soon": (not ActionStatus(status).closed) and as_of <= due <= as_of + timedelta(days=DUE_SOON_DAYS),
                "note": text(rec.get("note")),
            }
        )
    rows.sort(key=lambda r: (not r["overdue"], r["closed"], r["due_on"], r["action_id"]))
    return rows


def executive_summary(sections: Sequence[Mapping[str, Any]], actions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What changed (special causes at the latest month), what breached (off target),
    what improved (improvement signals, or back on target), and the actions due."""
    changed, breached, improved = [], [], []
    for s in sections:
        view = s.get("spc") or {}
        item = {"id": s["id"], "anchor": s["anchor"], "title": s["title"], "value_text": s["current"]["value_text"],
                "target_text": s["target_text"], "domain_label": s["domain_label"],
                "rules": view.get("latest_rules", []), "variation": view.get("variation", "none"),
                "variation_label": view.get("variation_label", ""),
                "assurance": view.get("assurance", "none"),
                "assurance_label": view.get("assurance_label", "")}  # fmt: skip
        signal = view.get("latest_signal", "")
        if signal:
            changed.append({**item, "signal": signal, "month": view.get("latest_label", "")})
        # A provisional month is not graded, and with a revision window the newest month
        # always is: what breached is then read from the latest final month.
        graded, month = s["current"]["status"], ""
        if graded == "provisional" and s.get("last_final"):
            graded, month = s["last_final"]["status"], s["last_final"]["label"]
            item = {**item, "value_text": s["last_final"]["value_text"]}
        if graded == "red":
            breached.append({**item, "month": month})
        back_on_target = graded == "green" and s.get("previous_status") in ("red", "amber")
        if signal == "improvement" or back_on_target:
            improved.append({**item, "back_on_target": back_on_target, "month": month})
    due = [a for a in actions if a["overdue"] or a["due_soon"]]
    icons: dict[str, int] = {}
    for s in sections:
        v = (s.get("spc") or {}).get("variation", "none")
        icons[v] = icons.get(v, 0) + 1
    return {
        "changed": changed,
        "breached": breached,
        "improved": improved,
        "actions_due": due,
        "overdue_count": sum(1 for a in actions if a["overdue"]),
        "variation_counts": icons,
    }


__all__ = ["DUE_SOON_DAYS", "STATUS_TEXT", "executive_summary", "register_rows"]
