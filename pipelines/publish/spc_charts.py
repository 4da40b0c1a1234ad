"""SPC and funnel charts as inline SVG (matplotlib, the settings of :mod:`.charts`).

Colours follow NHS England's "Making Data Count": grey for common cause, orange for a
concern, blue for an improvement; the centre line solid, the 3-sigma limits dashed,
the target red-dashed. A re-phased baseline starts a new centre line at its approved
month, marked by a vertical line. Only numbers and catalogue labels reach the SVG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from pipelines.publish.charts import _rc, finish_svg, month_ticks
from pipelines.publish.i18n import _

COMMON = "#7c878e"
CONCERN = "#ed8b00"
IMPROVEMENT = "#41b6e6"
LIMIT = "#425563"
TARGET = "#d5281b"


def _f(v: Any) -> float:
    return math.nan if v is None else float(v)


def _steps(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Step coordinates so limits that change per point are drawn as flat segments."""
    xs, ys = [], []
    for i, v in enumerate(values):
        xs += [i - 0.5, i + 0.5]
        ys += [v, v]
    return xs, ys


def spc_chart_svg(view: Mapping[str, Any], labels: Sequence[str], *, percent: bool, y_label: str, salt: str) -> str:
    """The chart of :func:`pipelines.publish.spc_view.spc_view`."""
    pts = view["points"]
    x = list(range(len(pts)))
    y = [_f(p["value"]) for p in pts]
    rc: Any = _rc(salt)
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(7.6, 2.7), dpi=72)
        try:
            if view["enough"]:
                for key, style in (("centre", "-"), ("lcl", (0, (4, 3))), ("ucl", (0, (4, 3)))):
                    sx, sy = _steps([_f(p[key]) for p in pts])
                    ax.plot(sx, sy, color=LIMIT, linewidth=1.0 if key != "centre" else 1.2, linestyle=style)
            if view.get("target") is not None:
                ax.axhline(float(view["target"]), color=TARGET, linewidth=1.0, linestyle=(0, (2, 2)))
            ax.plot(x, y, color=COMMON, linewidth=1.4)
            for i, p in enumerate(pts):
                if p["value"] is None:
                    continue
                colour = {"improvement": IMPROVEMENT, "concern": CONCERN}.get(p["signal"], COMMON)
                hollow = p["provisional"]
                ax.scatter([i], [p["value"]], s=36, zorder=3, color="white" if hollow else colour,
                           edgecolors=colour, linewidths=1.4)  # fmt: skip
            for ph in view["phases"]:
                idx = next((i for i, p in enumerate(pts) if p["period"] == ph["starts"]), None)
                if idx is not None:
                    ax.axvline(idx - 0.5, color=LIMIT, linewidth=0.8, linestyle=(0, (1, 2)))
            if not any(not math.isnan(v) for v in y):
                ax.text(0.5, 0.5, _("No data in this period"), transform=ax.transAxes, ha="center", va="center",
                        color="#4c6272")  # fmt: skip
            month_ticks(ax, labels)
            ax.set_xlim(-0.5, len(x) - 0.5)
            if percent:
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}%"))
            ax.set_ylabel("" if percent else y_label)
            ax.grid(axis="y", color="#e8edee", linewidth=0.8)
            ax.set_axisbelow(True)
            handles = [
                Line2D([0], [0], color=LIMIT, linewidth=1.2, label=_("Mean")),
                Line2D([0], [0], color=LIMIT, linestyle=(0, (4, 3)), label=_("Control limits")),
                Line2D([0], [0], color=TARGET, linestyle=(0, (2, 2)), label=_("Target")),
                Line2D([0], [0], marker="o", color="white", markerfacecolor=COMMON, markersize=7,
                       label=_("Common cause")),
                Line2D([0], [0], marker="o", color="white", markerfacecolor=CONCERN, markersize=7, label=_("Concern")),
                Line2D([0], [0], marker="o", color="white", markerfacecolor=IMPROVEMENT, markersize=7,
                       label=_("Improvement")),
                Line2D([0], [0], marker="o", color="white", markerfacecolor="white", markeredgecolor=COMMON,
                       markersize=7, label=_("Provisional")),
            ]  # fmt: skip
            return finish_svg(fig, ax, handles)
        finally:
            plt.close(fig)


def funnel_chart_svg(view: Mapping[str, Any], *, percent: bool, y_label: str, salt: str) -> str:
    """Units against the system value with 95% and 99.8% limits
    (:func:`pipelines.publish.comparisons.funnel_view`)."""
    rc: Any = _rc(salt)
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(7.6, 2.7), dpi=72)
        try:
            curve = view["curve"]
            if curve:
                d = [c["denominator"] for c in curve]
                for key, style, width in (("lower_95", (0, (4, 3)), 1.0), ("upper_95", (0, (4, 3)), 1.0),
                                          ("lower_998", "-", 0.9), ("upper_998", "-", 0.9)):  # fmt: skip
                    ax.plot(d, [_f(c.get(key)) for c in curve], color=LIMIT, linestyle=style, linewidth=width)
            ax.axhline(float(view["target"]), color=COMMON, linewidth=1.0)
            for u in view["units"]:
                if u["value"] is None:
                    continue
                out = u["outlier"]
                colour = COMMON if not out else (CONCERN if out.startswith(("high", "low")) else COMMON)
                ax.scatter([u["denominator"]], [u["value"]], s=30, color=colour, edgecolors="white", zorder=3)
            if percent:
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}%"))
            ax.set_ylabel("" if percent else y_label)
            ax.set_xlabel(str(view["denominator_label"]))
            ax.grid(color="#e8edee", linewidth=0.8)
            ax.set_axisbelow(True)
            handles = [
                Line2D([0], [0], color=COMMON, label=_("System value")),
                Line2D([0], [0], color=LIMIT, linestyle=(0, (4, 3)), label=_("95% limits")),
                Line2D([0], [0], color=LIMIT, label=_("99.8% limits")),
                Line2D([0], [0], marker="o", color="white", markerfacecolor=CONCERN, markersize=7,
                       label=_("Outside the limits")),
            ]  # fmt: skip
            return finish_svg(fig, ax, handles)
        finally:
            plt.close(fig)


__all__ = ["funnel_chart_svg", "spc_chart_svg"]
