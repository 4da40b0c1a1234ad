"""The report in Simplified Chinese: the catalogue is complete, and a report built and
rendered in Chinese leaves no English label on the page; the English report keeps its
structure."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.compute.model import Population
from pipelines.compute.registry import load_indicators
from pipelines.config import PROJECT_ROOT
from pipelines.organisation import Organisation
from pipelines.publish import build_report_context
from pipelines.publish.experience import FeedbackData
from pipelines.publish.html import render_html
from pipelines.publish.i18n import using
from pipelines.tables import QUARANTINE, VALIDATION_CHECKS

from .conftest import PERIOD, typed
from .test_experience import feedback_of

TEMPLATES = PROJECT_ROOT / "reports"
#: Where a duplicate was first seen: a delivered file's name and line (data, shown as is).
SOURCE_LINE = "Encounter.ndjson:3"
SCRIPT = PROJECT_ROOT / "scripts" / "extract_messages.py"

#: Words that stay in Latin letters in the Chinese report because they are not labels:
#: the product's name; acronyms of bodies, surveys, methods and standards that Chinese
#: clinical and quality writing keeps as they are (NHS, CMS, AHRQ and its PSI patient
#: safety indicators, the NRLS harm scale, HCAHPS, SERVQUAL, SPC, VTE, FFT); the authors
#: of SERVQUAL (a citation); a file name (README); the names of two control charts (XmR,
#: Laney). Identifiers (with a digit or an underscore: CMS108, encounter_id) and single
#: letters are never counted as words.
ALLOWED = {
    "CareQI",
    "NHS",
    "CMS",
    "AHRQ",
    "PSI",
    "NRLS",
    "HCAHPS",
    "SERVQUAL",
    "SPC",
    "VTE",
    "FFT",
    "Parasuraman",
    "Zeithaml",
    "Berry",
    "README",
    "XmR",
    "Laney",
}

#: The real indicators whose texts the fixture's three indicators take, so the page shows
#: what a real report shows (an indicator's texts are in the catalogue; the fixture's own
#: titles are not).
LIKE = {"vte": "vte_prophylaxis", "falls": "falls_with_injury", "fft": "recommend_top_box"}


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("extract_messages", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["extract_messages"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def extraction() -> Any:
    return _script()


@pytest.fixture(scope="module")
def found(extraction) -> Any:
    return extraction.collect()


@pytest.fixture(scope="module")
def zh_catalogue(extraction) -> Any:
    catalogue = extraction.read_catalogue("zh")
    assert catalogue is not None, "run scripts/extract_messages.py"
    return catalogue


# --- (a) the catalogue ------------------------------------------------------------------


def test_every_message_has_a_chinese_translation_with_its_placeholders(extraction, found, zh_catalogue) -> None:
    problems = extraction.untranslated("zh", found, zh_catalogue)
    assert not problems, "run scripts/extract_messages.py and translate:\n" + "\n".join(
        f"  {why}: {msgid!r}" for msgid, why in problems
    )


def test_translations_are_in_chinese(zh_catalogue) -> None:
    """A translation is not the English left in place: a message with an English word
    gets a translation that differs from it."""
    same = [m.id for m in zh_catalogue if m.id and isinstance(m.id, str) and _english_words(m.id) and m.string == m.id]
    assert not same, same


def test_placeholders_are_checked(extraction) -> None:
    problem = extraction.placeholder_problem
    assert problem("%(n)s cases", "%(n)s 例") is None
    assert problem("%(n)s cases", "%(m)s 例") is not None
    assert problem("95%% CI", "95%置信区间") is not None  # a template message: % must stay %%
    assert problem("95%% CI", "95%%置信区间") is None
    assert problem("% of complaints", "%（投诉）") is None  # not a format string


def test_case_rules_are_read_from_the_code(extraction) -> None:
    rules = extraction.case_rules((PROJECT_ROOT / "pipelines" / "compute" / "cases.py").read_text(encoding="utf-8"))
    assert "Cases counted in the numerator (the events behind the rate)." in rules  # through a local name
    assert "Eligible cases, worst value first." in rules  # passed directly
    assert len(rules) == 4


def test_indicator_messages_are_the_registrys_text(found) -> None:
    """Folded YAML scalars: the msgid is the normalised text the report is built from."""
    keys = {key for _context, key in found.found}
    for ind in load_indicators(PROJECT_ROOT / "indicators"):
        assert ind.title in keys and ind.description in keys and ind.unit in keys
        for pop in Population:
            if ind.definition(pop):
                assert ind.definition(pop) in keys, (ind.id, pop)


# --- (b) the Chinese page -------------------------------------------------------------


def _english_words(text: str) -> list[str]:
    """Words of two or more Latin letters, leaving out identifiers (a digit or an underscore
    in them: CMS108, encounter_id), placeholders and commands in backticks."""
    text = re.sub(r"%\(\w+\)[sdif]|`[^`]*`", " ", text)
    return [w for w in re.findall(r"[A-Za-z0-9_]+", text) if len(re.findall(r"[A-Za-z]", w)) >= 2
            and not re.search(r"[\d_]", w)]  # fmt: skip


class _Visible(HTMLParser):
    """The page's text a reader sees: not the stylesheet, no drawing but the SVG's
    ``<text>``, and not what is shown as code (class ``mono``: table, check and run ids)
    or quoted as written (class ``comment``: patients' comments, masked)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        classes = (dict(attrs).get("class") or "").split()
        self.stack.append((tag, "mono" in classes or "comment" in classes))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        tags = [t for t, _ in self.stack]
        if "style" in tags or "script" in tags or any(code for _, code in self.stack):
            return
        if "svg" in tags and "text" not in tags[tags.index("svg") :]:
            return
        self.chunks.append(data)


def visible_text(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.chunks))


