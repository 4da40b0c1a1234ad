"""
### regulator_export

Regulator export packages, data-aware: **periods -> export -> deliver** (the packages one after
another, month before quarter before year: each is suppressed together with those of
its year already published, so comparing packages gives nothing back).

* Scheduled on the monthly results Asset (`careqi://warehouse/indicator_results`): when
  `quality_monthly` stores results, its asset event carries the months it stored in its
  extra (`{"period": "2026-10", "months": ["2026-08", "2026-09", "2026-10"]}`: the
  month and the revision window it recomputed; asset-triggered runs have no data
  interval). The run rewrites the package of every such month, so a package turns
  final when its month does, and the packages they complete: a quarter after its last
  month; in December, the calendar year, the eCQMs' measurement period.
* Manual runs take the `period` param: a month `YYYY-MM`, a quarter `YYYY-Qn` or a year
  `YYYY`, one package.
* Each package goes to `exports/<period>/` (CSV, Parquet, data dictionary, FHIR Bundle,
  manifest), published as a set, and to the SFTP destination of the Airflow connection
  named by `CAREQI_EXPORT_CONNECTION` when one is set (the `deliver` task; the CLI writes
  packages locally only). Re-running rewrites the same bytes.
* Wiring only: all logic lives in `pipelines.packaging`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task
from careqi_tasks import call

from pipelines.periods import REPORTING_PERIOD_PATTERN

INDICATOR_RESULTS = Asset("careqi://warehouse/indicator_results")
REGULATOR_EXPORT = Asset("careqi://exports/packages")


@dag(
    dag_id="regulator_export",
    schedule=[INDICATOR_RESULTS],
    start_date=pendulum.datetime(2025, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["careqi", "export", "regulator"],
    default_args={"owner": "quality-data-team", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "period": Param(
            None,
            type=["null", "string"],
            pattern=REPORTING_PERIOD_PATTERN,
            description="Manual runs: YYYY-MM, YYYY-Qn or YYYY. Asset-triggered runs take the month from the event.",
        ),
    },
)
def regulator_export() -> None:
    @task
    def periods(params: dict | None = None, triggering_asset_events: Any = None) -> list[str]:
        from pipelines.packaging import packages_due
        from pipelines.periods import MeasurementPeriod

        chosen = (params or {}).get("period")
        if chosen:
            return [MeasurementPeriod.parse(chosen).label]
        months: set[str] = set()
        for events in (triggering_asset_events or {}).values():
            for event in events:
                extra = event.extra or {}
                months.update(str(m) for m in extra.get("months") or [extra.get("period")] if m)
        if not months:
            raise ValueError("no period: give the period param, or trigger through the results Asset")
        return sorted({p for m in months for p in packages_due(m)})

    @task(outlets=[REGULATOR_EXPORT])
    def export(labels: list[str], run_id: str | None = None) -> dict:
        return call("packaging", "export_packages", labels, run_id=run_id)

    @task
    def deliver(written: dict) -> list[str]:
        """Each package to the SFTP destination of CAREQI_EXPORT_CONNECTION (none: local only)."""
        from careqi_tasks import deliver as send

        from pipelines.config import load_settings

        settings = load_settings()
        if not settings.export_connection:
            return []
        # a refused login or a full disk raises: the task's retries apply (the server may be back)
        return [send(str(settings.exports_dir / label), settings.export_connection, settings.export_remote_dir)
                for label in written]  # fmt: skip

    deliver(export(periods()))  # type: ignore[arg-type]  # an XComArg resolves to the list at run time


regulator_export()
