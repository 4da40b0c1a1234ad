"""The production set-up, proved: ``scripts/airflow_celery_run.sh`` runs ``quality_monthly``
through the CeleryExecutor (Redis broker; Airflow metadata DB, Celery results and the
warehouse on PostgreSQL) and through ``airflow dags test`` on a copy of the same month,
and the two runs' exports must be byte-identical. The script starts the Airflow
components itself and stops exactly those PIDs; this test checks that none of them is
left and that the run's databases are gone.

Redis (``CAREQI_TEST_REDIS_URL``) or PostgreSQL (``CAREQI_TEST_POSTGRES_URL``; the run's
own databases are created beside ``test``, which is not touched) unreachable: skipped
locally, a failure in CI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipelines.config import load_settings
from pipelines.generate import generate

REPO = Path(__file__).resolve().parents[2]
# Read at import: the autouse clean_environ fixture hides CAREQI_* variables from tests.
REDIS_URL = os.environ.get("CAREQI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("CAREQI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TIMEOUT_S = 1500
pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.xdist_group("airflow_celery")]


def _services() -> str:
    """The PostgreSQL server URL the script creates its databases on (its ``postgres``
    database, so that ``test`` is never used); skip or fail when a service is down."""
    problems = []
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis unreachable at {REDIS_URL}: {exc}")
    server = make_url(PG_URL).set(database="postgres")
    try:
        with sa.create_engine(server).connect():
            pass
    except sa.exc.OperationalError as exc:
        problems.append(f"PostgreSQL unreachable at {server.render_as_string()}: {exc.orig}")
    if problems:
        if os.environ.get("CI") == "true":
            pytest.fail("the Celery proof needs Redis and PostgreSQL in CI, but " + "; ".join(problems))
        pytest.skip("; ".join(problems))
    return server.render_as_string(hide_password=False)


def _sessions_alive(pids: set[str]) -> list[str]:
    """Processes (any state) whose session is one the script started."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[3] in pids:
            alive.append(f"{stat.parent.name} (session {fields[3]}, state {fields[0]})")
    return alive


def test_celery_run_gives_the_dags_test_outputs_and_leaves_nothing_running(tmp_path: Path) -> None:
    server = _services()
    home = tmp_path / "home"
    incoming = load_settings({"CAREQI_HOME": str(home)}).incoming_dir
    generate(incoming, patients=300, months=1, seed=5, end_period="2026-10")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAREQI_", "AIRFLOW"))}
    env.update(
        CAREQI_HOME=str(home),
        CAREQI_CELERY_BROKER_URL=REDIS_URL,
        CAREQI_CELERY_POSTGRES_URL=server,
        CAREQI_SHARD_PATIENTS="32",  # the month's 63 patients in two mapped shards, run side by side
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # the venv's airflow
    )

    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "airflow_celery_run.sh"), "2026-10"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the script's trap stops what it started
        out, _ = proc.communicate(timeout=180)
        pytest.fail(f"the Celery proof took over {TIMEOUT_S} s:\n{out[-5000:]}")
    assert proc.returncode == 0, out[-6000:]
    # the reference (quality_monthly, regulator_export), then Celery (both again)
    assert out.count("DAG run state: success") == 4, out[-3000:]
    assert "the results Asset started regulator_export run" in out
    assert "exports byte-identical" in out
    # every mapped shard task logged its own time and peak memory (dags/careqi_tasks.call)
    cost = r"task cost compute_shard\[(\d+)\]: stages\.compute_shard [\d.]+ s, peak resident memory (\d+) MiB"
    costs = re.findall(cost, out)
    assert sorted(k for k, _ in costs) == ["0", "1"], out[-3000:]
    assert all(50 < int(mib) < 4096 for _, mib in costs), costs

    started = dict(re.findall(r"started ([\w-]+) \(PID (\d+)\)", out))
    assert set(started) == {"api-server", "scheduler", "dag-processor", "celery-worker"}
    assert _sessions_alive(set(started.values())) == []
    (run,) = re.findall(r"; run (\S+)$", out, flags=re.MULTILINE)
    with sa.create_engine(server).connect() as conn:
        left = conn.execute(sa.text("select datname from pg_database where datname like :p"), {"p": f"%{run}%"})
        assert left.scalars().all() == []
    assert any((home / "exports" / "2026-10").glob("*.bundle.json"))
