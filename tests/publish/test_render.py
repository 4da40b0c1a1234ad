from __future__ import annotations

import re

import pytest

from pipelines.config import PROJECT_ROOT
from pipelines.errors import ConfigError
from pipelines.publish import build_report_context, render_report

from .conftest import PERIOD

TEMPLATES = PROJECT_ROOT / "reports"


@pytest.fixture(scope="module")
def ctx(indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards):
    return build_report_context(
        period=PERIOD,
        indicators=indicators,
        results=results,
        subjects=subjects,
        reconciliation=reconciliation,
        checks=checks,
        quarantine=quarantine,
        facilities=facilities,
        wards=wards,
        generated_at="2026-11-02 06:00",
    )


@pytest.fixture(scope="module")
def rendered(ctx, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = render_report(ctx, TEMPLATES, out)
    assert path == out / "index.html"
    return path


@pytest.fixture
def html(rendered) -> str:
    return rendered.read_text(encoding="utf-8")


def test_every_indicator_has_a_section_with_an_inline_trend_chart(html, ctx):
    for ind in ctx["indicators"]:
        match = re.search(rf'<article id="{ind["anchor"]}".*?</article>', html, flags=re.S)
        assert match, ind["id"]
        assert '<svg class="chart"' in match.group(0)
    assert html.count('<svg class="spark"') == len(ctx["indicators"])


def test_report_reads_offline(html):
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, flags=re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//|<script|<link\b|<img\b", html, flags=re.I)
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_names_from_source_systems_are_escaped(html):
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_status_is_given_in_words_not_colour_alone(html):
    assert re.search(r'class="badge badge-red">.*?Off target</span>', html)
    assert "On target" in html


def test_unbalanced_reconciliation_is_shouted(html):
    assert "reconciliation does not balance" in html and "patients" in html
    assert "NO – off by 1" in html


def test_rendering_is_reproducible(ctx, rendered, tmp_path):
    again = render_report(ctx, TEMPLATES, tmp_path / "again").read_bytes()
    assert again == rendered.read_bytes()


def test_missing_templates_are_a_config_error(ctx, tmp_path):
    with pytest.raises(ConfigError, match="templates"):
        render_report(ctx, tmp_path, tmp_path / "out")


def test_a_new_part_is_a_builder_and_a_template(
    indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards, tmp_path, monkeypatch
):
    """How a report part is added (README): a pure builder of ReportData in EXTRA_PARTS and
    ``reports/partials/<name>.html.j2``. It renders after the indicator sections and
    before the data-quality appendix, autoescaped like every other part."""
    import shutil

    from pipelines.publish import context

    def owners(data: context.ReportData) -> dict:
        return {"rows": sorted({(i.owner, i.title) for i in data.indicators}), "note": "<b>not bold</b>"}

    monkeypatch.setattr(context, "EXTRA_PARTS", [("owners", owners)])
    templates = tmp_path / "reports"
    shutil.copytree(TEMPLATES, templates)
    (templates / "partials" / "owners.html.j2").write_text(
        '<section id="owners">{% for owner, title in ctx.owners.rows %}<p>{{ owner }}: {{ title }}</p>'
        "{% endfor %}{{ ctx.owners.note }}</section>",
        encoding="utf-8",
    )
    ctx = build_report_context(
        period=PERIOD,
        indicators=indicators,
        results=results,
        subjects=subjects,
        reconciliation=reconciliation,
        checks=checks,
        quarantine=quarantine,
        facilities=facilities,
        wards=wards,
        generated_at="x",
    )
    assert ctx["parts"] == [
        "executive",
        "scorecard",
        "indicators",
        "owners",
        "actions",
        "data_quality",
        "risk_appendix",
    ]
    html = render_report(ctx, templates, tmp_path / "out").read_text(encoding="utf-8")
    part = html.index('<section id="owners">')
    assert html.index('aria-label="Indicator details"') < part < html.index('class="data-quality"')
    assert "<p>Director of Nursing: Falls with harm</p>" in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
