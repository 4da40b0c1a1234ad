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
from typing import Any

import pandas as pd

from pipelines.compute.model import Improvement, Indicator, Scoring

STATUS_LABELS: dict[str, str] = {
    "green": "On target",
    "amber": "Near target",
    "red": "Off target",
    "grey": "No data",
    "provisional": "Provisional",
    "not_computed": "Not computed",
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
    unit = indicator.unit.strip()
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
    return DASH if value is None else f"{value:,.{decimals}f}"


def change_vs_previous(current: float | None, previous: float | None, indicator: Indicator) -> dict[str, Any]:
    """Direction of travel: the month-on-month change in display units, judged
    against the indicator's improvement notation (a fall is good when lower is better).
    A change that rounds to zero at the displayed precision is "no change"."""
    if current is None or previous is None:
        return {"delta": None, "text": DASH, "direction": "none", "label": "no comparison"}
    scale = display_scale(indicator)
    delta = (current - previous) * scale
    decimals = _decimals(indicator, current * scale)
    if round(delta, decimals) == 0:
        return {"delta": 0.0, "text": "no change", "direction": "same", "label": "no change"}
    better = (delta > 0) == (indicator.improvement is Improvement.INCREASE)
    suffix = " pp" if is_percent(indicator) else ""
    arrow = "▲" if delta > 0 else "▼"
    return {
        "delta": delta,
        "text": f"{arrow} {delta:+,.{decimals}f}{suffix}",
        "direction": "better" if better else "worse",
        "label": "better" if better else "worse",
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
    return "Lower is better" if indicator.improvement is Improvement.DECREASE else "Higher is better"


def label_of(name: str) -> str:
    """A column or stratifier name as a reader sees it (``ward_id`` -> ``Ward id``)."""
    return name.replace("_", " ").capitalize()


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
    "status_of",
    "text",
]
