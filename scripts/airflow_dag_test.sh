#!/usr/bin/env bash
# Run one monthly DAG run through Airflow itself (`airflow dags test`) on the embedded
# SQLite metadata DB under $CAREQI_HOME/airflow, then fail unless every task succeeded
# (`airflow dags test` exits 0 even when a task fails, so the run's state is checked).
#
# usage: scripts/airflow_dag_test.sh DAG_ID PERIOD     e.g. quality_monthly 2026-10
#        scripts/airflow_dag_test.sh DAG_ID DAY        e.g. patient_feedback_daily 2026-10-14
set -euo pipefail

dag_id=${1:?usage: $0 DAG_ID PERIOD}
period=${2:?usage: $0 DAG_ID PERIOD}
here=$(cd "$(dirname "$0")/.." && pwd)
home=${CAREQI_HOME:-$here/var}

export AIRFLOW_HOME=${AIRFLOW_HOME:-$home/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=${AIRFLOW__CORE__DAGS_FOLDER:-$here/dags}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING}
export CAREQI_HOME=$home
mkdir -p "$AIRFLOW_HOME"
log="$AIRFLOW_HOME/dags-test-$dag_id-$period.log"

airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }

# A period (month YYYY-MM, quarter YYYY-Qn, year YYYY): the logical date is the 5th of the
# month after it (the monthly DAG's
# schedule) and the period is passed as the `period` param. A day: that day at 20:00 UTC
# (the daily DAG's schedule), passed as the `day` param. Either way explicitly, as an
# operator would for a rerun.
if [[ $period =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
  logical_date="${period}T20:00:00+00:00"
  conf="{\"day\": \"$period\"}"
else
  logical_date=$(python - "$period" <<'PY'
import sys
from pipelines.periods import MeasurementPeriod
print(MeasurementPeriod.parse(sys.argv[1]).end.isoformat()[:8] + "05T06:00:00+00:00")
PY
)
  conf="{\"period\": \"$period\"}"
fi
echo "airflow dags test $dag_id $logical_date (period $period); log: $log"
airflow dags test "$dag_id" "$logical_date" -c "$conf" >"$log" 2>&1 || true

state=$(airflow dags list-runs "$dag_id" -o json 2>/dev/null | python -c '
import json, sys
# Airflow may print warnings on stdout before the JSON document: take the JSON line.
lines = [line for line in sys.stdin.read().splitlines() if line.startswith("[")]
runs = json.loads(lines[-1]) if lines else []
runs.sort(key=lambda r: r.get("start_date") or "")
print(runs[-1]["state"] if runs else "missing")
')
echo "DAG run state: $state"
if [ "$state" != "success" ]; then
  grep -E "error|Error|failed" "$log" | grep -vE "^\s*$" | tail -25 >&2 || true
  exit 1
fi
