"""The committee report rendered from a small fixed warehouse (a generated system run
through the stages), checked the way its readers depend on it: the figures are the
warehouse's, both languages are written, and no patient, encounter, complaint or survey
identifier held in the warehouse appears in anything circulated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines import stages
from pipelines.config import Settings, load_settings
from pipelines.generate import generate
from pipelines.load import make_engine, read_results, read_subjects, read_table
from pipelines.load.governance import pseudonym_key
from pipelines.publish.appendix import reidentify
from pipelines.publish.formatting import format_value
from pipelines.tables import ALL_FACILITIES, OVERALL

PERIODS = ["2026-08", "2026-09", "2026-10"]
#: Identifier columns of the warehouse's source tables (what must never be circulated).
ID_COLUMNS = {
    "patients": ["patient_id"],
    "encounters": ["encounter_id", "patient_id"],
    "complaints": ["complaint_id", "complainant_id"],
    "survey_responses": ["response_id", "encounter_id"],
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("committee")
    settings = load_settings({"CAREQI_HOME": str(home), "CAREQI_REPORT_LANGUAGES": "en,zh",
                              "CAREQI_REPORT_PDF": "off"})  # fmt: skip
    generate(settings.incoming_dir, patients=600, months=3, seed=11, end_period=PERIODS[-1])
    for period in PERIODS:
        stages.run_period(period, settings, report=period == PERIODS[-1])
    return settings


def _text_without_embedded_data(path: Path) -> str:
    """The page minus base64 payloads (the embedded font): bytes, not text, in which an
    id's characters could occur by chance."""
    return re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", path.read_text(encoding="utf-8"))


def test_both_languages_are_written_and_the_appendix_apart(system: Settings) -> None:
    folder = system.reports_dir / PERIODS[-1]
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "index.zh.html"]
    restricted = system.restricted_dir / PERIODS[-1]
    assert sorted(p.name for p in restricted.iterdir()) == ["case_appendix.en.html", "case_appendix.zh.html"]
    assert 'lang="zh-Hans"' in (folder / "index.zh.html").read_text(encoding="utf-8")


def test_scorecard_figures_are_the_warehouse_figures(system: Settings) -> None:
    engine = make_engine(system.warehouse_url)
    try:
        results = read_results(engine, periods=[PERIODS[-1]])
    finally:
        engine.dispose()
    indicators = {i.id: i for i in stages.indicator_catalogue(system)[0]}
    html = (system.reports_dir / PERIODS[-1] / "index.html").read_text(encoding="utf-8")
    system_rows = results[(results["facility_id"] == ALL_FACILITIES) & (results["stratifier"] == OVERALL[0])]
    assert len(system_rows) >= 10
    for rec in system_rows.to_dict("records"):
        score = rec["measure_score"]
        shown = format_value(None if score is None or score != score else float(score), indicators[rec["indicator_id"]])
        assert f">{shown}<" in html or f"{shown}</" in html, (rec["indicator_id"], shown)


def test_no_identifier_held_in_the_warehouse_is_circulated(system: Settings) -> None:
    engine = make_engine(system.warehouse_url)
    try:
        ids: set[str] = set()
        for table, columns in ID_COLUMNS.items():
            frame = read_table(engine, table)
            for column in columns:
                ids |= set(frame[column].dropna().astype(str))
        ids |= set(read_subjects(engine, PERIODS[-1])["subject_id"].astype(str))
    finally:
        engine.dispose()
    ids = {i for i in ids if len(i) >= 6}  # every generated id is longer; shorter strings are not ids
    assert len(ids) > 500
    circulated = [*(system.reports_dir / PERIODS[-1]).iterdir()]
    for path in circulated:
        text = _text_without_embedded_data(path)
        leaked = sorted(i for i in ids if i in text)
        assert not leaked, f"{path.name} holds warehouse identifiers: {leaked[:5]}"
    for path in (system.restricted_dir / PERIODS[-1]).iterdir():  # pseudonyms only, even there
        text = _text_without_embedded_data(path)
        assert not sorted(i for i in ids if i in text), path.name


def test_a_pseudonym_in_the_appendix_leads_the_data_team_back_to_its_record(system: Settings) -> None:
    page = (system.restricted_dir / PERIODS[-1] / "case_appendix.en.html").read_text(encoding="utf-8")
    found = re.findall(r"S-[0-9a-f]{16}", page)
    assert found, "the generated month has indicators worse than target: their cases belong in the appendix"
    engine = make_engine(system.warehouse_url)
    try:
        _, secret = pseudonym_key(engine, create=False)
        subjects = read_subjects(engine, PERIODS[-1])
    finally:
        engine.dispose()
    hits = reidentify(secret, found[:3], subjects["subject_id"].astype(str))
    assert all(len(v) == 1 for v in hits.values()), hits