def _like_real(fixture: list, real_dir: Path) -> list:
    """The fixture's indicators with the texts of the real indicators they stand for."""
    real = {i.id: i for i in load_indicators(real_dir)}
    out = []
    for ind in fixture:
        like = real[LIKE[ind.id]]
        populations = {
            p: replace(d, sentence=like.definition(p) or d.sentence) for p, d in ind.populations.items()
        }  # fmt: skip
        out.append(replace(ind, title=like.title, description=like.description, unit=like.unit, owner=like.owner,
                           populations=populations))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def real_like_indicators(indicators) -> list:
    return _like_real(indicators, PROJECT_ROOT / "indicators")


@pytest.fixture(scope="module")
def shipped_checks(checks) -> pd.DataFrame:
    """The fixture's checks, described as the shipped suites describe them."""
    frame = checks.copy()
    frame.loc[0, ["check", "description"]] = [
        "expect_column_values_to_not_be_null(patient_id)",
        "patient_id is present: every clinical record must belong to a patient.",
    ]
    return frame.astype(VALIDATION_CHECKS.dtypes)


@pytest.fixture(scope="module")
def shipped_quarantine(quarantine) -> pd.DataFrame:
    """The fixture's quarantine with reasons as the validator writes them (check: description)."""
    not_null = ("expect_column_values_to_not_be_null(patient_id): patient_id is present: every clinical record "
                "must belong to a patient.")  # fmt: skip
    order = ("expect_column_pair_values_A_to_be_greater_than_B(end_at, start_at): end_at is not before start_at (an "
             "encounter cannot end before it starts). Rows missing either value are not judged.")  # fmt: skip
    duplicate = f"expect_column_values_to_be_unique(encounter_id): duplicate record id: first seen at {SOURCE_LINE}"
    frame = quarantine.copy()
    frame["reasons"] = [f"{not_null}; {order}", f"{not_null}; {duplicate}", not_null, not_null, order]
    return typed(frame.to_dict("records"), QUARANTINE)


@pytest.fixture(scope="module")
def feedback_data() -> FeedbackData:
    from pipelines.analyse.text.themes import load_taxonomy

    return feedback_of({t.id: t.label for t in load_taxonomy().themes})


def _build(code: str, indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards, feedback):
    with using(code):
        return build_report_context(
            period=PERIOD, indicators=indicators, results=results, subjects=subjects, reconciliation=reconciliation,
            checks=checks, quarantine=quarantine, facilities=facilities, wards=wards, generated_at="2026-11-02 06:00",
            feedback=feedback,
        )  # fmt: skip


@pytest.fixture(scope="module")
def pages(
    real_like_indicators, results, subjects, reconciliation, shipped_checks, shipped_quarantine, facilities, wards,
    feedback_data,
) -> dict[str, str]:  # fmt: skip
    out = {}
    for code in ("en", "zh"):
        ctx = _build(code, real_like_indicators, results, subjects, reconciliation, shipped_checks, shipped_quarantine,
                     facilities, wards, feedback_data)  # fmt: skip
        assert ctx["language"] == code
        out[code] = render_html(ctx, TEMPLATES)
    return out


@pytest.fixture(scope="module")
def data_values(facilities, wards, reconciliation, shipped_checks, shipped_quarantine) -> list[str]:
    """What the page shows as the data has it: facility, ward and system names, the table
    names the reconciliation warning lists and a delivered file's name (longest first, so a
    name inside another goes after it)."""
    values = {*facilities.values(), *wards.values(), Organisation().system_name, SOURCE_LINE}
    for frame in (reconciliation, shipped_checks, shipped_quarantine):
        values |= set(frame["table_name"].astype("string").dropna())
    return sorted(values, key=len, reverse=True)


