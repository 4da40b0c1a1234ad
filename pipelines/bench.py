"""Throughput benchmark: every stage on N synthetic patients, timed.

Performance targets live here, not in timed unit tests: a laptop under load would make
a timed test flaky, while this prints figures a person can compare between commits.
It runs in its own scratch home (warehouse, staging, reports) so it never touches the
user's data.
"""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pipelines import stages
from pipelines.config import Settings

END_PERIOD = "2026-10"


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak() -> bool:
    """Start a new high-water mark (Linux: writing 5 to clear_refs resets VmHWM), so each
    stage reports its own peak rather than the largest of every stage before it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    """The resident-memory high-water mark since the last reset (VmHWM), else the
    process's lifetime peak (ru_maxrss, KiB on Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(rows: list[dict[str, Any]], stage: str, records: Callable[[Any], int], fn: Callable[[], Any]) -> Any:
    _reset_peak()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    n = records(value)
    rows.append(
        {
            "stage": stage,
            "records": n,
            "seconds": seconds,
            "rate": n / seconds if seconds else 0.0,
            "peak_mib": _peak_mib(),
        }
    )
    return value


def _merge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sum per-month rows of the same stage into one line per stage."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        m = merged.setdefault(row["stage"], {"stage": row["stage"], "records": 0, "seconds": 0.0, "peak_mib": 0.0})
        m["records"] += row["records"]
        m["seconds"] += row["seconds"]
        m["peak_mib"] = max(m["peak_mib"], row["peak_mib"])
    for m in merged.values():
        m["rate"] = m["records"] / m["seconds"] if m["seconds"] else 0.0
    return list(merged.values())


def run_benchmark(
    settings: Settings,
    *,
    patients: int,
    months: int = 12,
    workdir: Path | None = None,
    console: Any = None,
    seed: int = 7,
) -> list[dict[str, Any]]:
    """Generate ``patients`` over ``months`` months and time each stage.

    Returns one row per stage: records handled, seconds, records/s and the peak
    resident memory during the stage (on Linux; elsewhere the process's peak so far).
    Per-indicator rows (``indicator:<id>``) report patients/s of the vectorised
    evaluation over the whole population.
    """
    import json

    import pandas as pd

    from pipelines.compute import evaluate
    from pipelines.generate import generate
    from pipelines.load import DeliveryReader, Needs, make_engine

    home = workdir or settings.home / "bench"
    if home.exists():
        shutil.rmtree(home)
    bench = settings.with_home(home)
    say = console.print if console is not None else (lambda *_: None)

    rows: list[dict[str, Any]] = []
    say(f"generating {patients:,} patients x {months} months in {home}")
    summary = _timed(
        rows,
        "generate",
        lambda s: sum(sum(f.values()) for f in s.records.values()),
        lambda: generate(bench.incoming_dir, patients=patients, months=months, seed=seed, end_period=END_PERIOD),
    )
    per_month: list[dict[str, Any]] = []
    for period in summary.batches:
        say(f"  {period}: extract, validate, load")

        def _read(path: str) -> int:
            return sum(json.loads((Path(path) / stages.META_FILE).read_text())["rows_read"].values())

        _timed(per_month, "extract", _read, partial(stages.extract_stage, period, bench))
        _timed(
            per_month,
            "validate",
            lambda path: sum(pd.read_parquet(Path(path) / "_reconciliation.parquet")["rows_read"]),
            partial(stages.validate_stage, period, bench),
        )
        _timed(per_month, "load", lambda w: sum(w.values()), partial(stages.load_stage, period, bench))
    rows += _merge(per_month)

    say("  compute (every month), report, export")
    last = summary.batches[-1]
    _timed(
        rows,
        "compute",
        lambda s: len(s["periods"]) * patients,
        lambda: stages.compute_stage(last, bench, history=True),
    )
    _timed(rows, "report", lambda _: 1, lambda: stages.report_stage(last, bench))
    _timed(rows, "export", lambda e: sum(len(paths) for paths in e.values()), lambda: stages.export_stage(last, bench))

    # Per indicator: one vectorised evaluation over the whole warehouse for one month,
    # on one snapshot read once (every table, every column) before any is timed.
    indicators, valuesets = stages.indicator_catalogue(bench)
    engine = make_engine(bench.warehouse_url)
    try:
        data = DeliveryReader(engine, Needs.everything()).snapshot(last)
        for name in data:
            data[name]
    finally:
        engine.dispose()
    n_patients = int(data["patients"]["patient_id"].nunique())
    from pipelines.errors import ValueSetError

    for ind in indicators:
        try:
            _timed(rows, f"indicator:{ind.id}", lambda _: n_patients, partial(evaluate, ind, data, last, valuesets))
        except ValueSetError as exc:  # an eCQM without its VSAC value sets (CAREQI_VALUESET_DIR)
            say(f"  {ind.id} skipped: {exc}")
    return rows


__all__ = ["END_PERIOD", "run_benchmark"]
