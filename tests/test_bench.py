"""``careqi bench --json``: figures a script can check (no timing assertions: the
figures themselves are for people, in the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cli import main


def test_bench_json_has_backfill_monthly_ceiling_and_populations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREQI_HOME", str(tmp_path / "home"))
    assert main(["bench", "--patients", "300", "--months", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["stage"] for r in result["backfill"]] == ["generate", "extract", "validate", "load", "compute"]
    assert [r["stage"] for r in result["monthly"]] == ["extract", "validate", "load", "compute", "report", "export"]
    for row in result["backfill"] + result["monthly"]:
        assert row["records"] > 0 and row["seconds"] > 0 and row["peak_mib"] > 0, row
    # every task in a process of its own, as the DAG runs them: compute is a plan task,
    # one task per shard and a combine task, and its peak is the largest of them
    compute = next(r for r in result["monthly"] if r["stage"] == "compute")
    assert compute["processes"] == compute["shards"] + 2 and compute["shard_peak_mib"] <= compute["peak_mib"]
    assert [r["processes"] for r in result["monthly"] if r["stage"] != "compute"] == [1] * 5
    assert result["peak_process_mib"] >= max(r["peak_mib"] for r in result["backfill"] + result["monthly"])
    assert result["machine"]["process"].startswith("one process per task")
    assert result["monthly_seconds"] == pytest.approx(sum(r["seconds"] for r in result["monthly"]))
    assert result["extract_ceiling"]["records"] > 0
    ids = {r["indicator"] for r in result["indicators"]}
    assert {"falls_with_injury", "readmission_30d_unplanned", "recommend_top_box"} <= ids
    for row in result["indicators"]:
        assert row["patients_per_s"] > 0
        assert set(row["populations"]) >= {"initial_population", "denominator"}
    assert result["machine"]["cpus"] >= 1