def test_the_chinese_page_has_no_english_label(pages, data_values) -> None:
    text = visible_text(pages["zh"])
    for value in data_values:
        text = text.replace(value, " ")
    left = sorted({w for w in _english_words(text) if w not in ALLOWED})
    contexts = {w: re.search(rf".{{0,40}}\b{w}\b.{{0,40}}", text) for w in left}
    assert not left, "English left on the Chinese page:\n" + "\n".join(
        f"  {w}: …{m.group(0) if m else ''}…" for w, m in contexts.items()
    )


def test_no_message_is_shown_untranslated_on_the_chinese_page(pages, zh_catalogue) -> None:
    """Each catalogue message with two or more English words: none of its literal parts
    (between placeholders and markup) is on the Chinese page."""
    text = visible_text(pages["zh"])
    shown = []
    for m in zh_catalogue:
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        for msgid in ids:
            literal = re.sub(r"<[^>]+>", "%(tag)s", str(msgid)).replace("%%", "%")
            for part in re.split(r"%\(\w+\)[sdif]", literal):
                part = re.sub(r"\s+", " ", part).strip(" .,:;()")
                if len(_english_words(part)) >= 2 and re.search(rf"(?<![A-Za-z]){re.escape(part)}(?![A-Za-z])", text):
                    shown.append(part)
    assert not shown, sorted(set(shown))


class _Code(HTMLParser):
    """The text the page shows as code (class ``mono``) or quotes (class ``comment``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self.depth or "mono" in classes or "comment" in classes:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.chunks.append(data)


def test_the_chinese_pdf_has_no_english_label(pages, data_values, tmp_path: Path) -> None:
    """The printed report too: its text (poppler's pdftotext) holds no English word but the
    data values, the code shown as code and the allowed names the page itself may show."""
    import os
    import shutil
    import subprocess

    from pipelines.publish.pdf import pdf_bytes

    tool = shutil.which("pdftotext")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pdftotext not installed (make test-deps installs poppler-utils)")
        pytest.skip("pdftotext not installed")
    pdf = tmp_path / "zh.pdf"
    pdf.write_bytes(pdf_bytes(pages["zh"]))
    text = subprocess.run([tool, str(pdf), "-"], capture_output=True, text=True, timeout=120, check=True).stdout
    text = re.sub(r"\s+", " ", text)
    code = _Code()
    code.feed(pages["zh"])
    for value in sorted({*data_values, *(re.sub(r"\s+", " ", c).strip() for c in code.chunks)}, key=len,
                        reverse=True):  # fmt: skip
        if value:  # as written, and as the stylesheet may show it (uppercase brand line)
            text = text.replace(value, " ").replace(value.upper(), " ")
    allowed = ALLOWED | {a.upper() for a in ALLOWED}
    words = {w for w in _english_words(text) if w not in allowed}
    # A long code string wrapped over two lines in the PDF leaves its pieces: only words that
    # occur in no code string count.
    pieces = " ".join(code.chunks)
    left = sorted(w for w in words if not re.search(rf"\b{re.escape(w)}\b", pieces))
    assert not left, f"English left in the Chinese PDF: {left}"


def test_the_chinese_page_is_chinese(pages) -> None:
    zh = pages["zh"]
    assert '<html lang="zh-Hans">' in zh
    for label in ("计分卡", "数据质量", "倾听患者", "对账", "隔离", "95%置信区间", "患者日", "达标", "未达标"):
        assert label in zh, label


# --- (c) the English page ---------------------------------------------------------------


def _structure(html: str) -> list[str]:
    """Every element outside the charts, by tag, id and class, in order."""

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.svg = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if self.svg or tag == "svg":
                self.svg += tag == "svg"
                return
            a = dict(attrs)
            self.tags.append(f"{tag}#{a.get('id') or ''}.{a.get('class') or ''}")

        def handle_endtag(self, tag: str) -> None:
            if tag == "svg":
                self.svg -= 1

    parser = Tags()
    parser.feed(html)
    return parser.tags


def test_the_english_page_keeps_its_headings(pages) -> None:
    en = pages["en"]
    assert '<html lang="en-GB">' in en
    assert not re.search(r"[\u4e00-\u9fff]", visible_text(en)), "Chinese on the English page"
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", en, flags=re.S)
    for heading in ("Executive summary", "Scorecard", "Listening to patients", "Data quality", "Improvement actions"):
        assert heading in headings, (heading, headings)
    for heading in ("Reconciliation", "Complaints", "What the comments say", "Would patients recommend us?"):
        assert f"<h3>{heading}" in en, heading
    assert "Quarantine (5 records)" in en and "NO – off by 1" in en and "All facilities" in en


def test_both_languages_render_the_same_page(pages) -> None:
    """The same elements in the same order: only the words differ."""
    assert _structure(pages["en"]) == _structure(pages["zh"])
