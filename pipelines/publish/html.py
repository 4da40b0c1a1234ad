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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from pipelines import outputs
from pipelines.errors import ConfigError
from pipelines.publish import i18n
from pipelines.publish.charts import STATUS_COLOURS, sparkline_svg, trend_chart_svg
from pipelines.publish.fonts import FAMILY, font_face_css
from pipelines.publish.spc_charts import funnel_chart_svg, spc_chart_svg

log = logging.getLogger(__name__)

TEMPLATE = "monthly_committee.html.j2"
STYLESHEET = "report.css"


def make_environment(templates_dir: Path) -> Environment:
    """A Jinja2 environment that escapes everything in ``.html``/``.j2`` templates."""
    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml", "j2"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # New-style gettext: {{ _("%(n)s cases", n=x) }} escapes its arguments and fails loudly
    # on a missing one; the active language is the caller's (i18n.using).
    env.install_gettext_callables(i18n._, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


#: Shown instead of a chart matplotlib could not draw: one chart must not cost the report.
CHART_UNAVAILABLE = (
    '<svg class="chart" viewBox="0 0 547 60" role="img" aria-label="chart unavailable" '
    'xmlns="http://www.w3.org/2000/svg"><text x="273" y="34" text-anchor="middle" '
    'fill="#4c6272">Chart unavailable (see the run log); the figures are in the tables below.</text></svg>'
)


def _safe(draw: Callable[[], str], what: str) -> Markup:
    try:
        return Markup(draw())
    except (ValueError, RuntimeError, OverflowError) as exc:  # matplotlib's failures on odd input
        log.warning("%s not drawn: %s", what, str(exc).splitlines()[0][:200])
        return Markup(CHART_UNAVAILABLE)


def _charts(context: dict[str, Any]) -> dict[str, dict[str, Any]]:
    charts: dict[str, dict[str, Any]] = {}
    labels = context.get("month_labels", [])
    for section in context.get("indicators", []):
        sid = section["id"]
        mine: dict[str, Any] = {}
        spc = section.get("spc")
        if spc is not None and spc["enough"]:  # the section shows the SPC chart instead of the trend
            mine["spc"] = _safe(
                partial(spc_chart_svg, spc, labels, percent=section["percent"], y_label=section["unit"],
                        salt=f"careqi-spc-{sid}"),
                f"SPC chart for {sid}",
            )  # fmt: skip
        else:
            mine["trend"] = _safe(
                partial(trend_chart_svg, section["trend"], scale=section["scale"], y_label=section["unit"],
                        target=section["target"], percent=section["percent"], salt=f"careqi-{sid}"),
                f"trend chart for {sid}",
            )  # fmt: skip
        mine["funnels"] = {
            f["level"]: _safe(
                partial(funnel_chart_svg, f, percent=section["percent"], y_label=section["unit"],
                        salt=f"careqi-funnel-{sid}-{f['level']}"),
                f"funnel plot for {sid}",
            )
            for f in section.get("funnels", [])
        }  # fmt: skip
        charts[sid] = mine
    for domain in context.get("domains", []):
        for row in domain["rows"]:
            charts.setdefault(row["id"], {})["spark"] = Markup(
                sparkline_svg(row["spark"], row["spark_status"], target=row["target"])
            )
    return charts


FONT_SLOT = "/*careqi-font-face*/"


def render_html(
    context: dict, templates_dir: Path, template: str = TEMPLATE, *, charts: bool = True, font: Path | None = None
) -> str:
    """The page as one string: the stylesheet inlined and the font embedded, subset to
    the characters the page uses (rendered first with an empty slot, then filled).
    ``charts=False`` for a page that shows none (the case appendix): drawing is most of
    the time a report takes."""
    templates_dir = Path(templates_dir)
    css_path = templates_dir / STYLESHEET
    if not (templates_dir / template).is_file() or not css_path.is_file():
        raise ConfigError(
            f"report templates not found in {templates_dir} (need {template} and {STYLESHEET}); "
            "set CAREQI_TEMPLATES_DIR to the repository's reports/ folder"
        )
    env = make_environment(templates_dir)
    lang = i18n.language(context.get("language", "en"))
    with i18n.using(lang.code):
        html = env.get_template(template).render(
            ctx=context,
            charts=_charts(context) if charts else {},
            css=Markup(FONT_SLOT + "\n" + css_path.read_text(encoding="utf-8").replace("__FONT__", FAMILY)),
            status_colours=STATUS_COLOURS,
        )
    return html.replace(FONT_SLOT, font_face_css(html, font), 1)


def render_report(
    context: dict,
    templates_dir: Path,
    out_dir: Path,
    *,
    stem: str = "index",
    pdf: bool = False,
    font: Path | None = None,
) -> Path:
    """Write ``out_dir/<stem>.html`` (and, when ``pdf``, the same page printed to
    ``<stem>.pdf``) from ``context`` (see :func:`build_report_context`); returns the
    HTML file."""
    html = render_html(context, templates_dir, font=font)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.html"
    outputs.write_file(path, html.encode("utf-8"))
    written = [path]
    if pdf:
        from pipelines.publish.pdf import write_pdf

        written.append(write_pdf(html, out_dir / f"{stem}.pdf"))
    log.info(
        "wrote report for %s (%d indicators, %s) to %s",
        context.get("period"),
        len(context.get("indicators", [])),
        context.get("language", "en"),
        ", ".join(str(p) for p in written),
    )
    return path


__all__ = ["make_environment", "render_html", "render_report"]
