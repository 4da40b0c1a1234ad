#!/usr/bin/env bash
# Proof of the production set-up: one monthly run of `quality_monthly` through the
# CeleryExecutor, with the Redis broker, the Airflow metadata DB and Celery's result
# backend on PostgreSQL, and the warehouse on PostgreSQL, then the same month through
# `airflow dags test` (scripts/airflow_dag_test.sh, SQLite everywhere) on a copy of the
# same input: the exports must be byte-identical. The exports come from
# `regulator_export`, which the scheduler starts from the results Asset that
# quality_monthly's compute task emits (the proof waits for that asset-triggered run).
#
# usage: CAREQI_HOME=DIR scripts/airflow_celery_run.sh PERIOD        e.g. 2026-10
#
# DIR holds generated batches (`careqi generate`: DIR/incoming/YYYY-MM/). Months before
# PERIOD found there are loaded first with `careqi backfill` (history, as a backfill
# would leave it), in both runs alike. Meant for a small system: a few hundred patients.
#
# What it starts, each in a session of its own (setsid) with its PID recorded:
# `airflow api-server` (UI/REST and the execution API the workers' tasks talk to),
# `airflow scheduler`, `airflow dag-processor` and one `airflow celery worker`. The
# EXIT trap stops exactly those sessions (TERM, then KILL after a grace period), checks
# that no process of them is left, drops the two PostgreSQL databases it created
# (careqi_celery_<run>_airflow, careqi_celery_<run>_wh) and the Redis keys of its queue.
# Nothing is looked up or stopped by name.
#
# Fails (exit 1), never skips, when Redis or PostgreSQL is unreachable.
#
# Settings (environment):
#   CAREQI_CELERY_BROKER_URL    Redis broker           (redis://127.0.0.1:6379/0)
#   CAREQI_CELERY_POSTGRES_URL  server to create the run's databases on; its own
#                               database is only connected to, never written
#                               (postgresql+psycopg://postgres@127.0.0.1:5432/postgres)
#   CAREQI_CELERY_CONCURRENCY   task slots of the worker (2)
#   CAREQI_CELERY_TIMEOUT_S     how long to wait for the run (900)
#   CAREQI_CELERY_COMPARE=0     skip the `airflow dags test` comparison
# Other CAREQI_* settings (value sets, thresholds, ...) apply to both runs alike.
set -euo pipefail

period=${1:?usage: CAREQI_HOME=DIR $0 PERIOD}
here=$(cd "$(dirname "$0")/.." && pwd)
home=${CAREQI_HOME:?CAREQI_HOME must name a folder with generated batches (careqi generate)}
home=$(cd "$home" && pwd)
broker=${CAREQI_CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}
pg_server=${CAREQI_CELERY_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}
concurrency=${CAREQI_CELERY_CONCURRENCY:-2}
timeout_s=${CAREQI_CELERY_TIMEOUT_S:-900}
compare=${CAREQI_CELERY_COMPARE:-1}
dag_id=quality_monthly

fail() { echo "error: $*" >&2; exit 1; }
log() { echo "[celery-proof $(date -u +%H:%M:%S)] $*"; }

[[ $period =~ ^[0-9]{4}-(0[1-9]|1[0-2])$ ]] || fail "PERIOD must be YYYY-MM, got '$period'"
[ -d "$home/incoming/$period" ] || fail "no batch $home/incoming/$period (run careqi generate first)"

# Each run has its own databases, Celery queue, ports and folders, so two proofs (or a
# proof and the test suite) on one machine never see each other's tasks or tables.
run=$(date -u +%Y%m%d%H%M%S)_$$
db_airflow=careqi_celery_${run}_airflow
db_warehouse=careqi_celery_${run}_wh
queue=careqi_${run}
run_id=careqi_celery_${run}
proof=$home/celery-proof  # this script's own folder: logs, the reference copy, AIRFLOW_HOME
rm -rf "$proof"
mkdir -p "$proof"

# One Python helper for everything the shell cannot do simply (URLs, PostgreSQL, Redis,
# the REST API, polling the metadata DB, comparing outputs); subcommand first.
cat >"$proof/helper.py" <<'PY'
import json, os, re, socket, sys, time
from pathlib import Path

