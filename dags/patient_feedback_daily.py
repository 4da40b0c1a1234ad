"""
### patient_feedback_daily

Daily patient-feedback run for one day: **ingest (extract + validate) -> record
(classify new comments, store SLA breaches) -> alert**.

* Runs every evening at 20:00 UTC on the day's extract from the complaints system and
  the survey provider (`<incoming>/feedback/<YYYY-MM-DD>/`): complaints open or changed
  lately, survey returns completed that day.
* Bad rows are quarantined with their reasons (`<staging>/feedback/<day>/`) and
  read = accepted + quarantined is checked; a feed above the quarantine fail ratio fails
  the run.
* The complaints open past a service-level deadline (the complaint indicators'
  deadlines: acknowledge within 2 working days, resolve within 25, in the facility's
  working days) are stored per day in `sla_breaches`; the `record` task's
  `on_success_callback` logs them and calls the trust's hook (`CAREQI_BREACH_HOOK`,
  e.g. e-mail or chat) with counts, never identifiers.
* `catchup=False`: yesterday's list is superseded by today's, so missed days are not
  replayed automatically; rerun a day with the `day` param (it replaces that day's rows).
* Manual and `airflow dags test` runs may carry no data interval: the day comes from the
  `day` param, else the run's `run_after`.
* Tasks pass references through XCom (the day, the staging path, counts), never data.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from careqi_tasks import call

from pipelines.periods import DAY_PATTERN


def _alert(context: dict) -> None:
    from pipelines.alerts import breach_callback

    breach_callback(context)


@dag(
    dag_id="patient_feedback_daily",
    schedule="0 20 * * *",
    # Early enough for reruns of past days (the `day` param); catchup is off, so unpausing
    # does not replay them.
    start_date=pendulum.datetime(2025, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["careqi", "patient_experience", "daily"],
    default_args={"owner": "patient-experience-team", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "day": Param(
            None,
            type=["null", "string"],
            pattern=DAY_PATTERN,
            description="Day of the delivery YYYY-MM-DD; empty = the run's date.",
        ),
    },
)
def patient_feedback_daily() -> None:
    @task
    def feedback_day(params: dict | None = None, run_after: pendulum.DateTime | None = None) -> str:
        from pipelines.periods import validate_day

        chosen = (params or {}).get("day")
        return validate_day(chosen) if chosen else (run_after or pendulum.now("UTC")).date().isoformat()

    @task
    def ingest(day: str) -> str:
        return call("feedback_day", "ingest_day", day)

    @task(on_success_callback=_alert)
    def record(day: str, staged: str) -> dict:
        return call("feedback_day", "record_day", day)

    day = feedback_day()
    record(day, ingest(day))


patient_feedback_daily()
