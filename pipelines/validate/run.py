"""Run the suites over conformed tables: valid rows, quarantine rows, one check row each.

Great Expectations answers "which rows broke which expectation"; this module turns
that into the pipeline's shapes. A row that breaks several expectations becomes ONE
quarantine row listing every reason (so a data owner fixes the record once), and the
run carries on with the remaining rows: one bad record must not hold back a month's
indicators. Only when a table loses more than ``fail_ratio`` of its rows is it listed
in ``failed_tables`` -- that is a broken feed, not a few bad records.

GX mechanics (GX 1.x): one ephemeral, in-memory Data Context per call with analytics
and progress bars switched off through its project config (no environment variables
needed: GX 1.24 reads ``analytics_enabled`` from the context config, and ships no
analytics client at all); one pandas datasource; per table one dataframe asset with a
whole-dataframe batch definition; ``batch.validate(suite, result_format=COMPLETE)``
with a temporary row-number column as ``unexpected_index_column_names``, so failing
rows are mapped back by position whatever the input frame's index looks like.

GX sees a *view* of each frame, not the frame itself: only the columns the suite reads,
nullable numbers as float64 and timestamps as datetime64[ns]. GX 1.24's pandas
``between`` metric only vectorises numpy int/float and ns-timestamps; on our
``datetime64[us]`` columns it falls back to comparing Timestamps with the suite's ISO
strings and raises. Values outside the ns range (before 1677 or after 2262) are
clamped to its edges, which keeps them outside every plausible range and keeps the
order that column-pair checks compare. The frames handed back are the originals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.errors import ConfigError, ValidationFailed
from pipelines.tables import QUARANTINE, TABLES, VALIDATION_CHECKS, TableSpec
from pipelines.validate.relations import Delivered, Lookup, Relation, evaluate
from pipelines.validate.suites import (
    build_expectation,
    check_name,
    condition_columns,
    expectation_columns,
    load_suites,
    suite_relations,
)

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.datasource.fluent import PandasDatasource
    from great_expectations.expectations.expectation import Expectation

log = logging.getLogger(__name__)

ROW = "__careqi_row__"
_TAG = "careqi_check_index"
PAYLOAD_LIMIT = 2000
_NS_MIN = pd.Timestamp("1677-09-22")
_NS_MAX = pd.Timestamp("2262-04-11")


@dataclass
class ValidationResult:
    """What validation hands to load (valid), to the data owners (quarantine), to the
    data-quality report (checks) and to the delivery guard (profiles: how full each
    column of the accepted rows is)."""

    valid: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    checks: pd.DataFrame
    failed_tables: list[str] = field(default_factory=list)
    profiles: pd.DataFrame = field(default_factory=lambda: pd.DataFrame())


@dataclass
class _TableOutcome:
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    checks: pd.DataFrame


def _table_fail_ratio(suite: object, default: float) -> float:
    """A suite may set its own ``meta.fail_ratio``.

    Reference tables (organizations, locations) arrive once per patient Bundle in
    bundle feeds, so most of their rows are repeated copies, quarantined as
    duplicates: expected, visible in the report, and no reason to stop the run.
    """
    meta = getattr(suite, "meta", None) or {}
    value = meta.get("fail_ratio")
    return float(value) if value is not None else default


#: Without a batch (a one-off validation of files), dates are only bounded absolutely.
NO_BATCH_LATEST = pd.Timestamp("2100-01-01")


def validate_tables(
    tables: dict[str, pd.DataFrame],
    expectations_dir: Path,
    *,
    fail_ratio: float = 0.25,
    parameters: Mapping[str, Any] | None = None,
    extract_quarantine: pd.DataFrame | None = None,
    rows_read: Mapping[str, int] | None = None,
    missing_columns: Mapping[str, Sequence[str]] | None = None,
    lookup: Lookup | None = None,
    relations: bool = True,
) -> ValidationResult:
    """Validate every frame against ``expectations/<table>.json``.

    ``tables`` holds frames conformed to ``tables.TABLES`` (see ``tables.conform``).
    Missing or empty tables are fine. A table without a suite is a configuration
    error: unvalidated data must not reach the warehouse silently.

    ``parameters`` are the suites' expectation parameters (``suites.PARAMETERS``).
    ``extract_quarantine`` and ``rows_read`` come from extraction: rows already
    quarantined there count towards a table's fail ratio (a feed of garbage lines must
    fail, not load nothing), and their record ids resolve references. A column in
    ``missing_columns`` (absent from a CSV header) is a failed completeness check.
    ``lookup`` resolves references to records held in the warehouse. ``relations=False``
    checks rows only (the suites' expectations), not the cross-table relations: a daily
    feedback delivery names encounters the monthly batch has not delivered yet, and the
    monthly batch checks those references.
    """
    suites = load_suites(expectations_dir)
    for name in tables:
        if name not in TABLES:
            raise ConfigError(f"validate: {name!r} is not a source table of pipelines.tables")
        if name not in suites:
            raise ConfigError(f"validate: no expectation suite {name}.json in {expectations_dir}")
    params = {"latest_plausible": NO_BATCH_LATEST, **(parameters or {})}
    early = extract_quarantine if extract_quarantine is not None else pd.DataFrame(columns=["table_name", "record_id"])
    delivered = Delivered(
        tables=tables,
        quarantined_ids={
            str(t): set(g["record_id"].dropna().astype(str)) for t, g in early.groupby("table_name", sort=False)
        },
        lookup=lookup,
    )

    datasource = _datasource() if any(len(df) for df in tables.values()) else None
    outcomes: dict[str, _TableOutcome] = {}
    for name, df in tables.items():
        outcomes[name] = _validate_table(
            TABLES[name],
            df,
            suites[name],
            datasource,
            params,
            suite_relations(suites[name], name) if relations else [],
            delivered,
        )
        delivered.valid[name] = outcomes[name].valid

    failed = []
    early_counts = early["table_name"].value_counts() if len(early) else pd.Series(dtype="int64")
    for name, df in tables.items():
        n_bad = len(outcomes[name].quarantine) + int(early_counts.get(name, 0))
        read = int(rows_read[name]) if rows_read is not None and name in rows_read else len(df)
        if read:
            log.info("validate %s: %d rows read, %d quarantined", name, read, n_bad)
        limit = _table_fail_ratio(suites[name], fail_ratio)
        if read and n_bad / read > limit:
            log.warning("validate %s: %d of %d rows quarantined, above %.0f%%", name, n_bad, read, 100 * limit)
            failed.append(name)

    column_checks = [
        _missing_column_check(name, column, len(tables.get(name, ())))
        for name, columns in sorted((missing_columns or {}).items())
        for column in columns
    ]
    return ValidationResult(
        valid={name: o.valid for name, o in outcomes.items()},
        quarantine=_concat([o.quarantine for o in outcomes.values()], QUARANTINE.dtypes),
        checks=_concat([o.checks for o in outcomes.values()] + [pd.DataFrame(column_checks)], VALIDATION_CHECKS.dtypes),
        failed_tables=failed,
        profiles=column_profiles({name: o.valid for name, o in outcomes.items()}),
    )


def _missing_column_check(table: str, column: str, rows: int) -> dict[str, Any]:
    return {
        "table_name": table,
        "check": f"column_present({column})",
        "description": f"The delivery has the {column} column; without it every row reads as empty there",
        "category": "completeness",
        "violated": rows,
        "denominator": rows,
        "pct": 100.0 if rows else 0.0,
        "status": "fail",
    }


def column_profiles(valid: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per table and contract column: accepted rows and how many have a value. The
    delivery guard compares these with earlier batches (a column that was filled and
    now is empty is a broken feed), and the report can show completeness trends."""
    rows = []
    for name, df in valid.items():
        spec = TABLES[name]
        n = len(df)
        for col in spec.columns:
            filled = int(df[col.name].notna().sum()) if n and col.name in df.columns else 0
            rows.append({"table_name": name, "column_name": col.name, "rows": n, "filled": filled})
    return pd.DataFrame(rows, columns=["table_name", "column_name", "rows", "filled"])


def _datasource() -> PandasDatasource:
    """One in-memory context + pandas datasource per validate call (not per table/check)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    return context.data_sources.add_pandas("careqi_validate")


def _validate_table(
    spec: TableSpec,
    df: pd.DataFrame,
    suite: gx.ExpectationSuite,
    datasource: PandasDatasource | None,
    parameters: Mapping[str, Any],
    relations: list[Relation],
    delivered: Delivered,
) -> _TableOutcome:
    expectations = list(suite.expectations)
    n = len(df)
    if n == 0 or datasource is None:
        empty = [_check_row(spec.name, e, 0, n) for e in expectations]
        empty += [_relation_row(spec.name, r, 0, n) for r in relations if not r.table or delivered.can_resolve(r.table)]
        return _TableOutcome(
            df.reset_index(drop=True),
            _concat([], QUARANTINE.dtypes),
            _concat([pd.DataFrame(empty)], VALIDATION_CHECKS.dtypes),
        )

    needed = sorted({c for e in expectations for c in expectation_columns(e)} | _condition_columns(expectations))
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValidationFailed(
            f"validate {spec.name}: frame lacks column(s) {missing}; conform it with tables.conform first"
        )
    flagged = _run_gx(spec.name, _gx_view(df, needed), expectations, datasource, parameters)

    positions: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    reasons: list[np.ndarray] = []
    checks: list[dict[str, Any]] = []
    for i, (expectation, rows) in enumerate(zip(expectations, flagged, strict=True)):
        reason = f"{check_name(expectation)}: {(expectation.meta or {})['description']}"
        if (expectation.meta or {}).get("keep") == "first":
            rows, texts = _later_copies(df, expectation_columns(expectation), rows)
            text = np.array([f"{check_name(expectation)}: {t}" for t in texts], dtype=object)
        else:
            text = np.full(len(rows), reason, dtype=object)
        positions.append(rows)
        orders.append(np.full(len(rows), i))
        reasons.append(text)
        checks.append(_check_row(spec.name, expectation, len(rows), n))
    for j, relation in enumerate(relations, len(expectations)):
        if relation.table and not delivered.can_resolve(relation.table):
            continue
        rows = evaluate(relation, df, delivered)
        positions.append(rows)
        orders.append(np.full(len(rows), j))
        reasons.append(np.full(len(rows), f"{relation.name}: {relation.description}", dtype=object))
        checks.append(_relation_row(spec.name, relation, len(rows), n))

    bad = pd.DataFrame(
        {"pos": np.concatenate(positions), "order": np.concatenate(orders), "reason": np.concatenate(reasons)}
    )
    joined = bad.sort_values(["pos", "order"]).groupby("pos", sort=True)["reason"].agg("; ".join)
    keep = np.ones(n, dtype=bool)
    keep[joined.index.to_numpy()] = False
    return _TableOutcome(
        valid=df.iloc[keep].reset_index(drop=True),
        quarantine=_quarantine_rows(spec, df, joined.index.to_numpy(), joined.to_numpy()),
        checks=_concat([pd.DataFrame(checks)], VALIDATION_CHECKS.dtypes),
    )


def _condition_columns(expectations: list[Expectation]) -> set[str]:
    """Columns named in GX ``row_condition``s, so the view GX sees carries them."""
    return set().union(*(condition_columns(e.configuration.kwargs.get("row_condition")) for e in expectations))


def _run_gx(
    table: str,
    view: pd.DataFrame,
    expectations: list[Expectation],
    datasource: PandasDatasource,
    parameters: Mapping[str, Any],
) -> list[np.ndarray]:
    """Run the suite once; per expectation, the sorted row positions GX flagged."""
    import great_expectations as gx

    # Results do not come back in suite order; tag each expectation to match them up.
    tagged = gx.ExpectationSuite(
        name=f"{table}-run",
        expectations=[
            build_expectation(
                {
                    "type": e.expectation_type,
                    "kwargs": dict(e.configuration.kwargs),
                    "meta": {**(e.meta or {}), _TAG: i},
                },
                f"validate {table}",
            )
            for i, e in enumerate(expectations)
        ],
    )
    asset = datasource.add_dataframe_asset(name=table)
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    batch = batch_definition.get_batch(batch_parameters={"dataframe": view})
    result = batch.validate(
        tagged,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]},
        expectation_parameters=dict(parameters),
    )
    flagged: list[np.ndarray | None] = [None] * len(expectations)
    for r in result.results:
        config = r.expectation_config
        if config is None or not config.meta or _TAG not in config.meta:
            raise ValidationFailed(f"validate {table}: GX returned a result for no expectation of the suite")
        i = config.meta[_TAG]
        name = check_name(expectations[i])
        error = _exception_message(r.exception_info)
        if error:
            raise ValidationFailed(f"validate {table}: {name} could not be evaluated ({error})")
        found = r.result.get("unexpected_index_list") or []
        rows = np.unique(np.array([item[ROW] for item in found], dtype=np.int64))
        if (not r.success and len(rows) == 0) or len(rows) != int(r.result.get("unexpected_count", 0)):
            raise ValidationFailed(f"validate {table}: {name} failed but its rows could not be identified")
        flagged[i] = rows
    if any(f is None for f in flagged):
        raise ValidationFailed(f"validate {table}: GX returned no result for some expectations")
    return [f for f in flagged if f is not None]


def _exception_message(info: Any) -> str:
    """GX 1.x nests exception info per metric; find the first raised one."""
    if not isinstance(info, dict):
        return ""
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return ""


def _gx_view(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The columns GX reads, in dtypes its pandas metrics vectorise (see module doc)."""
    out: dict[str, Any] = {}
    for name in columns:
        col = df[name]
        if pd.api.types.is_datetime64_dtype(col.dtype) and not isinstance(col.dtype, pd.DatetimeTZDtype):
            col = col.clip(lower=_NS_MIN, upper=_NS_MAX).astype("datetime64[ns]")
        elif pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            col = pd.Series(col.to_numpy(dtype="float64", na_value=np.nan), index=col.index)
        out[name] = col.reset_index(drop=True)
    view = pd.DataFrame(out)
    view[ROW] = np.arange(len(df), dtype=np.int64)
    return view


def _later_copies(df: pd.DataFrame, columns: list[str], flagged: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Of the rows GX flagged as non-unique, the ones after the first copy (source
    order = frame order), each with where the kept copy came from."""
    values = df[columns].reset_index(drop=True)
    later = values.duplicated(keep="first").to_numpy()
    rows = flagged[later[flagged]]
    if len(rows) == 0:
        return rows, []
    group = values.groupby(columns, sort=False, dropna=False).ngroup().to_numpy()
    first_of_group = pd.Series(np.arange(len(values))).groupby(group).first()
    firsts = first_of_group.loc[group[rows]].to_numpy()
    return rows, [f"duplicate record id: first seen at {_location(df, p)}" for p in firsts]


def _location(df: pd.DataFrame, pos: int) -> str:
    if "source_file" in df.columns and "source_line" in df.columns:
        f, line = df["source_file"].iloc[pos], df["source_line"].iloc[pos]
        if not pd.isna(f) and not pd.isna(line):
            return f"{f}:{int(line)}"
    return f"row {pos + 1} of the input"


def _quarantine_rows(spec: TableSpec, df: pd.DataFrame, rows: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
    if len(rows) == 0:
        return _concat([], QUARANTINE.dtypes)
    bad = df.iloc[rows]
    payload = bad.to_json(orient="records", lines=True, date_format="iso", date_unit="us", force_ascii=False)
    # split on "\n" only: JSON escapes it inside strings, but not U+2028 and friends,
    # which str.splitlines() would also break on.
    payloads = [p[:PAYLOAD_LIMIT] for p in payload.rstrip("\n").split("\n")]
    if len(payloads) != len(rows):
        raise ValidationFailed(f"validate {spec.name}: could not serialise quarantined rows")

    def copied(name: str) -> Any:
        return bad[name].to_numpy() if name in bad.columns else pd.NA

    out = pd.DataFrame(
        {
            "table_name": spec.name,
            "record_id": bad[spec.key].astype("string").to_numpy(),
            "stage": "validate",
            "reasons": reasons,
            "payload": payloads,
            "source_file": copied("source_file"),
            "source_line": copied("source_line"),
        }
    )
    return out.astype(QUARANTINE.dtypes)[QUARANTINE.column_names]


def _relation_row(table: str, relation: Relation, violated: int, denominator: int) -> dict[str, Any]:
    return {
        "table_name": table,
        "check": relation.name,
        "description": relation.description,
        "category": relation.category,
        "violated": violated,
        "denominator": denominator,
        "pct": 100.0 * violated / denominator if denominator else 0.0,
        "status": "fail" if violated else "pass",
    }


def _check_row(table: str, expectation: Expectation, violated: int, denominator: int) -> dict[str, Any]:
    """One row in the OHDSI-DQD-like checks table; pct is a percentage (0-100)."""
    meta = expectation.meta or {}
    return {
        "table_name": table,
        "check": check_name(expectation),
        "description": meta.get("description"),
        "category": meta.get("category"),
        "violated": violated,
        "denominator": denominator,
        "pct": 100.0 * violated / denominator if denominator else 0.0,
        "status": "fail" if violated else "pass",
    }


def _concat(frames: list[pd.DataFrame], dtypes: dict[str, str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})
    return pd.concat(frames, ignore_index=True).astype(dtypes)[list(dtypes)]