cmd, args = sys.argv[1], sys.argv[2:]

def pg_url(server, database):
    from sqlalchemy.engine import make_url
    # psycopg 3 is the project's driver (a plain postgresql:// would mean psycopg2)
    url = make_url(server).set(drivername="postgresql+psycopg", database=database)
    return url.render_as_string(hide_password=False)

def admin(server):
    import sqlalchemy as sa
    return sa.create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})

if cmd == "preflight":  # broker, server -> exit 1 with a reason when either is unreachable
    broker, server = args
    import redis, sqlalchemy as sa
    try:
        redis.Redis.from_url(broker, socket_connect_timeout=5, socket_timeout=5).ping()
    except Exception as exc:
        sys.exit(f"error: Redis broker unreachable at {broker}: {exc}")
    try:
        with admin(server).connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        sys.exit(f"error: PostgreSQL unreachable at {sa.engine.make_url(server)}: {getattr(exc, 'orig', exc)}")
elif cmd == "url":  # server, database -> the URL of that database on the server
    print(pg_url(*args))
elif cmd == "createdb" or cmd == "dropdb":
    import sqlalchemy as sa
    server, *names = args
    with admin(server).connect() as conn:
        for name in names:
            if cmd == "createdb":
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
elif cmd == "purge-queue":  # broker, queue -> delete the queue's own keys, nothing shared
    import redis
    broker, queue = args
    redis.Redis.from_url(broker, socket_connect_timeout=5).delete(queue, f"_kombu.binding.{queue}")
elif cmd == "free-port":
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
elif cmd == "secret":
    print(os.urandom(32).hex())
elif cmd == "fernet":
    from cryptography.fernet import Fernet
    print(Fernet.generate_key().decode())
