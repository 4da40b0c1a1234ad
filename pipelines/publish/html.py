"""Render the report context to one self-contained HTML file.

The page must open from a shared drive or an e-mail attachment with no network: the
stylesheet is inlined, charts are inline SVG, and there are no scripts, fonts or images
fetched from anywhere. Every value from the data goes through Jinja2 autoescaping
(facility, ward and indicator names come from source systems and are untrusted); the
only strings marked safe are the stylesheet and the SVG produced by :mod:`charts`, which
contain numbers and fixed labels only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from pipelines import outputs
from pipelines.errors import ConfigError
from pipelines.publish.charts import STATUS_COLOURS, sparkline_svg, trend_chart_svg

log = logging.getLogger(__name__)

TEMPLATE = "monthly_committee.html.j2"
STYLESHEET = "report.css"


def make_environment(templates_dir: Path) -> Environment:
    """A Jinja2 environment that escapes everything in ``.html``/``.j2`` templates."""
    return Environment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml", "j2"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


#: Shown instead of a chart matplotlib could not draw: one chart must not cost the report.
CHART_UNAVAILABLE = (
    '<svg class="chart" viewBox="0 0 547 60" role="img" aria-label="chart unavailable" '
    'xmlns="http://www.w3.org/2000/svg"><text x="273" y="34" text-anchor="middle" '
    'fill="#4c6272">Chart unavailable (see the run log); the figures are in the tables below.</text></svg>'
)


def _charts(context: dict[str, Any]) -> dict[str, dict[str, Markup]]:
    charts: dict[str, dict[str, Markup]] = {}
    for section in context.get("indicators", []):
        try:
            trend = trend_chart_svg(
                section["trend"],
                scale=section["scale"],
                y_label=section["unit"],
                target=section["target"],
                percent=section["percent"],
                salt=f"careqi-{section['id']}",
            )
        except (ValueError, RuntimeError, OverflowError) as exc:  # matplotlib's failures on odd input
            log.warning("trend chart for %s not drawn: %s", section["id"], str(exc).splitlines()[0][:200])
            trend = CHART_UNAVAILABLE
        charts[section["id"]] = {"trend": Markup(trend)}
    for domain in context.get("domains", []):
        for row in domain["rows"]:
            charts.setdefault(row["id"], {})["spark"] = Markup(
                sparkline_svg(row["spark"], row["spark_status"], target=row["target"])
            )
    return charts


def render_report(context: dict, templates_dir: Path, out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` from ``context`` (see :func:`build_report_context`)."""
    templates_dir = Path(templates_dir)
    css_path = templates_dir / STYLESHEET
    if not (templates_dir / TEMPLATE).is_file() or not css_path.is_file():
        raise ConfigError(
            f"report templates not found in {templates_dir} (need {TEMPLATE} and {STYLESHEET}); "
            "set CAREQI_TEMPLATES_DIR to the repository's reports/ folder"
        )
    env = make_environment(templates_dir)
    html = env.get_template(TEMPLATE).render(
        ctx=context,
        charts=_charts(context),
        css=Markup(css_path.read_text(encoding="utf-8")),
        status_colours=STATUS_COLOURS,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    outputs.write_file(path, html.encode("utf-8"))
    log.info(
        "wrote report for %s (%d indicators) to %s",
        context.get("period"),
        len(context.get("indicators", [])),
        path,
    )
    return path


__all__ = ["make_environment", "render_report"]
