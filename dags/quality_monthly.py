"""
### quality_monthly

Monthly quality-indicator run for one reporting month:
**extract -> validate -> load -> compute -> report**; storing the results emits the
results Asset with the month in its extra, which starts `regulator_export` (the
regulator packages: the month, and the quarter or year it completes).

* Compute fans out: `plan_compute` sizes patient shards (`CAREQI_SHARD_PATIENTS` per
  shard), `compute_shard` is mapped once per shard (with LocalExecutor they share the
  machine's cores, with CeleryExecutor they spread over the workers), and `compute`
  combines them exactly and stores the month's results.
* Runs on the 5th of each month at 06:00 UTC and reports on the *previous* month, so
  late-arriving records of the month's last days are in the extract.
* `catchup=True`: unpausing with a `start_date` in the past (`CAREQI_SCHEDULE_START`,
  the month of the first scheduled run, default 2025-11, which reports 2025-10), or
  `airflow backfill create --dag-id quality_monthly --from-date ... --to-date ...`,
  creates one run per missed month. Every stage replaces what it wrote for its month,
  so reruns and backfills never duplicate.
* Manual and `airflow dags test` runs may carry no data interval; the month is taken
  from the `period` param when given, otherwise from the run's `run_after`.
* The delivery guard refuses a batch that is empty, short or missing a feed before
  anything is replaced; the `force` param loads it anyway and `empty` declares
  tables that are truly empty this month (both recorded with the batch).
* Tasks pass references (the period, staging paths, counts) through XCom, never data.
  All logic lives in `pipelines.stages`; this file is wiring only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task
from careqi_tasks import call

from pipelines.config import schedule_start
from pipelines.periods import MONTH_PATTERN, Month

#: The month of the first scheduled run (CAREQI_SCHEDULE_START): catchup starts there.
FIRST = Month.parse(schedule_start())


def _stage(name: str, *args: object, **kwargs: object) -> Any:
    """Call ``pipelines.stages.<name>`` (see :func:`careqi_tasks.call` for how errors fail the task)."""
    return call("stages", name, *args, **kwargs)


INDICATOR_RESULTS = Asset("careqi://warehouse/indicator_results")
QUALITY_REPORT = Asset("careqi://reports/monthly")


@dag(
    dag_id="quality_monthly",
    schedule="0 6 5 * *",
    start_date=pendulum.datetime(FIRST.year, FIRST.month, 1, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["careqi", "quality", "monthly"],
    default_args={"owner": "quality-data-team", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "period": Param(
            None,
            type=["null", "string"],
            pattern=MONTH_PATTERN,
            description="Reporting month YYYY-MM; empty = the month before the run date.",
        ),
        "history": Param(
            False,
            type="boolean",
            description="Also recompute the trend window (the report's previous months).",
        ),
        "force": Param(
            False,
            type="boolean",
            description="Load the delivery even if the delivery guard refuses it (recorded with the batch).",
        ),
        "empty": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Tables that are truly empty this month ('*' for the whole batch), accepted by the guard.",
        ),
    },
)
def quality_monthly() -> None:
    @task
    def reporting_period(params: dict | None = None, run_after: pendulum.DateTime | None = None) -> str:
        from pipelines.periods import previous_month, validate_period

        chosen = (params or {}).get("period")
        return validate_period(chosen) if chosen else previous_month(run_after or pendulum.now("UTC"))

    @task
    def extract(period: str) -> str:
        return _stage("extract_stage", period)

    @task
    def validate(period: str, extracted: str, params: dict | None = None) -> str:
        p = params or {}
        return _stage("validate_stage", period, force=bool(p.get("force")), empty_tables=list(p.get("empty") or []))

    @task
    def load(period: str, validated: str) -> dict[str, int]:
        return _stage("load_stage", period)

    @task
    def plan_compute(period: str, loaded: dict[str, int], params: dict | None = None) -> dict:
        return _stage("compute_plan", period, history=bool((params or {}).get("history")))

    @task
    def shard_indices(plan: dict) -> list[int]:
        return list(range(plan["shards"]))

    @task
    def compute_shard(plan: dict, shard: int) -> dict:
        return _stage("compute_shard", plan, shard)

    @task(outlets=[INDICATOR_RESULTS])
    def compute(plan: dict, shards: list[dict], outlet_events: Any = None) -> dict:
        summary = _stage("combine_shards", plan)
        if outlet_events is not None:  # regulator_export reads the month from the event
            # every month whose results were stored (the month and its revision window)
            outlet_events[INDICATOR_RESULTS].extra = {"period": plan["period"], "months": list(plan["targets"])}
        return summary

    @task(outlets=[QUALITY_REPORT])
    def report(period: str, computed: dict, run_id: str | None = None) -> str:
        # The run id goes into the report's provenance footer (Airflow passes it by name).
        return _stage("report_stage", period, run_id=run_id)

    period = reporting_period()
    plan = plan_compute(period, load(period, validate(period, extract(period))))
    shards = compute_shard.partial(plan=plan).expand(shard=shard_indices(plan))
    computed = compute(plan, shards)
    report(period, computed)


quality_monthly()
