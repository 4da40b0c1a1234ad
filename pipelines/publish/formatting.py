"""How a score becomes the text a committee reads: one place, so the scorecard, the
indicator sections, the tables and the charts agree.

* proportion scores are fractions 0..1 and are shown multiplied by the indicator's
  ``multiplier`` (default 100, i.e. as a percentage);
* ratio scores are already "events per multiplier units" and continuous scores are in
  the indicator's unit, so both are shown as they are;
* "change vs previous month" is in display units (percentage points for percentages)
  and is called better/worse using the indicator's improvement notation;
* a result is graded red/amber/green only when final: a provisional month is shown,
  never graded, and a month that could not be computed says so.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from pipelines.compute.model import Improvement, Indicator, Scoring
from pipelines.publish.i18n import N_, _
from pipelines.publish.i18n import number as _number

STATUS_LABELS: dict[str, str] = {
    "green": N_("On target"),
    "amber": N_("Near target"),
    "red": N_("Off target"),
    "grey": N_("No data"),
    "provisional": N_("Provisional"),
    "not_computed": N_("Not computed"),
}
#: Statuses that grade a month against its target (only final results are graded).
GRADED = ("green", "amber", "red", "grey")
DASH = "–"


def num(value: Any) -> float | None:
    """A finite float, or None for anything else (null, NaN, text)."""
    if value is None or value is pd.NA:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def integer(value: Any) -> int | None:
    f = num(value)
    return None if f is None else int(round(f))


def text(value: Any) -> str:
    """A cell as text; "" for null."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def display_scale(indicator: Indicator) -> float:
    """Factor from ``measure_score`` to the number a reader sees."""
    if indicator.scoring is Scoring.PROPORTION:
        return float(indicator.multiplier or 100)
    return 1.0


def is_percent(indicator: Indicator) -> bool:
    return indicator.scoring is Scoring.PROPORTION and display_scale(indicator) == 100


def _decimals(indicator: Indicator, shown: float) -> int:
    if is_percent(indicator):
        return 1
    size = abs(shown)
    return 2 if size < 10 else 1 if size < 100 else 0


def format_number(value: float | None, indicator: Indicator) -> str:
    """A score in display units without its unit (``"87.5"``, ``"3.21"``); ``"–"`` if absent."""
    if value is None:
        return DASH
    shown = value * display_scale(indicator)
    return f"{shown:,.{_decimals(indicator, shown)}f}"


def format_value(value: float | None, indicator: Indicator) -> str:
    """A score with its unit: ``"87.5%"``, ``"3.21 per 1,000 patient-days"``, ``"4.2 days"``."""
    if value is None:
        return DASH
    number = format_number(value, indicator)
    unit = _(indicator.unit).strip()
    if not unit:
        return number
    return f"{number}{unit}" if unit.startswith("%") else f"{number} {unit}"


def format_short(value: float | None, indicator: Indicator) -> str:
    """A score for a narrow column: the number, with ``%`` for percentages."""
    return format_number(value, indicator) + ("%" if is_percent(indicator) and value is not None else "")


def format_ci(low: float | None, high: float | None, indicator: Indicator) -> str:
    if low is None or high is None:
        return DASH
    shown = f"{format_number(low, indicator)}–{format_number(high, indicator)}"
    return shown + "%" if is_percent(indicator) else shown


def format_count(value: float | int | None, decimals: int = 0) -> str:
    return DASH if value is None else _number(value, decimals)


def change_vs_previous(current: float | None, previous: float | None, indicator: Indicator) -> dict[str, Any]:
    """Direction of travel: the month-on-month change in display units, judged
    against the indicator's improvement notation (a fall is good when lower is better).
    A change that rounds to zero at the displayed precision is "no change"."""
    if current is None or previous is None:
        return {"delta": None, "text": DASH, "direction": "none", "label": _("no comparison")}
    scale = display_scale(indicator)
    delta = (current - previous) * scale
    decimals = _decimals(indicator, current * scale)
    if round(delta, decimals) == 0:
        return {"delta": 0.0, "text": _("no change"), "direction": "same", "label": _("no change")}
    better = (delta > 0) == (indicator.improvement is Improvement.INCREASE)
    suffix = _(" pp") if is_percent(indicator) else ""
    arrow = "▲" if delta > 0 else "▼"
    return {
        "delta": delta,
        "text": f"{arrow} {delta:+,.{decimals}f}{suffix}",
        "direction": "better" if better else "worse",
        "label": _("better") if better else _("worse"),
    }


def status_of(value: Any, state: Any = "final") -> str:
    """The badge a result gets: its red/amber/green status when final; ``provisional``
    (shown, not graded) or ``not_computed`` otherwise."""
    st = text(state).strip().lower() or "final"
    if st in ("provisional", "not_computed"):
        return st
    s = text(value).strip().lower()
    return s if s in GRADED else "grey"


def improvement_text(indicator: Indicator) -> str:
    return _("Lower is better") if indicator.improvement is Improvement.DECREASE else _("Higher is better")


#: The state reasons compute writes (English, in the warehouse), read back so the report
#: can say them in its own language.
_REASONS = (
    (
        re.compile(r"^open to revision until batch (\S+) is loaded$"),
        N_("open to revision until batch %(batch)s is loaded"),
    ),
    (re.compile(r"^([\d,]+) cases? within their (\d+) (calendar|working)-day follow-up$"), None),
)


def reason_text(reason: str) -> str:
    """A stored state reason ("open to revision until ...; 3 cases within their ...") in
    the report's language; a reason of another form is shown as stored."""
    parts = []
    for part in (p.strip() for p in reason.split(";")):
        if not part:
            continue
        m = _REASONS[0][0].match(part)
        if m:
            parts.append(_("open to revision until batch %(batch)s is loaded") % {"batch": m.group(1)})
            continue
        m = _REASONS[1][0].match(part)
        if m:
            n = int(m.group(1).replace(",", ""))
            msg = (_("%(n)s case within their %(days)s %(by)s-day follow-up") if n == 1
                   else _("%(n)s cases within their %(days)s %(by)s-day follow-up"))  # fmt: skip
            by = _("calendar") if m.group(3) == "calendar" else _("working")
            parts.append(msg % {"n": _number(n), "days": m.group(2), "by": by})
            continue
        parts.append(_(part))
    return "; ".join(parts)


def status_label(status: str) -> str:
    """The badge text of a status in the report's language."""
    return _(STATUS_LABELS[status])


def label_of(name: str) -> str:
    """A column or stratifier name as a reader sees it (``ward_id`` -> ``Ward id``)."""
    return _(name.replace("_", " ").capitalize())


__all__ = [
    "DASH",
    "GRADED",
    "STATUS_LABELS",
    "change_vs_previous",
    "display_scale",
    "format_ci",
    "format_count",
    "format_number",
    "format_short",
    "format_value",
    "improvement_text",
    "integer",
    "is_percent",
    "label_of",
    "num",
    "reason_text",
    "status_label",
    "status_of",
    "text",
]
