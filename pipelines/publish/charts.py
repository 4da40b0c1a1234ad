"""Charts as inline SVG strings, so the report is one file that reads offline.

Trend charts use matplotlib (Agg backend, text kept as ``<text>`` via
``svg.fonttype: none`` so it uses the page's font and stays searchable). Output is made
byte-stable: a fixed hash salt per chart (so clip-path ids are reproducible and do not
collide between charts inlined in one page), no creation date, and the XML prolog,
DOCTYPE and RDF metadata stripped (they are invalid or useless inside HTML, and the
metadata carries external URLs).

Sparklines are tiny hand-written SVG polylines: a matplotlib figure per scorecard row
would be heavier than the data it shows.

Only numbers from the context reach the SVG; titles and names stay in the HTML, where
Jinja2 escapes them.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from pipelines.errors import ConfigError  # noqa: E402
from pipelines.publish.fonts import FAMILY  # noqa: E402
from pipelines.publish.i18n import _  # noqa: E402

log = logging.getLogger(__name__)

#: Status colours (NHS identity palette), shared with the stylesheet.
STATUS_COLOURS: dict[str, str] = {
    "green": "#007f3b",
    "amber": "#ed8b00",
    "red": "#d5281b",
    "grey": "#768692",
    "provisional": "#005eb8",  # drawn hollow: shown, not graded
    "not_computed": "#aeb7bd",
}
LINE_COLOUR = "#005eb8"
BAND_COLOUR = "#b8d4ef"
TARGET_COLOUR = "#425563"

_RC: dict[str, Any] = {
    # Labels come from indicator files and sources: never read "$...$" in them as
    # mathtext (an unknown command used to crash the whole report).
    "text.parse_math": False,
    "text.usetex": False,
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#aeb7bd",
    "axes.labelcolor": "#212b32",
    "xtick.color": "#4c6272",
    "ytick.color": "#4c6272",
}


@lru_cache(maxsize=1)
def _chart_fonts() -> list[str]:
    """Font families matplotlib measures chart text with: DejaVu Sans, falling back to
    the report's CJK face for Chinese labels (the SVG keeps text as text, so the page's
    embedded font draws it; this only gets the layout right and the glyphs known)."""
    from matplotlib import font_manager

    from pipelines.publish.fonts import font_path

    families = ["DejaVu Sans"]
    try:
        path = font_path()
        font_manager.fontManager.addfont(str(path))
        families.append(font_manager.FontProperties(fname=str(path)).get_name())
    except (ConfigError, OSError, RuntimeError) as exc:  # charts still draw; CJK glyphs then measure as boxes
        log.warning("chart font fallback unavailable: %s", exc)
    return families


def _rc(salt: str) -> dict[str, Any]:
    """The chart settings with a per-chart hash salt (stable ids, no collisions)."""
    return {**_RC, "svg.hashsalt": salt, "font.family": _chart_fonts()}


def month_ticks(ax: Any, labels: Sequence[str]) -> None:
    """Month labels under a chart; long ones ("2025年11月") slanted so they never overlap."""
    ax.set_xticks(list(range(len(labels))))
    long = max((len(str(s)) for s in labels), default=0) > 6
    ax.set_xticklabels(list(labels), rotation=40 if long else 0, ha="right" if long else "center",
                       rotation_mode="anchor")  # fmt: skip


def finish_svg(fig: Any, ax: Any, handles: Sequence[Any]) -> str:
    """A drawn chart's legend (right of the plot), layout and byte-stable inline SVG."""
    ax.legend(handles=list(handles), loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return _clean_svg(buf.getvalue())


def _clean_svg(svg: str) -> str:
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # Fixed point sizes -> responsive width; the viewBox keeps the aspect ratio.
    view_box = re.search(r'<svg[^>]*\sviewBox="([^"]*)"', svg)
    box = view_box.group(1) if view_box else "0 0 547 180"
    svg = re.sub(
        r"<svg\b[^>]*>",
        f'<svg class="chart" viewBox="{box}" role="img" xmlns="http://www.w3.org/2000/svg" '
        'xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1">',
        svg,
        count=1,
    )
    # Text is drawn by the page's embedded face, not the fonts matplotlib measured with.
    svg = re.sub(r"font-family:[^;\"]*", f"font-family: '{FAMILY}', sans-serif", svg)
    # matplotlib's global "*{...}" rule would leak into the whole page once inlined.
    svg = re.sub(r"<style[^>]*>.*?</style>\s*", "", svg, flags=re.S)
    return svg.strip()


def _none_to_nan(values: Sequence[float | None], scale: float) -> list[float]:
    return [math.nan if v is None else float(v) * scale for v in values]


def _marker(fill: str, label: str, edge: str = "white") -> Line2D:
    """A legend entry for a month's point: filled by status, hollow when provisional."""
    return Line2D([0], [0], marker="o", color="white", markerfacecolor=fill, markeredgecolor=edge, markersize=7,
                  label=label)  # fmt: skip


def trend_chart_svg(
    trend: Sequence[dict[str, Any]],
    *,
    scale: float = 1.0,
    y_label: str = "",
    target: float | None = None,
    percent: bool = False,
    salt: str = "careqi",
) -> str:
    """The 12-month trend: value line with its 95% CI band, the target as a dashed
    line and each month's point coloured by its RAG status (with a legend, so colour
    is never the only cue: the status is also in the tables next to it)."""
    labels = [str(t["label"]) for t in trend]
    x = list(range(len(trend)))
    y = _none_to_nan([t.get("value") for t in trend], scale)
    lo = _none_to_nan([t.get("ci_low") for t in trend], scale)
    hi = _none_to_nan([t.get("ci_high") for t in trend], scale)
    targets = _none_to_nan([t.get("target") if t.get("target") is not None else target for t in trend], scale)
    rc: Any = _rc(salt)  # matplotlib types rc keys as a closed Literal set
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(7.6, 2.5), dpi=72)
        try:
            has_data = any(not math.isnan(v) for v in y)
            if any(not (math.isnan(a) or math.isnan(b)) for a, b in zip(lo, hi, strict=True)):
                ax.fill_between(x, lo, hi, color=BAND_COLOUR, alpha=0.7, linewidth=0, label=_("95% CI"))
            if any(not math.isnan(t) for t in targets):
                ax.plot(x, targets, linestyle=(0, (5, 3)), color=TARGET_COLOUR, linewidth=1.2, label=_("Target"))
            ax.plot(x, y, color=LINE_COLOUR, linewidth=1.8, marker=None, label=_("Value"))
            for status, colour in STATUS_COLOURS.items():
                pts = [
                    (i, v)
                    for i, (v, t) in enumerate(zip(y, trend, strict=True))
                    if not math.isnan(v) and t.get("status") == status
                ]
                if pts:
                    hollow = status == "provisional"
                    ax.scatter(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        s=34,
                        color="white" if hollow else colour,
                        edgecolors=colour if hollow else "white",
                        linewidths=1.4 if hollow else 0.8,
                        zorder=3,
                    )
            if not has_data:
                ax.text(
                    0.5,
                    0.5,
                    _("No data in this period"),
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color="#4c6272",
                )
                ax.set_yticks([])
            month_ticks(ax, labels)
            ax.set_xlim(-0.5, len(x) - 0.5)
            if percent:
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}%"))
            ax.set_ylabel(y_label if not percent else "")
            ax.grid(axis="y", color="#e8edee", linewidth=0.8)
            ax.set_axisbelow(True)
            handles = (
                [
                    Line2D([0], [0], color=LINE_COLOUR, linewidth=1.8, label=_("Value")),
                    Patch(color=BAND_COLOUR, label=_("95% CI")),
                    Line2D([0], [0], color=TARGET_COLOUR, linestyle=(0, (5, 3)), label=_("Target")),
                ]
                + [
                    _marker(STATUS_COLOURS[s], lbl)
                    for s, lbl in (("green", _("On target")), ("amber", _("Near target")), ("red", _("Off target")))
                ]
                + [_marker("white", _("Provisional"), edge=STATUS_COLOURS["provisional"])]
            )
            return finish_svg(fig, ax, handles)
        finally:
            plt.close(fig)


