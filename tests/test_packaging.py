"""Regulator packages for a quarter and a year from a small generated warehouse: they
verify, they are byte-identical when rebuilt, no warehouse identifier reaches any of
their files, and the eCQMs' annual populations are the conformance runner's on the very
same deliveries."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines import stages
from pipelines.config import Settings, load_settings
from pipelines.conformance.runner import population_totals
from pipelines.export.verify import read_csv_rows, verify_package
from pipelines.extract import extract_paths
from pipelines.generate import generate
from pipelines.load import make_engine, read_results, read_table
from pipelines.packaging import export_package
from pipelines.tables import TABLES
from tests.sftp_server import PASSWORD, USER

MONTHS = ["2026-07", "2026-08", "2026-09"]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Settings:
    home = tmp_path_factory.mktemp("packages")
    valuesets = os.pathsep.join(str(p) for p in sorted(shared_data.glob("ecqm-qicore-2025/*/valuesets")))
    settings = load_settings({"CAREQI_HOME": str(home), "CAREQI_VALUESET_DIR": valuesets})
    generate(settings.incoming_dir, patients=400, months=3, seed=23, end_period=MONTHS[-1], defect_rate=0.0)
    for month in MONTHS:
        stages.run_period(month, settings, report=False)
    return settings


def _system_rows(folder: Path, label: str) -> dict[str, dict[str, str]]:
    _, rows = read_csv_rows(folder / f"careqi-indicators-{label}.csv")
    return {r["indicator_id"]: r for r in rows if r["facility_id"] == "ALL" and r["stratifier"] == "overall"}


def test_a_quarter_package_verifies_and_covers_the_quarter(system: Settings) -> None:
    export_package("2026-Q3", system)
    folder = system.exports_dir / "2026-Q3"
    assert verify_package(folder) == []
    rows = _system_rows(folder, "2026-Q3")
    assert {(r["period_start"], r["period_end"]) for r in rows.values()} == {("2026-07-01", "2026-09-30")}
    # the quarter's last month is open to revision until 2026-11 is loaded
    assert {r["state"] for r in rows.values()} == {"provisional"}
    assert all("2026-11" in r["state_reason"] for r in rows.values())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["period"] == "2026-Q3" and manifest["run_id"] == "cli-2026-Q3"


def _system(frame: pd.DataFrame, iid: str) -> pd.DataFrame:
    return frame[(frame["indicator_id"] == iid) & (frame["facility_id"] == "ALL") & (frame["stratifier"] == "overall")]


def test_episode_counts_of_a_quarter_are_its_months_added_up(system: Settings) -> None:
    """Stays belong to the month of their discharge, patient-days to the month they fall
    in: evaluated over the quarter, the counts are the months' sums."""
    quarter = stages.warehouse(system)
    try:
        months = read_results(quarter, periods=MONTHS)
    finally:
        quarter.dispose()
    from pipelines.packaging import package_results

    q = package_results("2026-Q3", replace(system, small_number_threshold=1))
    for iid, cols in {"vte_prophylaxis": ["denominator", "numerator"],
                      "falls_with_injury": ["numerator_events", "denominator_value"]}.items():  # fmt: skip
        summed = _system(months, iid)[cols].astype(float).sum()
        got = _system(q, iid)[cols].astype(float).iloc[0]
        assert got.to_dict() == pytest.approx(summed.to_dict()), iid
        assert float(summed.iloc[-1]) > 0, iid  # numerator or exposure: not a comparison of zeros


