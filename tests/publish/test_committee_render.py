"""The report as a reader gets it: the HTML opened in headless Chromium, the PDF printed by
WeasyPrint and rasterised by poppler's pdftoppm, in both languages.

These need Chromium and poppler-utils (``make test`` installs them): on CI a missing tool
fails the test, elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.config import PROJECT_ROOT
from pipelines.publish import build_report_context
from pipelines.publish.html import render_html
from pipelines.publish.i18n import using
from pipelines.publish.pdf import pdf_bytes

from .conftest import PERIOD

TEMPLATES = PROJECT_ROOT / "reports"
LANGUAGES = ("en", "zh")


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"{' or '.join(names)} not installed (make test-deps installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module", params=LANGUAGES)
def page(request, indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards):
    with using(request.param):
        ctx = build_report_context(
            period=PERIOD, indicators=indicators, results=results, subjects=subjects, reconciliation=reconciliation,
            checks=checks, quarantine=quarantine, facilities=facilities, wards=wards, generated_at="2026-11-02 06:00",
        )  # fmt: skip
    return request.param, ctx, render_html(ctx, TEMPLATES)


def test_html_renders_in_headless_chromium(page, tmp_path: Path):
    lang, _ctx, html = page
    chromium = _tool("chromium", "chromium-browser", "google-chrome")
    source = tmp_path / f"report.{lang}.html"
    source.write_text(html, encoding="utf-8")
    shot = tmp_path / f"report.{lang}.png"
    run = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1800",
         f"--screenshot={shot}", source.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000  # a page with content, not a blank frame


def test_pdf_prints_with_page_numbers_and_renders_through_pdftoppm(page, tmp_path: Path):
    lang, ctx, html = page
    pdftoppm, pdftotext = _tool("pdftoppm"), _tool("pdftotext")
    pdf = tmp_path / f"report.{lang}.pdf"
    printed = pdf_bytes(html)
    pdf.write_bytes(printed)
    if lang == "zh":  # reproducible: the same page prints to the same bytes (CJK subsetting included)
        assert pdf_bytes(html) == printed
    raster = subprocess.run([pdftoppm, "-png", "-r", "40", "-f", "1", "-l", "3", str(pdf), str(tmp_path / "p")],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert raster.returncode == 0 and not raster.stderr.strip(), raster.stderr
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 3 and all(p.stat().st_size > 2_000 for p in pages)
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=120).stdout
    sheets = text.split("\f")
    total = len([s for s in sheets if s.strip()])
    assert total >= 4
    assert f"1 / {total}" in sheets[0] and f"2 / {total}" in sheets[1]  # running page numbers
    assert ctx["title"] in text  # the title in the report's language, its glyphs embedded
    contents = sheets[1] if "." * 5 in sheets[1] else sheets[0]
    assert "....." in contents  # the contents page's dot leaders to page numbers
