"""The monthly job end to end on generated data, through the same stage functions the
DAG and CLI call: reconciliation, quarantine of every injected defect, idempotent
reruns, and exports that agree with the warehouse without leaking identifiers."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from pipelines import stages
from pipelines.config import Settings
from pipelines.generate import generate
from pipelines.load import list_batches, make_engine, read_batch, read_results, table_counts

PERIODS = ["2026-08", "2026-09", "2026-10"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from pipelines.config import load_settings

    home = tmp_path_factory.mktemp("e2e")
    settings = load_settings({"CAREQI_HOME": str(home)})
    generate(settings.incoming_dir, patients=600, months=3, seed=11, end_period=PERIODS[-1], defect_rate=0.01)
    for period in PERIODS:
        stages.run_period(period, settings, report=period == PERIODS[-1])
    return settings


def _defects(settings: Settings, period: str) -> list[dict]:
    path = settings.incoming_dir / period / "_defects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_reconciliation_balances_for_every_batch(pipeline: Settings) -> None:
    engine = make_engine(pipeline.warehouse_url)
    for period in PERIODS:
        recon = read_batch(engine, "reconciliation", period)
        assert len(recon) >= 9
        assert (recon["rows_read"] == recon["rows_accepted"] + recon["rows_quarantined"]).all()
        assert recon["balanced"].all()


def test_every_injected_defect_is_quarantined_with_a_reason(pipeline: Settings) -> None:
    engine = make_engine(pipeline.warehouse_url)
    total = 0
    for period in PERIODS:
        defects = _defects(pipeline, period)
        total += len(defects)
        quarantine = read_batch(engine, "quarantine", period)
        located = {(r.source_file, int(r.source_line)): r.reasons for r in quarantine.itertuples()}
        for defect in defects:
            key = (defect["file"], int(defect["line"]))
            assert key in located, f"{defect['kind']} defect not quarantined: {defect}"
            assert located[key].strip(), defect
    assert total > 0, "the generator injected no defects"


def test_malformed_lines_do_not_stop_the_run(pipeline: Settings) -> None:
    kinds = {d["kind"] for p in PERIODS for d in _defects(pipeline, p)}
    assert "malformed_json" in kinds
    engine = make_engine(pipeline.warehouse_url)
    assert table_counts(engine)["encounters"] > 0


def test_rerunning_a_period_leaves_the_warehouse_identical(pipeline: Settings) -> None:
    engine = make_engine(pipeline.warehouse_url)
    before_counts = table_counts(engine)
    before = read_results(engine).sort_values(["indicator_id", "period", "facility_id", "stratifier", "stratum"])
    stages.run_period(PERIODS[1], pipeline, report=False)
    after_counts = table_counts(engine)
    after = read_results(engine).sort_values(["indicator_id", "period", "facility_id", "stratifier", "stratum"])
    assert after_counts == before_counts
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


def test_report_and_exports_are_written(pipeline: Settings) -> None:
    period = PERIODS[-1]
    html = (pipeline.reports_dir / period / "index.html").read_text()
    assert "<svg" in html and period in html
    exports = pipeline.exports_dir / period
    assert list(exports.glob("*.csv"))
    assert list(exports.glob("careqi-measurereports-*.bundle.json"))


def test_the_report_shows_the_configured_number_of_months(
    pipeline: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CAREQI_REPORT_MONTHS sets the trend window the report reads and shows."""
    import pipelines.publish as publish

    shown: list[list[str]] = []
    build = publish.build_report_context

    def spy(**kwargs):  # type: ignore[no-untyped-def]
        context = build(**kwargs)
        shown.append(context["months"])
        return context

    monkeypatch.setattr(publish, "build_report_context", spy)
    stages.report_stage(PERIODS[-1], replace(pipeline, report_months=2, reports_dir=tmp_path))
    assert shown == [PERIODS[-2:]]
    assert (tmp_path / PERIODS[-1] / "index.html").is_file()