elif cmd == "wait-http":  # url, seconds, pid: until the URL answers 200 or the process is gone
    import urllib.request
    url, seconds, pid = args[0], float(args[1]), int(args[2])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            sys.exit(f"error: the process {pid} ended before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    sys.exit(0)
        except OSError:
            pass
        time.sleep(1)
    sys.exit(f"error: {url} did not answer within {seconds:.0f} s")
elif cmd == "wait-dag":  # metadata url, dag id, seconds: until the dag-processor has stored the DAG
    import sqlalchemy as sa
    url, dag_id, seconds = args[0], args[1], float(args[2])
    engine = sa.create_engine(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with engine.connect() as conn:
                if conn.execute(sa.text("select 1 from serialized_dag where dag_id = :d"), {"d": dag_id}).first():
                    sys.exit(0)
        except sa.exc.ProgrammingError:
            pass
        time.sleep(2)
    sys.exit(f"error: the dag-processor did not store {dag_id} within {seconds:.0f} s")
elif cmd == "wait-run":
    # metadata url, dag id, run id, seconds, logs folder, name=pid...: poll the run until
    # it ends; fail at the first failed or retrying task (print its log) or if a started
    # component has died; exit 0 only for state success.
    import sqlalchemy as sa
    url, dag_id, run_id, seconds, logs, *named = args
    pids = dict(item.split("=") for item in named)
    engine = sa.create_engine(url)
    deadline = time.monotonic() + float(seconds)
    seen, state = {}, None

    def alive(pid):
        stat = Path(f"/proc/{pid}/stat")
        return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"

    def task_logs(task_id, map_index):
        base = Path(logs) / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            base = base / f"map_index={map_index}"
        for path in sorted(base.glob("attempt=*.log")):
            lines = path.read_text(errors="replace").splitlines()
            print(f"--- {path} (last 60 lines)", file=sys.stderr)
            print("\n".join(lines[-60:]), file=sys.stderr)

    while time.monotonic() < deadline:
        with engine.connect() as conn:
            state = conn.execute(
                sa.text("select state from dag_run where dag_id = :d and run_id = :r"), {"d": dag_id, "r": run_id}
            ).scalar()
            tis = conn.execute(
                sa.text("select task_id, map_index, state from task_instance where dag_id = :d and run_id = :r"),
                {"d": dag_id, "r": run_id},
            ).all()
        for task_id, map_index, ti_state in tis:
            name = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            if seen.get(name) != ti_state:
                seen[name] = ti_state
                print(f"  {name}: {ti_state}", flush=True)
        bad = [(t, m, s) for t, m, s in tis if s in ("failed", "upstream_failed", "up_for_retry")]
        if bad or state == "failed":
            for task_id, map_index, ti_state in bad:
                if ti_state != "upstream_failed":
                    task_logs(task_id, map_index)
            sys.exit(f"error: DAG run {run_id} state {state}; tasks not successful: {sorted(seen.items())}")
        if state == "success":
            print(f"DAG run state: {state}")
            # What each task cost, from the line dags/careqi_tasks.call logs (RESOURCE_LINE).
            cost = re.compile(r"careqi task (\S+): ([\d.]+) s, peak resident memory (\d+) MiB")
            run_logs = Path(logs) / f"dag_id={dag_id}" / f"run_id={run_id}"
            for path in sorted(run_logs.glob("task_id=*/**/attempt=*.log")):
                parts = {k: v for k, _, v in (p.partition("=") for p in path.relative_to(run_logs).parts)}
                name = parts["task_id"] + (f"[{parts['map_index']}]" if "map_index" in parts else "")
                for found in cost.finditer(path.read_text(errors="replace")):
                    print(f"  task cost {name}: {found[1]} {found[2]} s, peak resident memory {found[3]} MiB")
            sys.exit(0)
        dead = [name for name, pid in pids.items() if not alive(int(pid))]
        if dead:
            sys.exit(f"error: {', '.join(dead)} stopped during the run (see its log in the proof folder)")
        time.sleep(3)
    sys.exit(f"error: DAG run {run_id} still {state} after {seconds} s")
elif cmd == "asset-run":
    # metadata url, dag id, seconds: the run id of the DAG's first asset-triggered run
    # (the scheduler creates it from the asset event), once it exists.
    import sqlalchemy as sa
    url, dag_id, seconds = args
    engine = sa.create_engine(url)
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            run = conn.execute(
                sa.text("select run_id from dag_run where dag_id = :d and run_type = 'asset_triggered' "
                        "order by id limit 1"),
                {"d": dag_id},
            ).scalar()
        if run:
            print(run)
            sys.exit(0)
        time.sleep(2)
    sys.exit(f"error: no asset-triggered run of {dag_id} within {seconds} s")
elif cmd == "trigger":
    # api url, user, password, dag id, run id, period: through the REST API, as an operator
    # or another system would: a token, unpause, one manual run for the period.
    import urllib.request
    api, user, password, dag_id, run_id, period = args

    def call(method, path, body, token=None):
        request = urllib.request.Request(
            api + path, method=method, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            sys.exit(f"error: {method} {path}: HTTP {exc.code} {exc.read().decode(errors='replace')[:500]}")

    token = call("POST", "/auth/token", {"username": user, "password": password})["access_token"]
    call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token)
    body = {"dag_run_id": run_id, "logical_date": None, "conf": {"period": period}}
    run = call("POST", f"/api/v2/dags/{dag_id}/dagRuns", body, token)
    print(f"  run {run['dag_run_id']}: {run['state']}, conf {json.dumps(run['conf'])}")
elif cmd == "session-members":  # sid... -> the processes (any state) still in those sessions
    sids = set(args)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[3] in sids:  # pid comm state ppid pgrp session: session is the 4th after ")"
            print(stat.parent.name, fields[3], fields[0])
elif cmd == "compare":
    # reference folder, Celery folder, then again for the report: the exports byte for
    # byte; the report's HTML once its generated-at time and its run id (the wall clock
    # when it was rendered and the DAG run that rendered it, the two things two runs cannot
    # share) are masked. Its PDF prints that same HTML, so it carries both and is compared
    # through the HTML (tests/publish/test_committee_render.py pins that printing is
    # byte-reproducible).
    mask = re.compile(rb"(<dt>Generated</dt><dd>|\xc2\xb7 generated )\d{4}-\d\d-\d\d \d\d:\d\d UTC")
    run_id = re.compile(rb'(<dt>Run</dt><dd class="mono">)[^<]*')
    problems = []
    for ref, got in zip(map(Path, args[0::2]), map(Path, args[1::2])):
        a = sorted(p.name for p in ref.iterdir() if p.is_file()) if ref.is_dir() else []
        b = sorted(p.name for p in got.iterdir() if p.is_file()) if got.is_dir() else []
        if not a:
            problems.append(f"{ref}: no files")
        if a != b:
            problems.append(f"{got}: not the same files: {sorted(set(a) ^ set(b))}")
        for name in sorted(set(a) & set(b)):
            if name.endswith(".pdf"):
                continue
            x, y = (ref / name).read_bytes(), (got / name).read_bytes()
            if name == "manifest.json":  # the DAG run that wrote it is the one field two runs cannot share
                x, y = (json.dumps({**json.loads(v), "run_id": "<run-id>"}, sort_keys=True).encode() for v in (x, y))
            if name.endswith(".html"):
                x, y = mask.sub(rb"\1<generated-at>", x), mask.sub(rb"\1<generated-at>", y)
                x, y = run_id.sub(rb"\1<run-id>", x), run_id.sub(rb"\1<run-id>", y)
            if x != y:
                problems.append(f"{got / name}: differs from {ref / name} ({len(y)} vs {len(x)} bytes)")
        print(f"  {got}: {len(b)} files, {len(set(a) & set(b))} compared with {ref}")
    if problems:
        sys.exit("error: the Celery run's outputs differ from the airflow dags test run's:\n  " + "\n  ".join(problems))
else:
    sys.exit(f"unknown helper command {cmd}")
PY
helper() { python "$proof/helper.py" "$@"; }

# --- the processes this script starts, and their end ----------------------------------
declare -A started=()  # name -> PID (each the leader of its own session)
created_dbs=()

stop_started() {
  [ ${#started[@]} -gt 0 ] || return 0
  local pids=("${started[@]}") left name pid
  log "stopping ${!started[*]} (PIDs ${pids[*]})"
  # TERM every process of those sessions: the leaders and what they forked (Celery's
  # pool, the task supervisors and their task processes, which take process groups of
  # their own but stay in the session).
  _signal_sessions() {
    helper session-members "${pids[@]}" | while read -r member _ state; do
      [ "$state" = Z ] || kill "-$1" "$member" 2>/dev/null || true
    done
  }
  _signal_sessions TERM
  for _ in $(seq 1 30); do
    left=$(helper session-members "${pids[@]}" | awk '$3 != "Z"' | wc -l)
    [ "$left" -eq 0 ] && break
    sleep 1
  done
  if [ "$left" -ne 0 ]; then
    log "$left process(es) still running after 30 s: KILL"
    _signal_sessions KILL
  fi
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done  # reap the leaders
  for _ in $(seq 1 10); do
    left=$(helper session-members "${pids[@]}")
    [ -z "$left" ] && break
    sleep 1
  done
  if [ -n "$left" ]; then
    echo "error: processes of the started sessions are still there (pid sid state):" >&2
    echo "$left" >&2
    return 1
  fi
  log "all started processes have ended"
  started=()
}

cleanup() {
  local rc=$? ok=0
  trap - EXIT INT TERM
  stop_started || ok=1
  if [ ${#created_dbs[@]} -gt 0 ]; then
    helper dropdb "$pg_server" "${created_dbs[@]}" || ok=1
    log "dropped databases ${created_dbs[*]}"
  fi
  [ -n "${queue_used:-}" ] && { helper purge-queue "$broker" "$queue" || ok=1; }
  [ "$rc" -eq 0 ] && rc=$ok
  [ "$rc" -eq 0 ] && log "proof passed" || echo "celery proof FAILED (exit $rc); logs: $proof" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME ARGS...: ARGS in the background, in a session of its own, at low priority,
# output to NAME.log in the proof folder.
start() {
  local name=$1
  shift
  setsid nice -n 10 "$@" >"$proof/$name.log" 2>&1 </dev/null &
  started[$name]=$!
  log "started $name (PID $!): $*"
}

# step NAME ARGS...: ARGS to completion, but as a session of its own that the trap also
# stops if the script is interrupted meanwhile (`wait` gives way to a signal, a
# foreground command would not).
step() {
  local name=$1 rc=0
  shift
  setsid nice -n 10 "$@" </dev/null &
  started[$name]=$!
  wait "$!" || rc=$?
  unset "started[$name]"
  return "$rc"
}

# --- 0. the services must answer; in CI this is a failure, not a skip ----------------
helper preflight "$broker" "$pg_server"
log "Redis $broker and PostgreSQL answer; run $run"

# Only the settings of this run: nothing of the caller's Airflow set-up, and no CareQI
# path or warehouse override that would point both runs at the same place.
for var in $(compgen -e); do
  case $var in
    AIRFLOW_HOME | AIRFLOW__* | CAREQI_HOME | CAREQI_WAREHOUSE_URL | CAREQI_INCOMING_DIR | CAREQI_STAGING_DIR | \
      CAREQI_REPORTS_DIR | CAREQI_EXPORTS_DIR) unset "$var" ;;
  esac
done

history=()
for dir in "$home"/incoming/*/; do
  month=$(basename "$dir")
  [[ $month =~ ^[0-9]{4}-[0-9]{2}$ && $month < $period ]] && history+=("$month")
done

load_history() {  # HOME LOG: the months before PERIOD into the warehouse CAREQI_WAREHOUSE_URL names
  [ ${#history[@]} -gt 0 ] || return 0
  log "history: careqi backfill ${history[0]} .. ${history[-1]} (log: $2)"
  step backfill env CAREQI_HOME="$1" careqi backfill --from "${history[0]}" --to "${history[-1]}" >"$2" 2>&1 ||
    { tail -20 "$2" >&2; return 1; }
}

# --- 1. the reference: `airflow dags test`, on a copy of the input --------------------
reference=$proof/reference
if [ "$compare" != 0 ]; then
  rm -rf "$reference"
  mkdir -p "$reference"
  cp -a "$home/incoming" "$reference/incoming"
  log "reference: airflow dags test on a copy ($reference), SQLite warehouse and metadata DB"
  load_history "$reference" "$reference/backfill.log"
  step reference env CAREQI_HOME="$reference" bash "$here/scripts/airflow_dag_test.sh" "$dag_id" "$period"
  step reference-export env CAREQI_HOME="$reference" bash "$here/scripts/airflow_dag_test.sh" regulator_export "$period"
fi

# --- 2. the production set-up ---------------------------------------------------------
created_dbs=("$db_airflow" "$db_warehouse")  # recorded first: dropped (if there) whatever happens next
helper createdb "$pg_server" "${created_dbs[@]}"
metadata_url=$(helper url "$pg_server" "$db_airflow")
port=$(helper free-port)

export CAREQI_HOME=$home
export CAREQI_WAREHOUSE_URL
CAREQI_WAREHOUSE_URL=$(helper url "$pg_server" "$db_warehouse")
export AIRFLOW_HOME=$proof/airflow
export AIRFLOW__CORE__DAGS_FOLDER=$here/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$metadata_url
# Airflow derives its async URL with asyncpg; psycopg 3 (already a dependency) has both.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=${metadata_url/postgresql+psycopg:/postgresql+psycopg_async:}
export AIRFLOW__CELERY__BROKER_URL=$broker
export AIRFLOW__CELERY__RESULT_BACKEND=db+$metadata_url
export AIRFLOW__CELERY__WORKER_CONCURRENCY=$concurrency
export AIRFLOW__OPERATORS__DEFAULT_QUEUE=$queue
# Airflow 3: task processes on the workers talk only to the api-server's execution API,
# authenticated by JWTs the scheduler signs; every component must share the secrets.
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$port
export AIRFLOW__API__BASE_URL=http://127.0.0.1:$port
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$port/execution/
export AIRFLOW__API_AUTH__JWT_SECRET
AIRFLOW__API_AUTH__JWT_SECRET=$(helper secret)
export AIRFLOW__API__SECRET_KEY
AIRFLOW__API__SECRET_KEY=$(helper secret)
export AIRFLOW__CORE__FERNET_KEY
AIRFLOW__CORE__FERNET_KEY=$(helper fernet)
# The REST API's one user (SimpleAuthManager; production uses a real auth manager).
api_user=careqi-proof
api_password=$(helper secret)
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$api_user:admin
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$AIRFLOW_HOME/passwords.json
# Parse the DAG files once: the run uses the DAG as it was when the proof started.
export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=3600
# The DAG has catchup=True from CAREQI_SCHEDULE_START: unpausing would start one run per
# missed month. The proof runs only the month it triggers, so the schedule starts next
# month (its first run is always in the future). The scheduler still creates runs: the
# asset-triggered regulator_export run is one.
CAREQI_SCHEDULE_START=$(python -c "import datetime as d; from pipelines.periods import Month; print(Month.of(d.datetime.now(d.UTC)).shift(1))")
export CAREQI_SCHEDULE_START
mkdir -p "$AIRFLOW_HOME"
(umask 077 && printf '{"%s": "%s"}\n' "$api_user" "$api_password" >"$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")

log "warehouse: PostgreSQL database $db_warehouse; Airflow metadata and Celery results: $db_airflow"
load_history "$home" "$proof/backfill.log"
step db-migrate airflow db migrate >"$proof/db-migrate.log" 2>&1 || { tail -20 "$proof/db-migrate.log" >&2; exit 1; }

queue_used=1
start api-server airflow api-server --host 127.0.0.1 --port "$port"
start scheduler airflow scheduler --skip-serve-logs
start dag-processor airflow dag-processor
# The worker's log server is not started: the proof reads task logs from the shared
# AIRFLOW_HOME (in production each worker serves its logs on worker_log_server_port).
start celery-worker airflow celery worker --queues "$queue" --concurrency "$concurrency" \
  --celery-hostname "careqi-$run@%h" --skip-serve-logs --without-gossip --without-mingle

step wait-api python "$proof/helper.py" wait-http "http://127.0.0.1:$port/api/v2/monitor/health" 180 \
  "${started[api-server]}"
log "api-server answers on 127.0.0.1:$port"
for name in "${!started[@]}"; do  # each PID leads its own session, so the trap can stop it whole
  pid=${started[$name]}
  [ "$(helper session-members "$pid" | awk -v p="$pid" '$1 == p {print $2}')" = "$pid" ] ||
    fail "$name (PID $pid) is not the leader of its own session"
done
step wait-dag python "$proof/helper.py" wait-dag "$metadata_url" "$dag_id" 240
step wait-dag python "$proof/helper.py" wait-dag "$metadata_url" regulator_export 240
log "$dag_id and regulator_export parsed by the dag-processor"
# Asset-triggered runs are created only for an unpaused DAG.
step unpause airflow dags unpause regulator_export >"$proof/unpause.log" 2>&1 ||
  { tail -20 "$proof/unpause.log" >&2; exit 1; }

helper trigger "http://127.0.0.1:$port" "$api_user" "$api_password" "$dag_id" "$run_id" "$period"
log "triggered $dag_id run $run_id (period $period) on queue $queue; waiting up to $timeout_s s"
step wait-run python "$proof/helper.py" wait-run "$metadata_url" "$dag_id" "$run_id" "$timeout_s" \
  "$AIRFLOW_HOME/logs" api-server="${started[api-server]}" scheduler="${started[scheduler]}" \
  dag-processor="${started[dag-processor]}" celery-worker="${started[celery-worker]}"
export_run=$(python "$proof/helper.py" asset-run "$metadata_url" regulator_export 180) ||
  fail "the results Asset did not start regulator_export"
log "the results Asset started regulator_export run $export_run; waiting for it"
step wait-export python "$proof/helper.py" wait-run "$metadata_url" regulator_export "$export_run" "$timeout_s" \
  "$AIRFLOW_HOME/logs" api-server="${started[api-server]}" scheduler="${started[scheduler]}" \
  dag-processor="${started[dag-processor]}" celery-worker="${started[celery-worker]}"

stop_started

# --- 3. the same outputs -------------------------------------------------------------
if [ "$compare" != 0 ]; then
  log "comparing the outputs of both runs"
  helper compare "$reference/exports/$period" "$home/exports/$period" \
    "$reference/reports/$period" "$home/reports/$period"
  log "exports byte-identical; report identical but for its generated-at time and run id"
fi
