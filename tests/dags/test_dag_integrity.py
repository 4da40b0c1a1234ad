"""Every DAG file imports quickly, without heavy libraries, and states its contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(DAGS.glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # Airflow puts the DAGs folder on sys.path (the DAG files import careqi_tasks from it).
    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))
    return DagBag(dag_folder=str(DAGS))


def test_dag_folder_has_files() -> None:
    assert DAG_FILES, f"no DAG files in {DAGS}"


def test_dags_import_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert {"quality_monthly", "patient_feedback_daily", "regulator_export"} <= set(dagbag.dags)


def test_patient_feedback_daily_contract(dagbag) -> None:
    dag = dagbag.dags["patient_feedback_daily"]
    assert dag.schedule is not None and dag.catchup is False and dag.max_active_runs == 1
    assert "careqi" in dag.tags
    assert "day" in dag.params
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
    assert dag.get_task("ingest").upstream_task_ids >= {"feedback_day"}
    assert dag.get_task("record").upstream_task_ids >= {"ingest", "feedback_day"}
    assert dag.get_task("record").on_success_callback, "breaches are raised through a callback"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_no_heavy_libraries(path: Path) -> None:
    """Parsing a DAG must not pull in pandas, GX, SQLAlchemy models or the pipeline rooms."""
    code = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(DAGS)!r})\n"
        f"spec = importlib.util.spec_from_file_location('dagfile', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "heavy = [m for m in ('great_expectations', 'fhir', 'pipelines.stages', 'pipelines.extract',"
        " 'pipelines.compute', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"heavy imports at parse time: {out.stdout}"


def test_quality_monthly_contract(dagbag) -> None:
    dag = dagbag.dags["quality_monthly"]
    assert dag.catchup is True
    assert dag.schedule is not None
    assert dag.tags and "careqi" in dag.tags
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.owner == "quality-data-team", task.task_id
    assert "period" in dag.params


def test_dag_follows_the_one_stage_sequence(dagbag, settings) -> None:  # type: ignore[no-untyped-def]
    """The DAGs' tasks are the steps of ``stages.period_steps`` (what ``careqi run`` and
    the tests run), in the same order, with compute fanned out (plan, one mapped task
    per patient shard, combine); report follows compute, and export is the
    ``regulator_export`` DAG that compute's results Asset starts."""
    from pipelines.stages import period_steps

    dag = dagbag.dags["quality_monthly"]
    steps = [name for name, _ in period_steps("2026-01", settings)]
    data_steps, publish_steps = steps[: steps.index("compute") + 1], steps[steps.index("compute") + 1 :]
    fan_out = ["plan_compute", "shard_indices", "compute_shard"]
    assert set(dag.task_ids) == {"reporting_period", *(s for s in steps if s != "export"), *fan_out}
    data_steps[-1:-1] = fan_out
    order = ["reporting_period", *data_steps]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert dag.get_task(downstream).upstream_task_ids >= {upstream}, downstream
    assert publish_steps == ["report", "export"]
    assert dag.get_task("report").upstream_task_ids >= {"compute"}
    results = {o.uri for o in dag.get_task("compute").outlets}
    exporter = dagbag.dags["regulator_export"]
    assert results == {a.uri for a in exporter.timetable.asset_condition.objects}
    assert "export" in exporter.task_ids
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(dag.get_task("compute_shard"), MappedOperator)


def test_regulator_export_contract(dagbag) -> None:
    """Data-aware on the results Asset, no catchup, a period param for manual runs, the
    packages written by one task in publication order."""
    dag = dagbag.dags["regulator_export"]
    assert dag.catchup is False and dag.max_active_runs == 1 and "careqi" in dag.tags
    assert [a.uri for a in dag.timetable.asset_condition.objects] == ["careqi://warehouse/indicator_results"]
    assert "period" in dag.params
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
    assert dag.get_task("export").upstream_task_ids == {"periods"}


def test_packages_due_for_a_month() -> None:
    from pipelines.packaging import in_publication_order, packages_due

    assert in_publication_order(["2026", "2026-Q4", "2026-12", "2026-11", "2026-Q3", "2026-09"]) == [
        "2026-09", "2026-Q3", "2026-11", "2026-12", "2026-Q4", "2026",
    ]  # fmt: skip
    assert packages_due("2026-10") == ["2026-10"]
    assert packages_due("2026-09") == ["2026-09", "2026-Q3"]
    assert packages_due("2026-12") == ["2026-12", "2026-Q4", "2026"]


def test_reporting_period_defaults_to_previous_month() -> None:
    from datetime import datetime

    from pipelines.periods import previous_month

    assert previous_month(datetime(2026, 11, 5, 6, 0)) == "2026-10"
    assert previous_month(datetime(2026, 1, 5)) == "2025-12"
