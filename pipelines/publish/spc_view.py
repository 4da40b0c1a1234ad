"""An indicator's SPC chart and its "Making Data Count" icons, from one computation.

The chart, the variation icon and the assurance icon a board sees all come from one
:class:`pipelines.analyse.spc.Chart`, so the icon can never disagree with the chart it
summarises. The series is the system-wide monthly result; a month still open to
revision is drawn (hollow) but left out of the limits and the rules, because its figure
can still grow. Change points come from the warehouse's approved re-phasing records
only (``careqi spc rephase``), each shown with who approved it and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipelines.analyse import spc
from pipelines.compute.model import Indicator, Scoring
from pipelines.compute.scoring import scored_counts
from pipelines.periods import Month
from pipelines.publish.formatting import display_scale, format_value, num
from pipelines.publish.i18n import N_, _, month_short
from pipelines.tables import ALL_FACILITIES, OVERALL

#: Board labels of the variation and assurance icons (NHS England, "Making Data Count").
VARIATION_LABELS = {
    "common_cause": N_("Common cause variation"),
    "improvement_high": N_("Special cause: improvement (high)"),
    "improvement_low": N_("Special cause: improvement (low)"),
    "concern_high": N_("Special cause: concern (high)"),
    "concern_low": N_("Special cause: concern (low)"),
    "none": N_("Too few months to chart"),
}
ASSURANCE_LABELS = {
    "pass": N_("Consistently meets the target"),
    "fail": N_("Consistently fails the target"),
    "hit_or_miss": N_("Hits and misses the target at random"),
    "none": N_("No target to assure"),
}
RULE_LABELS = {
    "beyond_limits": N_("a point beyond the control limits"),
    "shift": N_("a run on one side of the centre line"),
    "trend": N_("a run of rising or falling points"),
    "two_of_three": N_("two of three points beyond two sigma"),
}
CHART_LABELS = {
    "p": N_("p-chart (proportion)"),
    "p_prime": N_("Laney p′-chart (proportion, large denominators)"),
    "u": N_("u-chart (rate per exposure)"),
    "u_prime": N_("Laney u′-chart (rate, large exposure)"),
    "xmr": N_("XmR chart (individual values)"),
    "g": N_("g-chart (cases between events)"),
    "t": N_("t-chart (days between events)"),
}
#: Fewer final months than this and no limits are drawn (Provost & Murray: limits from
#: fewer than about 12 points are trial limits; below 6 they mean little).
MIN_POINTS = 6


def _series(indicator: Indicator, window: Sequence[str], lookup: Mapping[Any, Mapping[str, Any]], facility: str
            ) -> dict[str, np.ndarray]:  # fmt: skip
    num_: list[float | None] = []
    den: list[float | None] = []
    val: list[float] = []
    final: list[bool] = []
    for p in window:
        row = lookup.get((indicator.id, p, facility, *OVERALL)) or {}
        state = str(row.get("state") or "")
        final.append(state == "final")
        if indicator.scoring is not Scoring.CONTINUOUS:
            n, d = scored_counts(indicator, row) if row else (np.nan, np.nan)
            num_.append(n)
            den.append(d)
        v = num(row.get("measure_score"))
        val.append(np.nan if v is None else v)
    as_float = lambda xs: np.array([np.nan if x is None else float(x) for x in xs], dtype=np.float64)  # noqa: E731
    return {"numerator": as_float(num_), "denominator": as_float(den), "value": as_float(val),
            "final": np.array(final, dtype=bool)}  # fmt: skip


def chart_type(indicator: Indicator, series: Mapping[str, np.ndarray]) -> spc.ChartType:
    """The chart the indicator file names, else the one its scoring calls for (Laney's
    prime charts when denominators are large enough to make plain limits too narrow)."""
    if indicator.spc.chart:
        return spc.ChartType(indicator.spc.chart)
    large = spc.has_large_denominators(series["denominator"])
    return spc.chart_type_for(indicator.scoring.value, large_denominators=large)


def phase_starts(
    indicator_id: str, unit: str, window: Sequence[str], phases: pd.DataFrame
) -> tuple[list[int], list[dict[str, Any]]]:
    """Indices in ``window`` where an approved phase starts, and the approvals to show."""
    starts, shown = [0], []
    if len(phases):
        mine = phases[(phases["indicator_id"] == indicator_id) & (phases["unit"] == unit)]
        for rec in mine.sort_values("starts").to_dict("records"):
            month = str(rec["starts"])
            if month in window and window.index(month) > 0:
                starts.append(window.index(month))
                shown.append(
                    {
                        "starts": month,
                        "approved_by": str(rec["approved_by"]),
                        "approved_at": pd.Timestamp(rec["approved_at"]).strftime("%Y-%m-%d"),
                        "reason": str(rec["reason"]),
                    }
                )
    return sorted(set(starts)), shown


def _none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def spc_view(
    indicator: Indicator,
    window: Sequence[str],
    lookup: Mapping[Any, Mapping[str, Any]],
    phases: pd.DataFrame,
    target: float | None,
    *,
    facility: str = ALL_FACILITIES,
) -> dict[str, Any]:
    """The chart's points (display units), limits, signals and icons for the report."""
    series = _series(indicator, window, lookup, facility)
    ctype = chart_type(indicator, series)
    final = series["final"]
    rules = spc.RuleSet.parse(indicator.spc.rules)
    starts, approvals = phase_starts(indicator.id, facility, window, phases)
    kwargs: dict[str, Any] = {"phases": starts, "baseline_points": indicator.spc.baseline_months, "rules": rules,
                              "improvement": indicator.improvement.value}  # fmt: skip
    if ctype in (spc.ChartType.P, spc.ChartType.P_PRIME, spc.ChartType.U, spc.ChartType.U_PRIME):
        numer = np.where(final, series["numerator"], np.nan)
        denom = np.where(final, series["denominator"], np.nan)
        if ctype in (spc.ChartType.U, spc.ChartType.U_PRIME):
            kwargs["multiplier"] = indicator.multiplier
        chart = spc.compute_chart(ctype, numerator=numer, denominator=denom, **kwargs)
    else:
        chart = spc.compute_chart(ctype, value=np.where(final, series["value"], np.nan), **kwargs)
    enough = int(np.isfinite(chart.value).sum()) >= MIN_POINTS
    scale = display_scale(indicator) if indicator.scoring is Scoring.PROPORTION else 1.0
    variation = spc.variation_icon(chart) if enough else "none"
    assurance = spc.assurance_icon(chart, target, indicator.improvement.value) if enough else "none"
    points: list[dict[str, Any]] = []
    sig = chart.signals
    for i, p in enumerate(window):
        shown = series["value"][i]
        provisional = bool(np.isfinite(shown) and not final[i])
        points.append(
            {
                "period": p,
                "value": _none(shown * scale if indicator.scoring is Scoring.PROPORTION else shown),
                "provisional": provisional,
                "centre": _none(chart.centre[i] * scale) if enough else None,
                "lcl": _none(chart.lcl[i] * scale) if enough else None,
                "ucl": _none(chart.ucl[i] * scale) if enough else None,
                "signal": str(sig["signal"].iloc[i]) if enough else "",
                "rules": [r.value for r in spc.Rule if enough and bool(sig[r.value].iloc[i])],
            }
        )
    last = next((pt for pt in reversed(points) if pt["value"] is not None and not pt["provisional"]), None)
    latest_rules: list[str] = list(last["rules"]) if last is not None else []
    return {
        "chart_type": ctype.value,
        "chart_label": _(CHART_LABELS[ctype.value]),
        "enough": enough,
        "min_points": MIN_POINTS,
        "points": points,
        "phases": approvals,
        "variation": variation,
        "variation_label": _(VARIATION_LABELS[variation]),
        "assurance": assurance,
        "assurance_label": _(ASSURANCE_LABELS[assurance]),
        "latest_signal": last["signal"] if last is not None else "",
        "latest_rules": [_(RULE_LABELS[r]) for r in latest_rules],
        "latest_period": last["period"] if last is not None else "",
        "latest_label": month_short(Month.parse(last["period"]).start) if last is not None else "",
        "rules_used": [_(RULE_LABELS[r.value]) for r in spc.Rule if r in rules.rules],
        "shift_length": rules.shift_length,
        "trend_length": rules.trend_length,
        "target": None if target is None else target * scale,
        "target_text": format_value(target, indicator),
    }


__all__ = ["ASSURANCE_LABELS", "CHART_LABELS", "MIN_POINTS", "RULE_LABELS", "VARIATION_LABELS", "spc_view"]
