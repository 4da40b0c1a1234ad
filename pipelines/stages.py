"""One function per pipeline stage: the seam shared by the Airflow DAG and the CLI.

Each stage takes a reporting period and :class:`~pipelines.config.Settings`, does its
work through the rooms (extract, validate, load, compute, analyse, publish, export),
and returns a small JSON-able reference (a path, a dict of counts) - never a DataFrame -
so that Airflow's XCom carries only pointers and any stage can be rerun on its own.

Hand-over between stages goes through parquet files under
``<staging>/<period>/<stage>/``; the warehouse is written only by ``load_stage`` and
``compute_stage``. Every stage is idempotent: rerunning it for the same period
replaces what it wrote before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines import periods
from pipelines.config import Settings, load_settings
from pipelines.errors import ConfigError, ExtractError, ValidationFailed
from pipelines.periods import Month
from pipelines.tables import (
    ALL_FACILITIES,
    FINAL,
    INDICATOR_RESULTS,
    NOT_COMPUTED,
    OVERALL,
    POPULATIONS,
    PROVISIONAL,
    QUARANTINE,
    TABLES,
    empty_frame,
)

if TYPE_CHECKING:
    from pipelines.compute.model import Indicator
    from pipelines.compute.valuesets import ValueSetIndex
    from pipelines.workdays import WorkingCalendars

log = logging.getLogger(__name__)

QUARANTINE_FILE = "_quarantine.parquet"
META_FILE = "_meta.json"


def _settings(settings: Settings | None) -> Settings:
    return settings or load_settings()


def warehouse(settings: Settings) -> Any:
    """The warehouse engine for these settings (lock timeout included)."""
    from pipelines.load import make_engine

    return make_engine(settings.warehouse_url, lock_timeout_s=settings.lock_timeout_s)


def check_warehouse(settings: Settings) -> None:
    """Connect and create the schema now: a wrong URL, a stopped server or an old
    schema is reported before minutes of extraction, not after."""
    from pipelines.load import create_schema

    engine = warehouse(settings)
    try:
        create_schema(engine)
    finally:
        engine.dispose()


def delivery_fingerprint(source: Path) -> str:
    """SHA-256 over the delivered files (relative names and bytes, in sorted order; the
    ``_``/``.`` files extraction skips are left out): the same delivery gives the same
    fingerprint, so a reload can tell "same files again" from "a different delivery"."""
    digest = hashlib.sha256()
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        rel = path.name if source.is_file() else path.relative_to(source).as_posix()
        if any(part.startswith(("_", ".")) for part in Path(rel).parts):
            continue
        digest.update(rel.encode("utf-8") + b"\0")
        try:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
        except OSError as exc:
            raise ExtractError(f"cannot read {rel!r} in {source}: {exc.strerror or exc}") from None
        digest.update(b"\0")
    return digest.hexdigest()


def stage_dir(settings: Settings, period: str, stage: str) -> Path:
    return settings.staging_dir / period / stage


def batch_dir(settings: Settings, period: str) -> Path:
    """Where the monthly extract for ``period`` is expected to have arrived."""
    return settings.incoming_dir / period


#: Staged tables live for one run and are read once or twice: LZ4 writes and reads
#: faster than Parquet's default (Snappy) at about the same size.
STAGING_CODEC = "lz4"


def _write_frames(folder: Path, frames: dict[str, pd.DataFrame]) -> None:
    """One parquet file per table, two at a time: Arrow encodes and compresses without
    holding the GIL, so both cores work."""
    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        for done in [
            pool.submit(df.to_parquet, folder / f"{name}.parquet", index=False, compression=STAGING_CODEC)
            for name, df in frames.items()
        ]:
            done.result()


def _read_frame(path: Path, fallback: pd.DataFrame) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else fallback


def _read_meta(folder: Path, stage: str, period: str) -> dict[str, Any]:
    meta = folder / META_FILE
    if not meta.exists():
        raise ConfigError(f"no {stage} output for {period} under {folder}: run the {stage} stage for this period first")
    return json.loads(meta.read_text())


# --------------------------------------------------------------------------- extract
def extract_stage(period: str, settings: Settings | None = None, *, input_dir: Path | None = None) -> str:
    """Read the period's batch (FHIR NDJSON/Bundles + feedback CSVs) into staged tables."""
    from pipelines.extract import extract_batch
    from pipelines.surveys import load_surveys

    settings = _settings(settings)
    period = periods.validate_period(period)
    check_warehouse(settings)
    source = Path(input_dir) if input_dir else batch_dir(settings, period)
    if not source.is_dir():
        raise ExtractError(
            f"no input for {period}: {source} does not exist (run `careqi generate`, or point "
            "CAREQI_INCOMING_DIR / --input at the folder holding the monthly extract)"
        )
    # The delivery is hashed while it is extracted (file reads and hashing leave the GIL).
    with ThreadPoolExecutor(1) as pool:
        fingerprint = pool.submit(delivery_fingerprint, source)
        result = extract_batch(source, timezones=settings.timezones, surveys=load_surveys(settings.surveys_dir))
        digest = fingerprint.result()
    out = stage_dir(settings, period, "extract")
    _write_frames(out, result.tables)
    result.quarantine.to_parquet(out / QUARANTINE_FILE, index=False)
    meta: dict[str, Any] = {
        "period": period,
        "source": str(source),
        "fingerprint": digest,
        "rows_read": {k: int(v) for k, v in result.rows_read.items()},
        "ignored": {k: int(v) for k, v in result.ignored.items()},
        "quarantined": len(result.quarantine),
        "missing_columns": result.missing_columns,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    log.info(
        "extracted %s: %d records read, %d quarantined at extract",
        period,
        sum(meta["rows_read"].values()),
        meta["quarantined"],
    )
    return str(out)


# -------------------------------------------------------------------------- validate
def validate_stage(
    period: str, settings: Settings | None = None, *, force: bool = False, empty_tables: Sequence[str] = ()
) -> str:
    """Run the GX suites and the cross-row checks; quarantine failing rows; reconcile
    read = accepted + quarantined; then judge the delivery as a whole (the delivery
    guard, :mod:`pipelines.validate.delivery`) before anything is replaced.

    The validated output is written even when the batch is refused, so the quarantine
    can be inspected; then the stage raises. ``force`` accepts a delivery the guard or
    the fail ratio refuses; ``empty_tables`` declares tables that are truly empty this
    month (``"*"``: the whole batch). Either is recorded with the batch when loaded.
    """
    from pipelines.load import list_batches, lookup_records, read_batches
    from pipelines.validate import reconcile, validate_tables
    from pipelines.validate.delivery import DeliveryRejected, check_delivery, reference_batches

    settings = _settings(settings)
    period = periods.validate_period(period)
    unknown = sorted(set(empty_tables) - set(TABLES) - {"*"})
    if unknown:
        raise ConfigError(f"--empty names unknown table(s) {', '.join(unknown)}; tables: {', '.join(TABLES)}")
    src = stage_dir(settings, period, "extract")
    meta = _read_meta(src, "extract", period)
    tables = {name: _read_frame(src / f"{name}.parquet", empty_frame(spec)) for name, spec in TABLES.items()}
    extract_q = _read_frame(src / QUARANTINE_FILE, empty_frame(QUARANTINE))
    missing_columns = meta.get("missing_columns") or {}

    engine = warehouse(settings)
    try:
        latest = pd.Timestamp(Month.parse(period).end) + pd.Timedelta(days=settings.future_days)
        result = validate_tables(
            tables,
            settings.expectations_dir,
            fail_ratio=settings.quarantine_fail_ratio,
            parameters={"latest_plausible": latest},
            extract_quarantine=extract_q,
            rows_read=meta["rows_read"],
            missing_columns=missing_columns,
            lookup=partial(lookup_records, engine),
        )
        refs = reference_batches(period, list_batches(engine))
        history = read_batches(engine, "reconciliation", refs)
        history_profiles = read_batches(engine, "column_profiles", refs)
    finally:
        engine.dispose()
    quarantine = pd.concat([extract_q, result.quarantine], ignore_index=True)
    reconciliation = reconcile(meta["rows_read"], result.valid, quarantine)
    problems = check_delivery(
        {name: len(df) for name, df in result.valid.items()},
        result.profiles,
        history,
        history_profiles,
        missing_columns=missing_columns,
        min_share=settings.delivery_min_share,
        empty_tables=empty_tables,
    )

    out = stage_dir(settings, period, "validate")
    _write_frames(out, result.valid)
    quarantine.to_parquet(out / QUARANTINE_FILE, index=False)
    reconciliation.to_parquet(out / "_reconciliation.parquet", index=False)
    result.checks.to_parquet(out / "_checks.parquet", index=False)
    result.profiles.to_parquet(out / "_profiles.parquet", index=False)
    refused = bool(problems or result.failed_tables)
    accepted_as = ""
    if refused and force:
        accepted_as = "forced: " + "; ".join(
            [p.message for p in problems] + [f"{t} above the quarantine fail ratio" for t in result.failed_tables]
        )
    elif empty_tables:
        accepted_as = "declared empty: " + ", ".join(sorted(empty_tables))
    status = {
        "period": period,
        "failed_tables": list(result.failed_tables),
        "balanced": bool(reconciliation["balanced"].all()) if len(reconciliation) else True,
        "accepted": int(sum(len(df) for df in result.valid.values())),
        "quarantined": len(quarantine),
        "delivery_problems": [p.message for p in problems],
        "refused": refused and not force,
        "accepted_as": accepted_as,
        "fingerprint": meta.get("fingerprint"),
    }
    (out / META_FILE).write_text(json.dumps(status, indent=2, sort_keys=True))
    if not status["balanced"]:
        bad = reconciliation.loc[~reconciliation["balanced"].astype(bool), "table_name"].tolist()
        raise ValidationFailed(f"reconciliation does not balance for {period}: {', '.join(bad)}")
    if force and refused:
        log.warning("delivery %s accepted with --force: %s", period, accepted_as)
    elif problems:
        raise DeliveryRejected(period, problems)
    elif result.failed_tables:
        shares = []
        for name in result.failed_tables:
            row = reconciliation.loc[reconciliation["table_name"] == name]
            if len(row):
                read = int(row["rows_read"].iloc[0])
                q = int(row["rows_quarantined"].iloc[0])
                shares.append(f"{name} {q}/{read} rows quarantined")
            else:
                shares.append(name)
        raise ValidationFailed(
            f"validation failed for {period}, nothing replaced: {'; '.join(shares)} (more than "
            f"{settings.quarantine_fail_ratio:.0%} of the table; see {out / QUARANTINE_FILE}; "
            "rerun with --force to load it anyway)"
        )
    log.info("validated %s: %d accepted, %d quarantined", period, status["accepted"], status["quarantined"])
    return str(out)


# ------------------------------------------------------------------------------ load
def load_stage(period: str, settings: Settings | None = None) -> dict[str, int]:
    """Replace the period's batch in the warehouse with the validated rows."""
    from pipelines.load import create_schema, replace_batch

    settings = _settings(settings)
    period = periods.validate_period(period)
    src = stage_dir(settings, period, "validate")
    status = _read_meta(src, "validate", period)
    if status.get("refused"):
        raise ValidationFailed(
            f"the delivery for {period} was refused by validation ({'; '.join(status.get('delivery_problems') or [])}"
            f"{'; failed tables: ' + ', '.join(status['failed_tables']) if status.get('failed_tables') else ''}); "
            "nothing was replaced: fix it and rerun, or rerun with --force"
        )
    tables = {name: _read_frame(src / f"{name}.parquet", empty_frame(spec)) for name, spec in TABLES.items()}
    engine = warehouse(settings)
    try:
        create_schema(engine)
        written = replace_batch(
            engine,
            period,
            tables=tables,
            quarantine=pd.read_parquet(src / QUARANTINE_FILE),
            reconciliation=pd.read_parquet(src / "_reconciliation.parquet"),
            checks=pd.read_parquet(src / "_checks.parquet"),
            profiles=pd.read_parquet(src / "_profiles.parquet") if (src / "_profiles.parquet").exists() else None,
            fingerprint=status.get("fingerprint"),
            accepted_as=str(status.get("accepted_as") or ""),
        )
    finally:
        engine.dispose()
    log.info("loaded batch %s: %d rows", period, sum(written.values()))
    return {k: int(v) for k, v in written.items()}


# --------------------------------------------------------------------------- compute
def indicator_catalogue(settings: Settings) -> tuple[list[Indicator], ValueSetIndex]:
    """The indicator definitions and the value sets they reference."""
    from pipelines.compute import load_indicators, load_valuesets

    extra = list(settings.valueset_dirs)
    indicators = load_indicators(settings.indicators_dir, extra)
    valuesets = load_valuesets([settings.indicators_dir / "valuesets", *extra])
    return indicators, valuesets


def compute_targets(period: str, loaded: set[str], *, revision_months: int, history_months: int = 0) -> list[str]:
    """The months a run for ``period`` (re)computes, oldest first.

    Loading batch P can complete the previous ``revision_months`` months (a readmission
    delivered with next month's discharges), so those are recomputed too; with
    ``history_months`` the whole trend window is. Months with no loaded batch are
    skipped, except ``period`` itself.
    """
    depth = max(revision_months, history_months - 1, 0)
    candidates = [periods.shift(period, -k) for k in range(depth, -1, -1)]
    return [p for p in candidates if p in loaded or p == period]


def not_computed_row(indicator: Any, period: str, reason: str) -> pd.DataFrame:
    """The one result row an indicator that could not be evaluated leaves for a month:
    system-wide, no counts, no score, state ``not_computed`` with the reason. Reports and
    exports show "not computed", never an earlier figure."""
    row: dict[str, Any] = {
        "indicator_id": indicator.id,
        "period": period,
        "facility_id": ALL_FACILITIES,
        "stratifier": OVERALL[0],
        "stratum": OVERALL[1],
        **dict.fromkeys(POPULATIONS, 0),
        "numerator_events": pd.NA,
        "denominator_value": pd.NA,
        "measure_score": pd.NA,
        "ci_low": pd.NA,
        "ci_high": pd.NA,
        "target": indicator.target,
        "status": pd.NA,
        "censored": 0,
        "state": NOT_COMPUTED,
        "state_reason": reason,
    }
    frame = pd.DataFrame([row])
    return frame.astype(INDICATOR_RESULTS.dtypes)[INDICATOR_RESULTS.column_names]


def _subjects_available(
    indicators: list[Any],
    data: Mapping[str, pd.DataFrame],
    period: str,
    valuesets: Any,
    data_end: pd.Timestamp | None,
    calendars: WorkingCalendars,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Subject rows of every indicator whose value sets are available, and why each
    other one is not computed.

    eCQM indicators name VSAC value sets that the project does not ship (users supply
    them through CAREQI_VALUESET_DIR). Without them such an indicator is stored as not
    computed, with the reason and the missing canonicals, instead of failing the whole
    monthly run (and instead of keeping its previous figure).
    """
    from pipelines.compute import subjects_of
    from pipelines.errors import MissingValueSets

    parts = [subjects_of([], data, period, valuesets)]
    skipped: dict[str, str] = {}
    for ind in indicators:
        try:
            parts.append(subjects_of([ind], data, period, valuesets, data_end=data_end, calendars=calendars))
        except MissingValueSets as exc:
            first = f", first {exc.missing[0]}" if exc.missing else ""
            skipped[ind.id] = f"value sets not supplied (set CAREQI_VALUESET_DIR): {len(exc.missing)} missing{first}"
            log.warning("%s not computed for %s: %s", ind.id, period, exc)
    return pd.concat(parts, ignore_index=True), skipped


def open_to_revision(period: str, loaded: Iterable[str], revision_months: int) -> str | None:
    """Why ``period`` is still provisional (None once final): the batch that closes
    its revision window has not been loaded yet."""
    closing = periods.shift(period, revision_months)
    if revision_months and closing not in set(loaded):
        return f"open to revision until batch {closing} is loaded"
    return None


def data_end(period: str, loaded: Iterable[str], revision_months: int) -> pd.Timestamp:
    """When the data a month is computed from ends: the end of the latest loaded batch
    within its horizon (``period`` + ``revision_months``). A deadline after it has not
    passed yet."""
    horizon = periods.shift(period, revision_months)
    latest = max([b for b in loaded if b <= horizon] or [period])
    return pd.Timestamp(Month.parse(latest).end)


def mark_provisional(results: pd.DataFrame, reason: str) -> pd.DataFrame:
    """Results of a month open to revision: provisional, not graded."""
    out = results.copy()
    final = (out["state"] == FINAL).to_numpy(dtype=bool, na_value=False)
    out.loc[final, "state"] = PROVISIONAL
    waiting = (out["state"] == PROVISIONAL).to_numpy(dtype=bool, na_value=False)
    out["state_reason"] = out["state_reason"].astype("string")
    prior = out.loc[waiting, "state_reason"]
    out.loc[waiting, "state_reason"] = [reason if pd.isna(p) else f"{reason}; {p}" for p in prior]
    out.loc[waiting, "status"] = pd.NA
    return out


def _plan_id(engine: Any, targets: list[str], shards: int) -> str:
    """What a compute plan was made for: its months, its shard count and every loaded
    batch (with when it was loaded), so a shard computed before a reload never combines
    with one computed after it."""
    from pipelines.load import batch_records

    batches = batch_records(engine)[["batch", "loaded_at", "fingerprint"]].astype(str).to_numpy().tolist()
    return hashlib.sha256(json.dumps([targets, shards, batches]).encode()).hexdigest()[:16]


def compute_plan(
    period: str,
    settings: Settings | None = None,
    *,
    history: bool = False,
    months: list[str] | None = None,
    shards: int | None = None,
) -> dict[str, Any]:
    """Plan the compute of ``period``: the months it (re)computes and the patient shards
    they are evaluated in (``shards``, default sized by ``CAREQI_SHARD_PATIENTS``).

    Results for month M are always computed from the batches up to
    ``M + revision_months`` (never from anything loaded later), so rerunning any
    period reproduces the same warehouse. The plan is a small JSON document: the DAG
    maps one task per shard over it and combines them; it also clears the period's
    earlier shard outputs.
    """
    from pipelines.load import count_patients, create_schema, list_batches
    from pipelines.load.shards import shard_count

    settings = _settings(settings)
    period = periods.validate_period(period)
    if shards is not None and shards < 1:
        raise ConfigError(f"shards must be at least 1, got {shards}")
    engine = warehouse(settings)
    try:
        create_schema(engine)
        loaded = list_batches(engine)
        if months is not None:  # a backfill: every loaded month of the range, once each
            targets = sorted({m for m in months if m in loaded} | {period})
        else:
            targets = compute_targets(
                period,
                set(loaded),
                revision_months=settings.revision_months,
                history_months=settings.report_months if history else 0,
            )
        horizon = periods.shift(targets[-1], settings.revision_months)
        patients = count_patients(engine, horizon)
        count = shards or shard_count(patients, settings.shard_patients)
        plan = {
            "period": period,
            "targets": targets,
            "loaded": loaded,
            "horizon": horizon,
            "patients": patients,
            "shards": count,
            "id": _plan_id(engine, targets, count),
        }
    finally:
        engine.dispose()
    folder = stage_dir(settings, period, "compute")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "_plan.json").write_text(json.dumps(plan, indent=2))
    log.info("compute plan for %s: %d month(s), %d patients in %d shard(s)", period, len(targets), patients, count)
    return plan


def _shard_dir(settings: Settings, plan: Mapping[str, Any], shard: int) -> Path:
    return stage_dir(settings, plan["period"], "compute") / f"shard-{shard:04d}-of-{plan['shards']:04d}"


def compute_shard(plan: Mapping[str, Any], shard: int, settings: Settings | None = None) -> dict[str, Any]:
    """Evaluate every indicator on one patient shard for each month of ``plan``; the
    subject rows go to ``<staging>/<period>/compute/shard-K-of-N/`` (written whole or
    not at all), for :func:`combine_shards`. Memory is bounded by the shard's patients."""
    from pipelines.compute.needs import needs_of
    from pipelines.load import DeliveryReader

    settings = _settings(settings)
    count = int(plan["shards"])
    if not 0 <= shard < count:
        raise ConfigError(f"shard {shard} is not in the plan's {count} shard(s)")
    indicators, valuesets = indicator_catalogue(settings)
    loaded = list(plan["loaded"])
    out = _shard_dir(settings, plan, shard)
    partial_dir = out.with_name(out.name + ".partial")
    if partial_dir.exists():
        shutil.rmtree(partial_dir)
    partial_dir.mkdir(parents=True)
    skipped: dict[str, dict[str, str]] = {}
    rows = 0
    engine = warehouse(settings)
    try:
        reader = DeliveryReader(
            engine, needs_of(indicators, valuesets), upto_batch=plan["horizon"], shard=(shard, count)
        )
        for target in plan["targets"]:
            view = reader.snapshot(periods.shift(target, settings.revision_months))
            end = data_end(target, loaded, settings.revision_months)
            subjects, skipped[target] = _subjects_available(
                indicators, view, target, valuesets, end, settings.working_calendars
            )
            subjects.to_parquet(partial_dir / f"{target}.parquet", index=False)
            rows += len(subjects)
    finally:
        engine.dispose()
    (partial_dir / META_FILE).write_text(json.dumps({"plan": plan["id"], "shard": shard, "not_computed": skipped}))
    if out.exists():
        shutil.rmtree(out)
    partial_dir.rename(out)
    log.info("computed shard %d of %d for %s: %d subject rows", shard + 1, count, ", ".join(plan["targets"]), rows)
    return {"shard": shard, "subjects": rows}


def combine_shards(plan: Mapping[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Combine every shard of ``plan`` exactly and store each month's results as a set:
    subject rows are concatenated in one canonical order and aggregated once (counts
    add; medians come from the combined per-subject values), so the results do not
    depend on the shard count. A month open to revision is stored provisional."""
    from pipelines.compute import in_subject_order, results_of
    from pipelines.load import replace_results

    settings = _settings(settings)
    indicators, _ = indicator_catalogue(settings)
    count = int(plan["shards"])
    metas = []
    for shard in range(count):
        meta_path = _shard_dir(settings, plan, shard) / META_FILE
        if not meta_path.exists():
            raise ConfigError(f"compute shard {shard} of {count} for {plan['period']} has not run: run it first")
        meta = json.loads(meta_path.read_text())
        if meta.get("plan") != plan["id"]:
            raise ConfigError(f"compute shard {shard} for {plan['period']} belongs to another plan: rerun compute")
        metas.append(meta)
    loaded = list(plan["loaded"])
    summary: dict[str, Any] = {
        "period": plan["period"],
        "indicators": len(indicators),
        "periods": list(plan["targets"]),
        "shards": count,
        "patients": plan["patients"],
    }
    not_computed = summary.setdefault("not_computed", {})
    engine = warehouse(settings)
    try:
        if _plan_id(engine, list(plan["targets"]), count) != plan["id"]:
            raise ConfigError(f"the warehouse changed since compute was planned for {plan['period']}: rerun compute")
        for target in plan["targets"]:
            frames = [pd.read_parquet(_shard_dir(settings, plan, k) / f"{target}.parquet") for k in range(count)]
            subjects = in_subject_order(pd.concat(frames, ignore_index=True))
            skipped: dict[str, str] = {}
            for meta in metas:
                skipped.update(meta["not_computed"].get(target, {}))
            computed = [ind for ind in indicators if ind.id not in skipped]
            results = results_of(computed, subjects, target)
            missing = [not_computed_row(ind, target, skipped[ind.id]) for ind in indicators if ind.id in skipped]
            results = pd.concat([results, *missing], ignore_index=True) if missing else results
            reason = open_to_revision(target, loaded, settings.revision_months)
            if reason is not None:
                results = mark_provisional(results, reason)
            replace_results(engine, target, subjects=subjects, results=results)
            not_computed.update(skipped)
            if target == plan["period"]:
                summary["subjects"] = len(subjects)
                summary["results"] = len(results)
                summary["provisional"] = reason
    finally:
        engine.dispose()
    summary["computed"] = len(indicators) - len(not_computed)
    log.info(
        "computed %d of %d indicators for %s in %d shard(s) (%d not computed)",
        summary["computed"],
        len(indicators),
        ", ".join(plan["targets"]),
        count,
        len(not_computed),
    )
    return summary


def compute_stage(
    period: str,
    settings: Settings | None = None,
    *,
    history: bool = False,
    months: list[str] | None = None,
    shards: int | None = None,
) -> dict[str, Any]:
    """Evaluate every indicator for ``period`` and revise the months it can complete, in
    one process: plan, each shard in turn, combine (the DAG runs the shards as parallel
    tasks instead). A month becomes final once ``revision_months`` later batches have
    arrived; until then its results are ``provisional``."""
    settings = _settings(settings)
    plan = compute_plan(period, settings, history=history, months=months, shards=shards)
    for shard in range(plan["shards"]):
        compute_shard(plan, shard, settings)
    return combine_shards(plan, settings)


# ------------------------------------------------------------------- report / export
def _report_inputs(period: str, settings: Settings) -> dict[str, Any]:
    """What the report of ``period`` is built from (``build_report_context``'s inputs)."""
    from pipelines.load import DeliveryReader, Needs, read_batch, read_results, read_subjects

    indicators, valuesets = indicator_catalogue(settings)
    engine = warehouse(settings)
    try:
        results = read_results(engine, periods=periods.window(period, settings.report_months))
        if not (results["period"] == period).any():
            raise ConfigError(f"no indicator results for {period}: run the compute stage for this period first")
        names = Needs(
            {
                "organizations": frozenset({"name"}),
                "locations": frozenset({"name", "type_code", "organization_id", "part_of"}),
                "survey_responses": None,
                "complaints": None,
            }
        )
        snapshot = DeliveryReader(engine, names).snapshot(period)
        orgs, locs = snapshot["organizations"], snapshot["locations"]
        feedback = _feedback_inputs(period, settings, engine, snapshot)
        computed = set(results.loc[results["period"] == period, "indicator_id"])
        return {
            "indicators": [i for i in indicators if i.id in computed],
            "results": results,
            "subjects": read_subjects(engine, period),
            "reconciliation": read_batch(engine, "reconciliation", period),
            "checks": read_batch(engine, "validation_checks", period),
            "quarantine": read_batch(engine, "quarantine", period),
            "facilities": dict(zip(orgs["organization_id"], orgs["name"].fillna(orgs["organization_id"]), strict=True)),
            "wards": dict(zip(locs["location_id"], locs["name"].fillna(locs["location_id"]), strict=True)),
            "feedback": feedback,
            "organizations": orgs,
            "locations": locs,
            "valuesets": valuesets,
        }
    finally:
        engine.dispose()


def _committee_inputs(period: str, settings: Settings, inputs: Mapping[str, Any], run_id: str) -> Any:
    """The committee's records and the run's provenance (``CommitteeInputs``)."""
    from pipelines.analyse.case_mix import case_mix_by_shard
    from pipelines.compute.needs import indicator_columns
    from pipelines.load import DeliveryReader, Needs, count_patients, read_batch, read_check_history, read_subjects
    from pipelines.load.governance import read_actions, read_phases
    from pipelines.load.shards import shard_count
    from pipelines.organisation import build_organisation, read_config
    from pipelines.provenance import code_version, valueset_versions
    from pipelines.publish.context import CommitteeInputs, RiskInputs
    from pipelines.publish.risk_view import scored

    indicators, valuesets = inputs["indicators"], inputs["valuesets"]
    engine = warehouse(settings)
    try:
        history = read_check_history(engine, period)
        last_run = history[history["loaded_at"] == history["loaded_at"].max()] if len(history) else None
        previous = periods.shift(period, -1)
        prev_checks = read_batch(engine, "validation_checks", previous)
        risky = [i for i in indicators if i.risk_adjustment is not None]
        risk: dict[str, Any] = {}
        if risky:
            # Case mix reads every stay's patient and diagnoses: one patient shard at a
            # time, as compute does, so the report's memory does not grow with the system.
            needs = Needs({
                "encounters": frozenset({"patient_id", "start_at", "end_at", "priority"}),
                "patients": frozenset({"birth_date", "gender"}),
                "conditions": frozenset({"patient_id", "code", "onset_at", "recorded_at"}),
            })  # fmt: skip
            count = shard_count(count_patients(engine, period), settings.shard_patients)
            sets: dict[tuple[str, str], pd.DataFrame] = {}
            spans: dict[str, list[str]] = {}
            for ind in risky:
                assert ind.risk_adjustment is not None
                months = [periods.shift(period, -k) for k in range(ind.risk_adjustment.reference_months, 0, -1)]
                ref = pd.concat([read_subjects(engine, m, ind.id) for m in months], ignore_index=True)
                spans[ind.id] = sorted(set(ref["period"].astype(str))) if len(ref) else []
                sets[(ind.id, "reference")] = ref
                sets[(ind.id, "current")] = inputs["subjects"][inputs["subjects"]["indicator_id"] == ind.id]
            shards = (
                DeliveryReader(engine, needs, upto_batch=period, shard=(k, count)).snapshot(period)
                for k in range(count)
            )
            mix = case_mix_by_shard(sets, shards)
            factors = {
                key: scored(s).merge(mix[key].drop(columns="service"), on="subject_id", how="left")
                for key, s in sets.items()
            }
            for ind in risky:
                risk[ind.id] = RiskInputs(factors[(ind.id, "reference")], factors[(ind.id, "current")], spans[ind.id])
        phases, actions = read_phases(engine), read_actions(engine)
    finally:
        engine.dispose()
    feeding = frozenset(t for ind in indicators for t in indicator_columns(ind))
    return CommitteeInputs(
        phases=phases,
        actions=actions,
        organisation=build_organisation(
            read_config(settings.organisation_file), inputs["organizations"], inputs["locations"]
        ),  # fmt: skip
        risk=risk,
        checks_last_run=last_run,
        checks_previous_month=prev_checks if len(prev_checks) else None,
        feeding_tables=feeding,
        gate_mode=settings.publication_gate,
        gate_max_pct=settings.publication_gate_pct,
        provenance={
            "run_id": run_id,
            "code_version": code_version(),
            "valuesets": valueset_versions(indicators, valuesets),
        },
    )


def _feedback_inputs(period: str, settings: Settings, engine: Any, snapshot: Mapping[str, pd.DataFrame]) -> Any:
    """The patient-experience part's inputs: the window's survey returns, the complaints
    register as the month's batch left it, and the themes and sentiment of their texts
    (stored labels of the current model where the daily run made them, the rest
    classified now, in memory: the report stage writes nothing to the warehouse)."""
    from pipelines.analyse.text.classifier import classify, model_fingerprint
    from pipelines.analyse.text.themes import load_taxonomy
    from pipelines.load.feedback import read_labels
    from pipelines.publish.experience import FeedbackData, texts_of
    from pipelines.surveys import load_surveys

    first = pd.Timestamp(Month.parse(periods.window(period, settings.report_months)[0]).start)
    end = pd.Timestamp(Month.parse(period).end)
    surveys = snapshot["survey_responses"]
    completed = pd.to_datetime(surveys["completed_on"])
    surveys = surveys[(completed >= first) & (completed < end)].reset_index(drop=True)
    complaints = snapshot["complaints"]
    complaints = complaints[pd.to_datetime(complaints["received_at"]) < end].reset_index(drop=True)
    texts = texts_of(surveys, complaints)
    texts = texts[(texts["written_on"] >= first) & (texts["written_on"] < end)]
    model = model_fingerprint()
    stored = read_labels(engine)
    stored = stored[stored["model"] == model][["source_table", "record_id", "themes", "sentiment"]]
    known = texts.merge(stored, on=["source_table", "record_id"], how="inner")
    todo = texts.merge(stored[["source_table", "record_id"]], on=["source_table", "record_id"], how="left",
                       indicator=True)  # fmt: skip
    todo = todo[todo["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)
    if len(todo):
        fresh = classify(todo["text"].tolist())
        todo = todo.assign(themes=fresh["themes"].to_numpy(), sentiment=fresh["sentiment"].to_numpy())
    labels = pd.concat([known, todo], ignore_index=True)[["source_table", "record_id", "themes", "sentiment"]]
    taxonomy = load_taxonomy()
    return FeedbackData(
        surveys=surveys,
        complaints=complaints,
        patient_days=pd.DataFrame(),
        labels=labels,
        definitions=load_surveys(settings.surveys_dir),
        theme_labels={t.id: t.label for t in taxonomy.themes},
    )


def report_stage(
    period: str, settings: Settings | None = None, *, generated_at: str | None = None, run_id: str | None = None
) -> str:
    """Render the monthly quality-committee report in each configured language (HTML,
    and PDF unless ``CAREQI_REPORT_PDF`` is off) and the restricted case appendix;
    returns the first language's HTML path. The report folder is published as a whole
    (:mod:`pipelines.outputs`): a failure leaves the previous report in place. The
    appendix goes to its own folder (``restricted_dir``), never beside the report."""
    from pipelines.load.governance import pseudonym_key
    from pipelines.outputs import publish_folder, write_file
    from pipelines.publish import build_report_context, render_report
    from pipelines.publish.appendix import appendix_sections
    from pipelines.publish.context import unit_names
    from pipelines.publish.html import render_html
    from pipelines.publish.i18n import using

    settings = _settings(settings)
    period = periods.validate_period(period)
    when = generated_at or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    run = run_id or f"cli-{period}-{when.replace(' ', 'T').replace(':', '')}"
    inputs = _report_inputs(period, settings)
    committee = _committee_inputs(period, settings, inputs, run)
    base = {k: v for k, v in inputs.items() if k not in ("organizations", "locations", "valuesets")}
    contexts = []
    for lang in settings.report_languages:
        with using(lang):
            contexts.append(build_report_context(period=period, **base, generated_at=when,
                                                 months=settings.report_months, committee=committee))  # fmt: skip
    target = settings.reports_dir / period
    first = ""
    with publish_folder(target, f"the report for {period}") as folder:
        for lang, ctx in zip(settings.report_languages, contexts, strict=True):
            stem = "index" if lang == settings.report_languages[0] else f"index.{lang}"
            written = render_report(ctx, settings.templates_dir, folder, stem=stem, pdf=settings.report_pdf,
                                    font=settings.report_font)  # fmt: skip
            first = first or written.name
    engine = warehouse(settings)
    try:
        _, secret = pseudonym_key(engine)
    finally:
        engine.dispose()
    by_id = {i.id: i for i in inputs["indicators"]}
    names = unit_names(inputs["facilities"], inputs["wards"], committee.organisation)
    with publish_folder(settings.restricted_dir / period, f"the case appendix for {period}") as folder:
        for lang, ctx in zip(settings.report_languages, contexts, strict=True):
            with using(lang):
                parts = appendix_sections(ctx["indicators"], by_id, inputs["subjects"], period, secret, names)
                page = {**ctx, "appendix": parts}
                html = render_html(page, settings.templates_dir, template="restricted_appendix.html.j2", charts=False,
                                   font=settings.report_font)  # fmt: skip
            write_file(folder / f"case_appendix.{lang}.html", html.encode("utf-8"))
    path = target / first
    log.info("report for %s written to %s (languages: %s)", period, path, ", ".join(settings.report_languages))
    return str(path)


def export_stage(period: str, settings: Settings | None = None, *, run_id: str | None = None) -> dict[str, list[str]]:
    """The monthly job's export step: the month's regulator package
    (:func:`pipelines.packaging.export_package`; quarters and years are packaged by
    ``careqi export package`` and the ``regulator_export`` DAG)."""
    from pipelines.packaging import export_package

    return export_package(periods.validate_period(period), _settings(settings), run_id=run_id)


def retire_stage(indicator_id: str, settings: Settings | None = None) -> dict[str, int]:
    """Archive every stored result of a withdrawn indicator (``careqi indicators retire``).

    Only an indicator whose definition is gone can be retired: a defined one would be
    computed again by the next run.
    """
    from pipelines.load import retire_indicator, stored_indicator_ids

    settings = _settings(settings)
    indicators, _ = indicator_catalogue(settings)
    if any(i.id == indicator_id for i in indicators):
        raise ConfigError(
            f"indicator {indicator_id!r} is still defined in {settings.indicators_dir}; remove its file first, "
            "or the next run computes it again"
        )
    engine = warehouse(settings)
    try:
        if indicator_id not in stored_indicator_ids(engine):
            raise ConfigError(f"the warehouse holds no results for indicator {indicator_id!r}")
        moved = retire_indicator(engine, indicator_id)
    finally:
        engine.dispose()
    log.info("retired %s: %s", indicator_id, moved)
    return moved


#: A step of the monthly job: (name, function of the period's run).
Step = tuple[str, Callable[[], Any]]


def period_steps(
    period: str,
    settings: Settings,
    *,
    input_dir: Path | None = None,
    history: bool = False,
    report: bool = True,
    force: bool = False,
    empty_tables: Sequence[str] = (),
) -> list[Step]:
    """The monthly job as named steps, in order: the one sequence the CLI (``run``),
    the DAG's task order and the tests follow."""
    steps: list[Step] = [
        ("extract", lambda: extract_stage(period, settings, input_dir=input_dir)),
        ("validate", lambda: validate_stage(period, settings, force=force, empty_tables=empty_tables)),
        ("load", lambda: load_stage(period, settings)),
        ("compute", lambda: compute_stage(period, settings, history=history)),
    ]
    if report:
        steps += [
            ("report", lambda: report_stage(period, settings)),
            ("export", lambda: export_stage(period, settings)),
        ]
    return steps


def run_period(
    period: str,
    settings: Settings | None = None,
    *,
    input_dir: Path | None = None,
    history: bool = False,
    report: bool = True,
    force: bool = False,
    empty_tables: Sequence[str] = (),
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The whole monthly job in one process (what the DAG does, without a scheduler).
    ``on_step`` is told each step's name before it runs (progress display)."""
    settings = _settings(settings)
    period = periods.validate_period(period)
    outcome: dict[str, Any] = {"period": period}
    for name, step in period_steps(
        period, settings, input_dir=input_dir, history=history, report=report, force=force, empty_tables=empty_tables
    ):
        if on_step is not None:
            on_step(name)
        outcome[name] = step()
    return outcome


def backfill(
    first: str,
    last: str,
    settings: Settings | None = None,
    *,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Load a range of months in order, then compute each month once from its own batch
    horizon (the same results as month-by-month runs, without recomputing every month
    three times)."""
    settings = _settings(settings)
    months = periods.span(periods.validate_period(first), periods.validate_period(last))
    for month in months:
        for name, step in period_steps(month, settings, report=False)[:3]:
            if on_step is not None:
                on_step(f"{month}: {name}")
            step()
    if on_step is not None:
        on_step(f"computing {len(months)} months")
    return {"months": months, "compute": compute_stage(months[-1], settings, months=months)}


__all__ = [
    "backfill",
    "batch_dir",
    "check_warehouse",
    "combine_shards",
    "compute_plan",
    "compute_shard",
    "compute_stage",
    "delivery_fingerprint",
    "export_stage",
    "extract_stage",
    "indicator_catalogue",
    "load_stage",
    "period_steps",
    "report_stage",
    "retire_stage",
    "run_period",
    "stage_dir",
    "validate_stage",
    "warehouse",
]
