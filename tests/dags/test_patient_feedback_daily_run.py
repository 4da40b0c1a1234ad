"""Run ``patient_feedback_daily`` through Airflow itself (``airflow dags test``) for one generated
day, and check what it stored and that the breach callback reached the trust's hook."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.generate.daily import write_feedback_days
from pipelines.load import make_engine
from pipelines.load.feedback import read_breaches, read_labels

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]

HOOK = """
import json, os
def send(summary):
    with open(os.environ["CAREQI_TEST_HOOK_OUT"], "w") as fh:
        json.dump(summary, fh)
"""


def test_daily_dag_stores_breaches_and_labels_and_calls_the_hook(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings({"CAREQI_HOME": str(home)})
    generate(settings.incoming_dir, patients=600, months=2, seed=8, end_period="2026-10", defect_rate=0.0)
    day = "2026-10-20"
    (folder,) = write_feedback_days(settings.incoming_dir, "2026-10", days=[day])
    # A complaint nobody has acknowledged since 1 October: past its deadline whatever the
    # generated register holds that day.
    with (folder / "complaints.csv").open("a", newline="") as fh:
        csv.writer(fh).writerow(
            ["stuck-1", "org-riverside", "loc-riverside-ward-avon", "general-medicine", "letter", "communication",
             "low", "2026-10-01T10:00:00+00:00", "", "", "", "open", "Nobody has replied to my letter.", "cpl-x"]
        )  # fmt: skip
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "careqi_test_hook.py").write_text(HOOK)
    out = tmp_path / "hook.json"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAREQI_", "AIRFLOW"))}
    env.update(
        CAREQI_HOME=str(home),
        CAREQI_BREACH_HOOK="careqi_test_hook:send",
        CAREQI_TEST_HOOK_OUT=str(out),
        PYTHONPATH=os.pathsep.join([str(hooks), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "airflow_dag_test.sh"), "patient_feedback_daily", day],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DAG run state: success" in proc.stdout

    engine = make_engine(settings.warehouse_url)
    breaches = read_breaches(engine, day=day)
    assert "stuck-1" in set(breaches["complaint_id"])
    assert len(read_labels(engine)) > 0
    summary = json.loads(out.read_text())
    assert summary["day"] == day and summary["open"] == len(breaches)
    assert not any(cid in out.read_text() for cid in breaches["complaint_id"])  # counts, never ids
    staged = home / "staging" / "feedback" / day
    meta = json.loads((staged / "_meta.json").read_text())
    assert meta["balanced"] is True
