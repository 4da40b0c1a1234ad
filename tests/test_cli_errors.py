"""Failures a user can fix are one ``error:`` line and exit 2, found as early as possible
(issue 11, defects 11, 15 and 19)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.config import load_settings
from pipelines.load import create_schema, list_batches, make_engine, replace_results, table_counts
from pipelines.stages import indicator_catalogue, not_computed_row
from pipelines.tables import INDICATOR_SUBJECTS, empty_frame


def careqi(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from pipelines.cli import main; sys.exit(main(sys.argv[1:]))", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


@pytest.mark.parametrize("period", ["0000-01", "9999-12"])
def test_a_period_out_of_range_is_refused_before_anything_is_loaded(period: str, tmp_path: Path) -> None:
    """Regression (defect 11): 0000-01 and 9999-12 passed validation, loaded a batch, then
    crashed; the bogus batches stayed in the warehouse."""
    home = tmp_path / "home"
    (home / "incoming" / period).mkdir(parents=True)
    line = one_error_line(careqi(["run", "--period", period], {"CAREQI_HOME": str(home)}))
    assert "between 1900-01 and 2199-12" in line
    assert not (home / "warehouse.db").exists()


def test_a_wrong_warehouse_url_is_found_before_extraction(tmp_path: Path) -> None:
    """Regression (defect 19): a wrong PostgreSQL URL was reported only after extract and
    validate (about 14 s)."""
    home = tmp_path / "home"
    (home / "incoming" / "2026-10").mkdir(parents=True)
    (home / "incoming" / "2026-10" / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n')
    started = time.monotonic()
    line = one_error_line(
        careqi(
            ["run", "--period", "2026-10"],
            {"CAREQI_HOME": str(home), "CAREQI_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:1/x?connect_timeout=2"},
        )
    )
    assert "cannot connect to warehouse" in line
    assert not (home / "staging").exists()  # nothing was extracted
    assert time.monotonic() - started < 60


def test_an_unwritable_output_folder_is_one_line_and_replaces_nothing(tmp_path: Path) -> None:
    """Regression (defect 19): OSError (a read-only or full disk) printed a traceback."""
    home = tmp_path / "home"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the staging folder should be")
    (home / "incoming" / "2026-10").mkdir(parents=True)
    (home / "incoming" / "2026-10" / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n')
    line = one_error_line(
        careqi(["run", "--period", "2026-10"], {"CAREQI_HOME": str(home), "CAREQI_STAGING_DIR": str(blocker / "x")})
    )
    assert "Not a directory" in line or "File exists" in line


def test_a_retired_indicator_no_longer_blocks_exports(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Regression (defect 15): after an indicator's YAML was removed, ``careqi export``
    refused every month holding its old results, and nothing could retire it."""
    home = tmp_path / "home"
    monkeypatch.setenv("CAREQI_HOME", str(home))
    settings = load_settings()
    indicators, _ = indicator_catalogue(settings)
    kept = next(i for i in indicators if i.id == "recommend_top_box")
    gone = type("Gone", (), {"id": "old_measure", "target": 0.5})()
    engine = make_engine(settings.warehouse_url)
    create_schema(engine)
    results = pd.concat(
        [not_computed_row(kept, "2026-10", "test"), not_computed_row(gone, "2026-10", "withdrawn")], ignore_index=True
    )
    replace_results(engine, "2026-10", subjects=empty_frame(INDICATOR_SUBJECTS), results=results)

    assert main(["export", "--period", "2026-10"]) == 2
    assert "careqi indicators retire old_measure" in capsys.readouterr().err
    assert main(["indicators", "retire", "recommend_top_box"]) == 2  # still defined: refused
    capsys.readouterr()
    assert main(["indicators", "retire", "old_measure"]) == 0
    assert "retired old_measure: 1 result rows" in capsys.readouterr().out
    assert table_counts(engine)["retired_indicator_results"] == 1
    assert main(["export", "--period", "2026-10"]) == 0
    assert list_batches(engine) == []


def test_the_run_summary_counts_what_was_not_computed() -> None:
    """Regression (defect 19): the summary said "11 indicators computed" when 4 were skipped."""
    from pipelines.cli import _computed_text

    summary = {"indicators": 11, "not_computed": {f"cms{i}": "value sets not supplied (set X): a, b" for i in range(4)}}
    assert _computed_text(summary) == "7 indicators computed, 4 not computed (value sets not supplied (set X))"
    assert _computed_text({"indicators": 7, "not_computed": {}}) == "7 indicators computed"