def test_a_new_export_format_is_a_writer_in_formats(
    pipeline: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How an export format is added (README): a writer with the common signature, listed in
    ``pipelines.export.FORMATS``; the stage writes it into the same published set."""
    import pipelines.export as export

    def counts(results, indicators, period, out_dir, *, small_number_threshold=11, rounding=0, controlled=None):  # type: ignore[no-untyped-def]
        path = out_dir / f"counts-{period}.txt"
        path.write_text(f"{len(indicators)} indicators, threshold {small_number_threshold}\n", encoding="utf-8")
        return [path]

    monkeypatch.setattr(export, "FORMATS", {**export.FORMATS, "counts": counts})
    written = stages.export_stage(PERIODS[-1], replace(pipeline, exports_dir=tmp_path))
    assert list(written) == ["csv", "measure_reports", "data_dictionary", "parquet", "counts", "manifest"]
    (path,) = written["counts"]
    assert Path(path).parent == tmp_path / PERIODS[-1] and Path(path).read_text().endswith("threshold 11\n")
    assert all(Path(p).is_file() for paths in written.values() for p in paths)


def test_csv_export_agrees_with_the_warehouse(pipeline: Settings) -> None:
    period = PERIODS[-1]
    engine = make_engine(pipeline.warehouse_url)
    results = read_results(engine, periods=[period])
    overall = results[(results["facility_id"] == "ALL") & (results["stratifier"] == "overall")]
    (csv_path,) = (pipeline.exports_dir / period).glob("careqi-indicators-*.csv")
    rows = {
        r["indicator_id"]: r
        for r in csv.DictReader(csv_path.open())
        if r["facility_id"] == "ALL" and r["stratifier"] == "overall"
    }
    assert set(rows) == set(overall["indicator_id"])
    for rec in overall.itertuples():
        row = rows[rec.indicator_id]
        for pop in ("denominator", "numerator"):
            if row[pop] != "":
                assert int(row[pop]) == int(getattr(rec, pop)), (rec.indicator_id, pop)


def test_exports_carry_no_patient_identifiers(pipeline: Settings) -> None:
    period = PERIODS[-1]
    batch = pipeline.incoming_dir / period
    patients = []
    for line in (batch / "Patient.ndjson").read_text().splitlines()[:200]:
        try:
            patients.append(json.loads(line))
        except ValueError:  # a deliberately malformed line
            continue
    secrets: set[str] = set()
    for p in patients:
        if not isinstance(p, dict):
            continue
        secrets.add(str(p.get("id")))
        for name in p.get("name", []):
            secrets.update(name.get("given", []))
            if name.get("family"):
                secrets.add(name["family"])
        for ident in p.get("identifier", []):
            secrets.add(str(ident.get("value")))
    encounters = [line for line in (batch / "Encounter.ndjson").read_text().splitlines()[:200]]
    for line in encounters:
        try:
            secrets.add(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            continue
    secrets = {s for s in secrets if s and len(s) >= 6}
    assert secrets
    for path in Path(pipeline.exports_dir / period).iterdir():
        if path.suffix == ".parquet":  # binary: scan its values
            text = pd.read_parquet(path).astype("string").fillna("").to_csv(index=False)
        else:
            text = path.read_text(encoding="utf-8")
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{path.name} leaks {leaked[:3]}"


def test_a_run_revises_the_months_its_batch_can_complete() -> None:
    loaded = {"2026-07", "2026-08", "2026-09"}
    assert stages.compute_targets("2026-09", loaded, revision_months=2) == ["2026-07", "2026-08", "2026-09"]
    assert stages.compute_targets("2026-10", loaded, revision_months=0) == ["2026-10"]
    assert stages.compute_targets("2026-09", loaded, revision_months=1, history_months=12) == [
        "2026-07",
        "2026-08",
        "2026-09",
    ]


def test_a_broken_feed_fails_the_run_with_a_clear_message(settings: Settings) -> None:
    from pipelines.errors import ValidationFailed

    generate(settings.incoming_dir, patients=150, months=1, seed=2, end_period="2026-10", defect_rate=0.45)
    stages.extract_stage("2026-10", settings)
    with pytest.raises(ValidationFailed, match=r"validation failed for 2026-10, nothing replaced: .*more than 25%"):
        stages.validate_stage("2026-10", settings)
    # The evidence is kept for inspection, and nothing was loaded.
    folder = stages.stage_dir(settings, "2026-10", "validate")
    assert len(pd.read_parquet(folder / stages.QUARANTINE_FILE)) > 0
    with pytest.raises(ValidationFailed, match="refused"):
        stages.load_stage("2026-10", settings)
    assert list_batches(make_engine(settings.warehouse_url)) == []


def test_missing_input_names_the_folder_and_the_fix(settings: Settings) -> None:
    from pipelines.errors import ExtractError

    with pytest.raises(ExtractError, match="careqi generate"):
        stages.extract_stage("2026-10", settings)


def test_a_backfill_leaves_the_same_results_as_month_by_month_runs(
    pipeline: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.cli import main

    monkeypatch.setenv("CAREQI_HOME", str(tmp_path / "backfill"))
    monkeypatch.setenv("CAREQI_INCOMING_DIR", str(pipeline.incoming_dir))
    assert main(["backfill", "--from", PERIODS[0], "--to", PERIODS[-1]]) == 0
    keys = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
    expected = read_results(make_engine(pipeline.warehouse_url)).sort_values(keys).reset_index(drop=True)
    backfilled = make_engine(f"sqlite:///{tmp_path / 'backfill' / 'warehouse.db'}")
    pd.testing.assert_frame_equal(expected, read_results(backfilled).sort_values(keys).reset_index(drop=True))


def test_months_open_to_revision_are_provisional_and_not_graded(pipeline: Settings) -> None:
    """Regression (defect 17): a month open to revision was stored, reported and exported as
    final and graded. With CAREQI_REVISION_MONTHS=2 and batches up to October loaded, August
    is final and September and October are provisional."""
    engine = make_engine(pipeline.warehouse_url)
    results = read_results(engine)
    system = results[(results["facility_id"] == "ALL") & (results["stratifier"] == "overall")]
    computed = system[system["state"] != "not_computed"]
    by_month = {period: set(group["state"]) for period, group in computed.groupby("period")}
    assert by_month["2026-08"] == {"final"}
    assert by_month["2026-09"] == by_month["2026-10"] == {"provisional"}
    provisional = results[results["state"] == "provisional"]
    assert provisional["status"].isna().all()
    assert provisional["state_reason"].str.contains("open to revision until batch").all()
    assert computed.loc[computed["period"] == "2026-08", "status"].notna().all()
    export = stages.export_stage(PERIODS[-1], pipeline)
    rows = list(csv.DictReader(open(export["csv"][0], encoding="utf-8")))
    assert {r["state"] for r in rows if r["state"] != "not_computed"} == {"provisional"}
    assert all(r["status"] == "" for r in rows)
    (bundle,) = (json.loads(Path(p).read_text()) for p in export["measure_reports"])
    statuses = {e["resource"]["status"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MeasureReport"}
    assert statuses <= {"pending", "error"} and "pending" in statuses


def test_the_export_package_verifies_and_a_rerun_is_byte_identical(pipeline: Settings, tmp_path: Path) -> None:
    """What a regulator receives checks out (manifest, checksums, FHIR, suppression), and
    exporting the same warehouse again gives the same bytes, manifest included."""
    from pipelines.export.verify import verify_package

    period = PERIODS[-1]
    first = pipeline.exports_dir / period
    assert verify_package(first) == []
    stages.export_stage(period, replace(pipeline, exports_dir=tmp_path))
    names = sorted(p.name for p in first.iterdir())
    assert "manifest.json" in names and sorted(p.name for p in (tmp_path / period).iterdir()) == names
    for name in names:
        assert (first / name).read_bytes() == (tmp_path / period / name).read_bytes(), name
