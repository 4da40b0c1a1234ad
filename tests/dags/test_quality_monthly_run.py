"""Run ``quality_monthly`` through Airflow itself (``airflow dags test`` on a SQLite
metadata DB), not by calling the stage functions, and check that the report and the
exports it wrote agree with the warehouse."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import stages
from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.load import make_engine, read_results

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]


def _dag_test(dag_id: str, period: str, env: dict[str, str]) -> None:
    """One run of ``dag_id`` through ``airflow dags test`` (the script checks the run state)."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "airflow_dag_test.sh"), dag_id, period],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DAG run state: success" in proc.stdout


def test_dag_run_produces_report_and_exports_that_agree_with_the_warehouse(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAREQI_", "AIRFLOW"))}
    env["CAREQI_HOME"] = str(home)
    # about 100 of the 300 patients have records in two months: compute fans out over
    # several mapped shard tasks
    env["CAREQI_SHARD_PATIENTS"] = "30"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's airflow
    settings = load_settings({"CAREQI_HOME": str(home)})
    # no injected defects: quarantine is tested in tests/test_stages.py; with 300 patients one
    # defective encounter can quarantine a quarter of a small table and fail validation
    generate(settings.incoming_dir, patients=300, months=2, seed=5, end_period="2026-10", defect_rate=0.0)
    stages.run_period("2026-09", settings, report=False)  # history, as a backfill would leave it

    _dag_test("quality_monthly", "2026-10", env)
    computed = home / "staging" / "2026-10" / "compute"
    plan = json.loads((computed / "_plan.json").read_text())
    assert plan["shards"] >= 2
    done = sorted(p.name for p in computed.glob("shard-*") if (p / "_meta.json").exists())
    assert done == [f"shard-{k:04d}-of-{plan['shards']:04d}" for k in range(plan["shards"])]

    report = home / "reports" / "2026-10" / "index.html"
    html = report.read_text()
    assert "<svg" in html
    # compute's results Asset carries the month regulator_export reads (that the event
    # starts it is proven with a scheduler: scripts/airflow_celery_run.sh)
    import sqlalchemy as sa

    meta = sa.create_engine(f"sqlite:///{home / 'airflow' / 'airflow.db'}")
    with meta.connect() as conn:
        extras = (
            conn.execute(
                sa.text(
                    "select e.extra from asset_event e join asset a on a.id = e.asset_id "
                    "where a.uri = 'careqi://warehouse/indicator_results'"
                )
            )
            .scalars()
            .all()
        )
    assert [json.loads(x) if isinstance(x, str) else x for x in extras] == [
        {"period": "2026-10", "months": plan["targets"]}
    ]
    assert not (home / "exports" / "2026-10").exists()  # the export is regulator_export's job

    _dag_test("regulator_export", "2026-10", env)
    exports = home / "exports" / "2026-10"
    from pipelines.export.verify import verify_package

    assert verify_package(exports) == []
    (csv_path,) = exports.glob("careqi-indicators-*.csv")
    (bundle_path,) = exports.glob("*.bundle.json")
    bundle = json.loads(bundle_path.read_text())
    reports = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MeasureReport"]

    engine = make_engine(settings.warehouse_url)
    results = read_results(engine, periods=["2026-10"])
    overall = results[(results["facility_id"] == "ALL") & (results["stratifier"] == "overall")]
    assert len(reports) == overall["indicator_id"].nunique() > 0
    rows = [r for r in csv.DictReader(csv_path.open()) if r["facility_id"] == "ALL" and r["stratifier"] == "overall"]
    by_id = {r["indicator_id"]: r for r in rows}
    for rec in overall.itertuples():
        if by_id[rec.indicator_id]["denominator"] != "":
            assert int(by_id[rec.indicator_id]["denominator"]) == int(rec.denominator)
    for resource in reports:
        assert resource["resourceType"] == "MeasureReport"
        assert resource["type"] == "summary"
        assert resource["period"]["start"].startswith("2026-10-01")
    # The DAG ran after the CLI-loaded history: the report's trend includes it.
    assert set(read_results(engine)["period"]) >= {"2026-09", "2026-10"}
