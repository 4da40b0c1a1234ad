"""Throughput benchmark: every stage on N synthetic patients, timed.

Performance targets live here, not in timed unit tests: a laptop under load would make
a timed test flaky, while this prints figures a person can compare between commits.
It runs in its own scratch home (warehouse, staging, reports) so it never touches the
user's data.
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from pipelines import stages
from pipelines.config import Settings
from pipelines.process_memory import peak_mib, reset_peak

END_PERIOD = "2026-10"


def _task(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float, float]:
    """Run one task: its value, seconds and resident-memory peak (MiB)."""
    reset_peak()
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start, peak_mib()


def _pool(workers: int) -> ProcessPoolExecutor:
    """Fresh processes, one per task, as Airflow runs tasks: a task's peak is its own,
    not what an earlier stage left in a long-lived process."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1)


def _run(isolated: bool, fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    if not isolated:
        return _task(fn, args)
    with _pool(1) as pool:
        return pool.submit(_task, fn, args).result()


def _row(stage: str, n: int, seconds: float, peak: float, processes: int = 1) -> dict[str, Any]:
    return {
        "stage": stage,
        "records": n,
        "seconds": seconds,
        "rate": n / seconds if seconds else 0.0,
        "peak_mib": peak,
        "processes": processes,
    }


def _timed(
    rows: list[dict[str, Any]],
    stage: str,
    records: Callable[[Any], int],
    fn: Callable[..., Any],
    *args: Any,
    isolated: bool = True,
) -> Any:
    """One stage as one task (its own process when ``isolated``)."""
    value, seconds, peak = _run(isolated, fn, *args)
    rows.append(_row(stage, int(records(value)), seconds, peak))
    return value


def _compute(
    rows: list[dict[str, Any]],
    period: str,
    bench: Settings,
    *,
    months: list[str] | None = None,
    workers: int = 1,
    isolated: bool = True,
) -> dict[str, Any]:
    """The compute stage as ``quality_monthly`` runs it: a plan task, one task per patient
    shard (``workers`` at a time, as an executor's slots), and the combine task. Seconds
    are the whole stage's wall time; the peak is the largest of its processes."""
    start = time.perf_counter()
    plan, _, peak = _run(isolated, partial(stages.compute_plan, months=months), period, bench)
    peaks = [peak]
    if isolated:
        with _pool(workers) as pool:
            done = [pool.submit(_task, stages.compute_shard, (plan, k, bench)) for k in range(plan["shards"])]
            peaks += [f.result()[2] for f in done]
    else:
        peaks += [_task(stages.compute_shard, (plan, k, bench))[2] for k in range(plan["shards"])]
    summary, _, peak = _run(isolated, stages.combine_shards, plan, bench)
    peaks.append(peak)
    seconds = time.perf_counter() - start
    row = _row("compute", len(summary["periods"]) * summary["patients"], seconds, max(peaks), len(peaks))
    rows.append({**row, "shards": int(plan["shards"]), "shard_peak_mib": max(peaks[1:-1], default=0.0)})
    return summary


def _merge(rows: list[dict[str, Any]], suffix: str = "") -> list[dict[str, Any]]:
    """Sum per-month rows of the same stage into one line per stage."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row["stage"] + suffix
        m = merged.setdefault(name, {"stage": name, "records": 0, "seconds": 0.0, "peak_mib": 0.0, "processes": 0})
        m["records"] += row["records"]
        m["seconds"] += row["seconds"]
        m["peak_mib"] = max(m["peak_mib"], row["peak_mib"])
        m["processes"] += row.get("processes", 1)
    for m in merged.values():
        m["rate"] = m["records"] / m["seconds"] if m["seconds"] else 0.0
    return list(merged.values())


def _ndjson_ceiling(folder: Path) -> dict[str, Any]:
    """Plain ``orjson.loads`` over every line of a batch's NDJSON files: the parser's
    limit, which extract (parse, flatten, codings, sample validation) is compared with."""
    import orjson

    records = 0
    start = time.perf_counter()
    for path in sorted(folder.glob("*.ndjson")):
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    try:
                        orjson.loads(line)
                    except orjson.JSONDecodeError:
                        pass
                    records += 1
    seconds = time.perf_counter() - start
    return {
        "stage": "orjson.loads (ceiling)",
        "records": records,
        "seconds": seconds,
        "rate": records / seconds if seconds else 0.0,
        "peak_mib": peak_mib(),
    }


def _populations(bench: Settings, period: str) -> dict[str, dict[str, int]]:
    """Each indicator's system-wide population sizes for ``period`` (as stored)."""
    import pandas as pd

    from pipelines.load import make_engine, read_results
    from pipelines.tables import ALL_FACILITIES, OVERALL, POPULATIONS

    engine = make_engine(bench.warehouse_url)
    try:
        results = read_results(engine, periods=[period])
    finally:
        engine.dispose()
    overall = results[(results["facility_id"] == ALL_FACILITIES) & (results["stratifier"] == OVERALL[0])]
    return {
        str(r["indicator_id"]): {p: int(r[p]) for p in POPULATIONS if not pd.isna(r[p])} for _, r in overall.iterrows()
    }


def run_benchmark(
    settings: Settings,
    *,
    patients: int,
    months: int = 12,
    workdir: Path | None = None,
    console: Any = None,
    seed: int = 7,
    workers: int = 1,
    isolated: bool = True,
) -> dict[str, Any]:
    """Generate ``patients`` over ``months`` months and time each stage.

    Two figures, because operators live with the second: the **backfill** (months
    1..N-1 extracted, validated and loaded, then computed once) and the **monthly
    run** (month N into a warehouse already holding the others: extract, validate,
    load, compute with its revision months, report, export). Every task runs in a
    process of its own, as the DAG's tasks do (``isolated``; False runs them in this
    one), and compute is split as the DAG splits it: plan, one task per shard on
    ``workers`` processes at a time, combine. Each row: records handled, seconds,
    records/s, the largest resident-memory peak of its processes (Linux; elsewhere the
    process's peak so far) and how many there were. Also: the NDJSON parser's ceiling
    for the monthly batch, the largest peak of every process (this one included), and
    per indicator its population sizes and the patients/s of one vectorised evaluation
    of one compute shard, as production reads it.
    """
    import json

    import pandas as pd

    from pipelines.compute import evaluate
    from pipelines.compute.needs import needs_of
    from pipelines.generate import generate
    from pipelines.load import DeliveryReader, make_engine

    home = workdir or settings.home / "bench"
    if home.exists():
        shutil.rmtree(home)
    bench = settings.with_home(home)
    say = console.print if console is not None else (lambda *_: None)

    backfill: list[dict[str, Any]] = []
    say(f"generating {patients:,} patients x {months} months in {home}")
    summary = _timed(
        backfill,
        "generate",
        lambda s: sum(sum(f.values()) for f in s.records.values()),
        partial(generate, bench.incoming_dir, patients=patients, months=months, seed=seed, end_period=END_PERIOD),
        isolated=isolated,
    )

    def _read(path: str) -> int:
        return sum(json.loads((Path(path) / stages.META_FILE).read_text())["rows_read"].values())

    def ingest(period: str, into: list[dict[str, Any]]) -> None:
        _timed(into, "extract", _read, stages.extract_stage, period, bench, isolated=isolated)
        _timed(
            into,
            "validate",
            lambda path: sum(pd.read_parquet(Path(path) / "_reconciliation.parquet")["rows_read"]),
            stages.validate_stage,
            period,
            bench,
            isolated=isolated,
        )
        _timed(into, "load", lambda w: sum(w.values()), stages.load_stage, period, bench, isolated=isolated)

    *earlier, last = summary.batches
    per_month: list[dict[str, Any]] = []
    for period in earlier:
        say(f"  {period}: extract, validate, load")
        ingest(period, per_month)
    backfill += _merge(per_month)
    if earlier:
        say(f"  compute {len(earlier)} months")
        _compute(backfill, earlier[-1], bench, months=list(earlier), workers=workers, isolated=isolated)

    say(f"  monthly run {last}: extract, validate, load, compute, report, export")
    monthly: list[dict[str, Any]] = []
    ingest(last, monthly)
    computed = _compute(monthly, last, bench, workers=workers, isolated=isolated)
    _timed(monthly, "report", lambda _: 1, stages.report_stage, last, bench, isolated=isolated)
    _timed(
        monthly,
        "export",
        lambda e: sum(len(paths) for paths in e.values()),
        stages.export_stage,
        last,
        bench,
        isolated=isolated,
    )
    ceiling = _ndjson_ceiling(bench.incoming_dir / last)

    # Per indicator: one vectorised evaluation on the first compute shard of the month,
    # read the way compute reads it (the indicators' columns and codings only).
    indicators, valuesets = stages.indicator_catalogue(bench)
    engine = make_engine(bench.warehouse_url)
    shard = (0, int(computed["shards"]))
    try:
        data = DeliveryReader(engine, needs_of(indicators, valuesets), shard=shard).snapshot(last)
        for name in data:
            data[name]
    finally:
        engine.dispose()
    shard_patients = int(data["patients"]["patient_id"].nunique())
    populations = _populations(bench, last)
    from pipelines.errors import ValueSetError

    per_indicator: list[dict[str, Any]] = []
    for ind in indicators:
        timing: list[dict[str, Any]] = []
        try:
            _timed(timing, ind.id, lambda _: shard_patients, evaluate, ind, data, last, valuesets, isolated=False)
        except ValueSetError as exc:  # an eCQM without its VSAC value sets (CAREQI_VALUESET_DIR)
            say(f"  {ind.id} skipped: {exc}")
            continue
        per_indicator.append(
            {"indicator": ind.id, "patients_per_s": timing[0]["rate"], "populations": populations.get(ind.id, {})}
        )
    rows = backfill + monthly
    return {
        "patients": patients,
        "months": months,
        "machine": _machine(workers, isolated),
        "peak_process_mib": max(
            [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024] + [r["peak_mib"] for r in rows]
        ),
        "backfill": backfill,
        "monthly": monthly,
        "monthly_seconds": sum(r["seconds"] for r in monthly),
        "extract_ceiling": ceiling,
        "shards": shard[1],
        "shard_patients": shard_patients,
        "indicators": per_indicator,
    }


def _machine(workers: int, isolated: bool) -> dict[str, Any]:
    """What the figures were measured on, and how the tasks were run."""
    import os
    import platform

    if isolated:
        process = f"one process per task; compute shards {workers} at a time"
    else:
        process = "every task in one process; compute shards one after another"
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "process": process,
        "workers": workers,
    }


__all__ = ["END_PERIOD", "run_benchmark"]