def test_the_year_package_gives_the_conformance_runner_populations_for_every_ecqm(system: Settings) -> None:
    exact = replace(system, small_number_threshold=1, exports_dir=system.home / "exact")
    export_package("2026", exact)
    folder = exact.exports_dir / "2026"
    assert verify_package(folder) == []
    bundle = json.loads((folder / "careqi-measurereports-2026.bundle.json").read_text())
    reports = {e["resource"]["measure"]: e["resource"] for e in bundle["entry"]
               if e["resource"]["resourceType"] == "MeasureReport"}  # fmt: skip
    indicators, valuesets = stages.indicator_catalogue(system)
    ecqms = [i for i in indicators if i.cms_id]
    assert len(ecqms) == 4
    parts: dict[str, list[pd.DataFrame]] = {}
    for month in MONTHS:  # the deliveries, extracted as the conformance runner reads files
        extracted = extract_paths([system.incoming_dir / month], timezones=system.timezones)
        for name, frame in extracted.tables.items():
            parts.setdefault(name, []).append(frame.assign(batch=month))
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    for ind in ecqms:
        canonical = f"{ind.measure_url}|{ind.measure_version}" if ind.measure_version else ind.measure_url
        report = reports[canonical]
        assert report["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
        assert report["status"] == "pending"  # October to December are not loaded yet
        got = {p["code"]["coding"][0]["code"]: p["count"] for p in report["group"][0]["population"]}
        expected = population_totals(ind, tables, "2026", valuesets)
        assert expected["initial-population"] > 0, ind.id
        assert {k: got[k] for k in expected} == expected, ind.id


def test_rebuilding_a_package_gives_the_same_bytes(system: Settings, tmp_path: Path) -> None:
    first = replace(system, exports_dir=tmp_path / "a")
    second = replace(system, exports_dir=tmp_path / "b")
    export_package("2026-Q3", first)
    export_package("2026-Q3", second)
    a, b = first.exports_dir / "2026-Q3", second.exports_dir / "2026-Q3"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 5
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _file_text(path: Path) -> str:
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), default=str) + json.dumps(
            {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
        )
    return path.read_text(encoding="utf-8")


def test_no_identifier_held_in_the_warehouse_reaches_any_exported_file(system: Settings) -> None:
    """Every record id, patient id, complainant id, date of birth and free-text field in
    the warehouse, searched for in every file of every package (month, quarter, year)."""
    for label in (MONTHS[-1], "2026-Q3", "2026"):  # month, quarter, year: in publication order
        export_package(label, system)
    engine = make_engine(system.warehouse_url)
    published_codes = {"facility_id", "ward_id", "organization_id", "location_id", "table_name"}
    ids: set[str] = set()
    try:
        for name, spec in TABLES.items():
            frame = read_table(engine, name)
            for column in spec.column_names:
                if column.endswith("_id") and column not in published_codes:
                    ids |= set(frame[column].dropna().astype(str))
            for column in ("comment", "description"):
                if column in frame.columns:
                    ids |= {t for t in frame[column].dropna().astype(str) if len(t) >= 12}
        births = set(read_table(engine, "patients")["birth_date"].dropna().astype(str).str[:10])
    finally:
        engine.dispose()
    ids = {i for i in ids if len(i) >= 6}
    assert len(ids) > 1000
    files = [p for label in (MONTHS[-1], "2026-Q3", "2026") for p in sorted((system.exports_dir / label).iterdir())]
    assert len(files) == 15
    for path in files:
        text = _file_text(path)
        leaked = sorted(i for i in ids if i in text)
        assert not leaked, f"{path.parent.name}/{path.name} holds warehouse identifiers or text: {leaked[:3]}"
        dates = sorted(d for d in births if d in text and not d.startswith("2026-"))
        assert not dates, f"{path.parent.name}/{path.name} holds dates of birth: {dates[:3]}"


def test_a_configured_connection_delivers_the_package(system: Settings, sftp_root, monkeypatch, tmp_path) -> None:
    """``CAREQI_EXPORT_CONNECTION`` names the Airflow connection the DAG's deliver step
    opens; the package lands under ``CAREQI_EXPORT_REMOTE_DIR`` and verifies there."""
    from tests.export.test_delivery import deliver

    root, port = sftp_root
    conn = {"conn_type": "sftp", "host": "127.0.0.1", "port": port, "login": USER, "password": PASSWORD,
            "extra": {"no_host_key_check": True}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_TO_REGULATOR", json.dumps(conn))
    settings = replace(system, exports_dir=tmp_path / "out", export_connection="to_regulator",
                       export_remote_dir="upload")  # fmt: skip
    export_package("2026-Q3", settings)
    delivered = deliver(settings.exports_dir / "2026-Q3", settings.export_connection, settings.export_remote_dir)
    assert [delivered] == ["sftp://127.0.0.1/upload/2026-Q3"]
    assert verify_package(root / "upload" / "2026-Q3") == []