def sparkline_svg(
    values: Sequence[float | None],
    statuses: Sequence[str],
    *,
    target: float | None = None,
    width: int = 120,
    height: int = 28,
) -> str:
    """A scorecard sparkline: the trend line, the target as a faint dashed line and
    the latest point coloured by status. Gaps (months without data) break the line."""
    pad = 3.0
    pts = [(i, float(v)) for i, v in enumerate(values) if v is not None and not math.isnan(float(v))]
    if not pts:
        return (
            f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{_("no data")}"><line x1="{pad}" y1="{height / 2}" x2="{width - pad}" '
            f'y2="{height / 2}" stroke="#d8dde0" stroke-dasharray="2 2"/></svg>'
        )
    ys = [v for _i, v in pts] + ([float(target)] if target is not None else [])
    lo, hi = min(ys), max(ys)
    span = hi - lo or 1.0
    n = max(len(values) - 1, 1)

    def sx(i: float) -> float:
        return round(pad + (width - 2 * pad) * i / n, 2)

    def sy(v: float) -> float:
        return round(height - pad - (height - 2 * pad) * (v - lo) / span, 2)

    segments: list[list[tuple[float, float]]] = []
    last = -2
    for i, v in pts:
        if i != last + 1:
            segments.append([])
        segments[-1].append((sx(i), sy(v)))
        last = i
    parts = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_("12-month trend")}">'
    ]
    if target is not None:
        ty = sy(float(target))
        parts.append(
            f'<line x1="{pad}" y1="{ty}" x2="{width - pad}" y2="{ty}" stroke="{TARGET_COLOUR}" '
            f'stroke-width="0.8" stroke-dasharray="3 2" opacity="0.6"/>'
        )
    for seg in segments:
        if len(seg) > 1:
            coords = " ".join(f"{a},{b}" for a, b in seg)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{LINE_COLOUR}" stroke-width="1.5"/>')
    li, lv = pts[-1]
    colour = STATUS_COLOURS.get(statuses[li] if li < len(statuses) else "grey", STATUS_COLOURS["grey"])
    parts.append(f'<circle cx="{sx(li)}" cy="{sy(lv)}" r="3" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["STATUS_COLOURS", "sparkline_svg", "trend_chart_svg"]
