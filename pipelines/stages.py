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

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import periods
from pipelines.config import Settings, load_settings
from pipelines.errors import ConfigError, ExtractError, ValidationFailed
from pipelines.tables import QUARANTINE, TABLES, empty_frame

log = logging.getLogger(__name__)

QUARANTINE_FILE = "_quarantine.parquet"
META_FILE = "_meta.json"


def _settings(settings: Settings | None) -> Settings:
    return settings or load_settings()


def stage_dir(settings: Settings, period: str, stage: str) -> Path:
    return settings.staging_dir / period / stage


def batch_dir(settings: Settings, period: str) -> Path:
    """Where the monthly extract for ``period`` is expected to have arrived."""
    return settings.incoming_dir / period


def _write_frames(folder: Path, frames: dict[str, pd.DataFrame]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        df.to_parquet(folder / f"{name}.parquet", index=False)


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

    settings = _settings(settings)
    period = periods.validate_period(period)
    source = Path(input_dir) if input_dir else batch_dir(settings, period)
    if not source.is_dir():
        raise ExtractError(
            f"no input for {period}: {source} does not exist (run `careqi generate`, or point "
            "CAREQI_INCOMING_DIR / --input at the folder holding the monthly extract)"
        )
    result = extract_batch(source)
    out = stage_dir(settings, period, "extract")
    _write_frames(out, result.tables)
    result.quarantine.to_parquet(out / QUARANTINE_FILE, index=False)
    meta = {
        "period": period,
        "source": str(source),
        "rows_read": {k: int(v) for k, v in result.rows_read.items()},
        "ignored": {k: int(v) for k, v in result.ignored.items()},
        "quarantined": len(result.quarantine),
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
def validate_stage(period: str, settings: Settings | None = None) -> str:
    """Run the GX suites; quarantine failing rows; reconcile read = accepted + quarantined.

    The validated output is written even when a table fails beyond the threshold, so
    the quarantine can be inspected; then the stage raises ValidationFailed.
    """
    from pipelines.validate import reconcile, validate_tables

    settings = _settings(settings)
    period = periods.validate_period(period)
    src = stage_dir(settings, period, "extract")
    meta = _read_meta(src, "extract", period)
    tables = {name: _read_frame(src / f"{name}.parquet", empty_frame(spec)) for name, spec in TABLES.items()}
    extract_q = _read_frame(src / QUARANTINE_FILE, empty_frame(QUARANTINE))

    result = validate_tables(tables, settings.expectations_dir, fail_ratio=settings.quarantine_fail_ratio)
    quarantine = pd.concat([extract_q, result.quarantine], ignore_index=True)
    reconciliation = reconcile(meta["rows_read"], result.valid, quarantine)

    out = stage_dir(settings, period, "validate")
    _write_frames(out, result.valid)
    quarantine.to_parquet(out / QUARANTINE_FILE, index=False)
    reconciliation.to_parquet(out / "_reconciliation.parquet", index=False)
    result.checks.to_parquet(out / "_checks.parquet", index=False)
    status = {
        "period": period,
        "failed_tables": list(result.failed_tables),
        "balanced": bool(reconciliation["balanced"].all()) if len(reconciliation) else True,
        "accepted": int(sum(len(df) for df in result.valid.values())),
        "quarantined": len(quarantine),
    }
    (out / META_FILE).write_text(json.dumps(status, indent=2, sort_keys=True))
    if not status["balanced"]:
        bad = reconciliation.loc[~reconciliation["balanced"].astype(bool), "table_name"].tolist()
        raise ValidationFailed(f"reconciliation does not balance for {period}: {', '.join(bad)}")
    if result.failed_tables:
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
            f"validation failed for {period}: {'; '.join(shares)} (more than "
            f"{settings.quarantine_fail_ratio:.0%} of the table; see {out / QUARANTINE_FILE})"
        )
    log.info("validated %s: %d accepted, %d quarantined", period, status["accepted"], status["quarantined"])
    return str(out)


# ------------------------------------------------------------------------------ load
def load_stage(period: str, settings: Settings | None = None) -> dict[str, int]:
    """Replace the period's batch in the warehouse with the validated rows."""
    from pipelines.load import create_schema, make_engine, replace_batch

    settings = _settings(settings)
    period = periods.validate_period(period)
    src = stage_dir(settings, period, "validate")
    _read_meta(src, "validate", period)
    tables = {name: _read_frame(src / f"{name}.parquet", empty_frame(spec)) for name, spec in TABLES.items()}
    engine = make_engine(settings.warehouse_url)
    try:
        create_schema(engine)
        written = replace_batch(
            engine,
            period,
            tables=tables,
            quarantine=pd.read_parquet(src / QUARANTINE_FILE),
            reconciliation=pd.read_parquet(src / "_reconciliation.parquet"),
            checks=pd.read_parquet(src / "_checks.parquet"),
        )
    finally:
        engine.dispose()
    log.info("loaded batch %s: %d rows", period, sum(written.values()))
    return {k: int(v) for k, v in written.items()}


# --------------------------------------------------------------------------- compute
def indicator_catalogue(settings: Settings) -> tuple[list[Any], Any]:
    """The indicator definitions and the value sets they reference."""
    from pipelines.compute import load_indicators, load_valuesets

    extra = list(settings.valueset_dirs)
    indicators = load_indicators(settings.indicators_dir, extra)
    valuesets = load_valuesets([settings.indicators_dir / "valuesets", *extra])
    return indicators, valuesets


class WarehouseView(Mapping[str, pd.DataFrame]):
    """The warehouse tables as of a batch horizon, read only when an indicator asks.

    Indicators touch a few tables (no shipped one reads observations), so tables are
    read lazily; and several months' horizons share one read of every delivery
    (``deliveries``), each view keeping only the batches up to its own horizon. The
    indicator engine then keeps the latest delivery of each record.
    """

    def __init__(self, engine: Any, upto_batch: str, deliveries: dict[str, pd.DataFrame], horizon: str) -> None:
        self._engine = engine
        self._upto = upto_batch
        self._deliveries = deliveries
        self._horizon = horizon
        self._visible: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise KeyError(name)
        if name not in self._deliveries:
            from pipelines.load import read_deliveries

            self._deliveries[name] = read_deliveries(self._engine, name, upto_batch=self._horizon)
        if name not in self._visible:
            df = self._deliveries[name]
            later = df["batch"] > self._upto
            self._visible[name] = df[~later] if later.any() else df  # no copy when nothing is later
        return self._visible[name]

    def __iter__(self) -> Iterator[str]:
        return iter(TABLES)

    def __len__(self) -> int:
        return len(TABLES)


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


def _compute_available(
    indicators: list[Any], data: Mapping[str, pd.DataFrame], period: str, valuesets: Any, summary: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute every indicator whose value sets are available.

    eCQM indicators name VSAC value sets that the project does not ship (users supply
    them through CAREQI_VALUESET_DIR). Without them such an indicator is reported as
    not computed, with the reason, instead of failing the whole monthly run.
    """
    from pipelines.compute import compute_period
    from pipelines.errors import IndicatorDefinitionError, ValueSetError

    subjects, results = [], []
    skipped = summary.setdefault("not_computed", {})
    for ind in indicators:
        try:
            s, r = compute_period([ind], data, period, valuesets)
        except (ValueSetError, IndicatorDefinitionError) as exc:
            if "value set" not in str(exc).lower():
                raise
            skipped[ind.id] = f"value sets not supplied (set CAREQI_VALUESET_DIR): {exc}"
            log.warning("%s not computed for %s: %s", ind.id, period, exc)
            continue
        subjects.append(s)
        results.append(r)
    if not results:
        return compute_period([], data, period, valuesets)
    return pd.concat(subjects, ignore_index=True), pd.concat(results, ignore_index=True)


def compute_stage(
    period: str, settings: Settings | None = None, *, history: bool = False, months: list[str] | None = None
) -> dict[str, Any]:
    """Evaluate every indicator for ``period`` and revise the months it can complete.

    Results for month M are always computed from the batches up to
    ``M + revision_months`` (never from anything loaded later), so rerunning any
    period reproduces the same warehouse, and a month becomes final once that many
    later batches have arrived.
    """
    from pipelines.load import create_schema, list_batches, make_engine, replace_results

    settings = _settings(settings)
    period = periods.validate_period(period)
    indicators, valuesets = indicator_catalogue(settings)
    engine = make_engine(settings.warehouse_url)
    try:
        create_schema(engine)
        loaded = set(list_batches(engine))
        if months is not None:  # a backfill: every loaded month of the range, once each
            targets = sorted({m for m in months if m in loaded} | {period})
        else:
            targets = compute_targets(
                period,
                loaded,
                revision_months=settings.revision_months,
                history_months=settings.report_months if history else 0,
            )
        summary: dict[str, Any] = {"period": period, "indicators": len(indicators), "periods": targets}
        horizon = periods.shift(targets[-1], settings.revision_months)
        deliveries: dict[str, pd.DataFrame] = {}
        for target in targets:
            view = WarehouseView(engine, periods.shift(target, settings.revision_months), deliveries, horizon)
            subjects, results = _compute_available(indicators, view, target, valuesets, summary)
            replace_results(engine, target, subjects=subjects, results=results)
            if target == period:
                summary["subjects"] = len(subjects)
                summary["results"] = len(results)
    finally:
        engine.dispose()
    log.info("computed %d indicators for %s", len(indicators), ", ".join(targets))
    return summary


# ------------------------------------------------------------------- report / export
@dataclass(frozen=True)
class _ReportInputs:
    indicators: list[dict[str, Any]]
    results: pd.DataFrame
    subjects: pd.DataFrame
    reconciliation: pd.DataFrame
    checks: pd.DataFrame
    quarantine: pd.DataFrame
    facilities: dict[str, str]
    wards: dict[str, str]


def _report_inputs(period: str, settings: Settings) -> _ReportInputs:
    from pipelines.load import make_engine, read_batch, read_results, read_subjects, read_table

    indicators, _ = indicator_catalogue(settings)
    engine = make_engine(settings.warehouse_url)
    try:
        results = read_results(engine, periods=periods.window(period, settings.report_months))
        if not (results["period"] == period).any():
            raise ConfigError(f"no indicator results for {period}: run the compute stage for this period first")
        orgs = read_table(engine, "organizations")
        locs = read_table(engine, "locations")
        computed = set(results.loc[results["period"] == period, "indicator_id"])
        return _ReportInputs(
            indicators=[i.metadata() for i in indicators if i.id in computed],
            results=results,
            subjects=read_subjects(engine, period),
            reconciliation=read_batch(engine, "reconciliation", period),
            checks=read_batch(engine, "validation_checks", period),
            quarantine=read_batch(engine, "quarantine", period),
            facilities=dict(zip(orgs["organization_id"], orgs["name"].fillna(orgs["organization_id"]), strict=True)),
            wards=dict(zip(locs["location_id"], locs["name"].fillna(locs["location_id"]), strict=True)),
        )
    finally:
        engine.dispose()


def report_stage(period: str, settings: Settings | None = None, *, generated_at: str | None = None) -> str:
    """Render the monthly quality-committee report; returns the HTML path."""
    from pipelines.publish import build_report_context, render_report

    settings = _settings(settings)
    period = periods.validate_period(period)
    inputs = _report_inputs(period, settings)
    context = build_report_context(
        period=period,
        indicators=inputs.indicators,
        results=inputs.results,
        subjects=inputs.subjects,
        reconciliation=inputs.reconciliation,
        checks=inputs.checks,
        quarantine=inputs.quarantine,
        facilities=inputs.facilities,
        wards=inputs.wards,
        generated_at=generated_at or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    path = render_report(context, settings.templates_dir, settings.reports_dir / period)
    log.info("report for %s written to %s", period, path)
    return str(path)


def export_stage(period: str, settings: Settings | None = None) -> dict[str, Any]:
    """Write the regulator exports: aggregate CSV and one FHIR MeasureReport per indicator."""
    from pipelines.export import export_csv, export_measure_reports
    from pipelines.load import make_engine, read_results

    settings = _settings(settings)
    period = periods.validate_period(period)
    indicators, _ = indicator_catalogue(settings)
    engine = make_engine(settings.warehouse_url)
    try:
        results = read_results(engine, periods=[period])
    finally:
        engine.dispose()
    computed = set(results["indicator_id"])
    meta = [i.metadata() for i in indicators if i.id in computed]
    if results.empty:
        raise ConfigError(f"no indicator results for {period}: run the compute stage for this period first")
    out = settings.exports_dir / period
    threshold = settings.small_number_threshold
    csv_path = export_csv(results, meta, period, out, small_number_threshold=threshold)
    reports = export_measure_reports(results, meta, period, out, small_number_threshold=threshold)
    log.info("exports for %s written to %s", period, out)
    return {"csv": str(csv_path), "measure_reports": [str(p) for p in reports]}


def run_period(
    period: str,
    settings: Settings | None = None,
    *,
    input_dir: Path | None = None,
    history: bool = False,
    report: bool = True,
) -> dict[str, Any]:
    """The whole monthly job in one process (what the DAG does, without a scheduler)."""
    settings = _settings(settings)
    extract_stage(period, settings, input_dir=input_dir)
    validate_stage(period, settings)
    loaded = load_stage(period, settings)
    computed = compute_stage(period, settings, history=history)
    outcome: dict[str, Any] = {"period": period, "loaded": loaded, "computed": computed}
    if report:
        outcome["report"] = report_stage(period, settings)
        outcome["exports"] = export_stage(period, settings)
    return outcome


__all__ = [
    "batch_dir",
    "compute_stage",
    "export_stage",
    "extract_stage",
    "indicator_catalogue",
    "load_stage",
    "report_stage",
    "run_period",
    "stage_dir",
    "validate_stage",
]
