"""Evaluate one indicator for one month: populations per subject, as boolean columns.

Every criterion becomes a numpy boolean mask over the whole subject frame; related
records are reached by semi-joins (``merge`` on patient_id / encounter_id, then a mask
over the joined rows, then "any per subject" by scattering row numbers). There is no
per-subject Python anywhere, which is what keeps a month of a large trust in seconds.

Population nesting follows the eCQM rules (CMS eCQM Logic and Implementation
Guidance, "Population criteria"): denominator within the initial population,
denominator exclusion within the denominator, numerator within the denominator minus
its exclusions, numerator exclusion within the numerator; for continuous measures the
measure population is within the initial population and its exclusion within it.
Ratio measures differ: their numerator and denominator are independent subsets of the
initial population (CQF Measures measure-conformance, Table 3-1; the reference engine
fqm-execution, ``handleRatioPopulationValues`` in src/calculation/DetailedResultsBuilder.ts
since v1.8.0), so a denominator exclusion does not remove a subject from the numerator;
a numerator exclusion still applies only within the numerator.
Three-valued logic collapses to false: a criterion on a missing value is not met.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.compute import model as m
from pipelines.compute.dates import (
    DEFAULT_CALENDARS,
    completed_years,
    day_difference,
    days_in_period,
    deadline_days,
    timestamps,
)
from pipelines.compute.ecqm.retrieve import Retrieve
from pipelines.compute.registry import BASIS_TABLE
from pipelines.compute.valuesets import DeclaredValueSets, ValueSetIndex
from pipelines.errors import IndicatorDefinitionError, MissingValueSets
from pipelines.load.snapshot import Snapshot
from pipelines.strings import arrow_strings
from pipelines.tables import INDICATOR_SUBJECTS, TABLES
from pipelines.workdays import WorkingCalendars

log = logging.getLogger(__name__)

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


@dataclass
class _Env:
    data: Mapping[str, pd.DataFrame]
    period: m.Period
    valuesets: ValueSetIndex
    #: What population functions retrieve through (with the value sets and codes the
    #: indicator declares, ``terms.vs``): one per evaluation, so the coding subsets it
    #: builds serve every population of the indicator.
    terms: Retrieve
    #: Whose working days count (each subject's facility calendar).
    calendars: WorkingCalendars = DEFAULT_CALENDARS

    def table(self, name: str) -> pd.DataFrame:
        """One row per record (``data`` is a :class:`~pipelines.load.snapshot.Snapshot`)."""
        return self.data[name]


def _bool(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(bool, copy=False) if values.dtype == bool else np.asarray(values == True)  # noqa: E712
    return pd.Series(values).to_numpy(dtype=bool, na_value=False)


class _Context:
    """A frame being evaluated, with lazily computed derived columns and earlier populations."""

    def __init__(self, frame: pd.DataFrame, env: _Env, derive: Mapping[str, m.Derivation] | None = None) -> None:
        # A frame already numbered 0..n-1 (a snapshot table) is kept as it is, so that
        # retrieves over the initial population's subjects are retrieves over the table.
        self.frame = frame if frame.index.equals(pd.RangeIndex(len(frame))) else frame.reset_index(drop=True)
        self.env = env
        self.derive = dict(derive or {})
        self.cache: dict[str, pd.Series] = {}
        self.populations: dict[m.Population, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def column(self, name: str) -> pd.Series:
        if name in self.frame.columns:
            return self.frame[name]
        if name not in self.cache:
            if name not in self.derive:
                raise IndicatorDefinitionError(f"column {name!r} is neither in the data nor derived")
            self.cache[name] = _derive(self.derive[name], self)
        return self.cache[name]

    def subset(self, mask: np.ndarray) -> _Context:
        sub = _Context(self.frame[mask], self.env, self.derive)
        sub.cache = {k: v[mask].reset_index(drop=True) for k, v in self.cache.items()}
        return sub

    def materialised(self) -> pd.DataFrame:
        """The subject frame with every derived column (for escape-hatch functions)."""
        if not self.derive:
            return self.frame
        return self.frame.assign(**{name: self.column(name) for name in self.derive})


# ---------------------------------------------------------------------- semi-joins
def _split_where(where: tuple[m.Criterion, ...]) -> tuple[list[m.Criterion], list[m.Criterion]]:
    local: list[m.Criterion] = []
    cross: list[m.Criterion] = []
    for c in where:
        (cross if any(col.startswith("subject.") for col in m.criterion_columns(c)) else local).append(c)
    return local, cross


def _joined(
    ctx: _Context,
    table: str,
    related_key: str,
    subject_key: str,
    where: tuple[m.Criterion, ...],
    extra: tuple[str, ...] = (),
) -> tuple[np.ndarray, pd.DataFrame]:
    """Subject row numbers paired with related rows that share the key and meet ``where``.

    Criteria that only read the related table are applied before the merge, so the join
    only carries candidate rows (e.g. fall incidents, not every adverse event).
    """
    rel = ctx.env.table(table)
    local, cross = _split_where(where)
    if local:
        rel = rel[_all(local, _Context(rel, ctx.env))]
    cross_cols = set().union(*(m.criterion_columns(c) for c in cross)) if cross else set()
    sub_cols = sorted(c for c in cross_cols if c.startswith("subject."))
    rel_cols = sorted({related_key, *extra, *(c for c in cross_cols if not c.startswith("subject."))})
    left = pd.DataFrame({"__row": np.arange(len(ctx), dtype=np.int64), "__key": ctx.column(subject_key)})
    for c in sub_cols:
        left[c] = ctx.column(c.removeprefix("subject."))
    left = left[left["__key"].notna()]
    merged = left.merge(rel[rel_cols], left_on="__key", right_on=related_key, how="inner")
    rows = merged["__row"].to_numpy()
    if cross:
        keep = _all(cross, _Context(merged, ctx.env))
        return rows[keep], merged[keep]
    return rows, merged


def _per_subject(
    ctx: _Context, table: str, related_key: str, subject_key: str, where: tuple[m.Criterion, ...], column: str | None
) -> np.ndarray | None:
    """Per subject, the number of related rows sharing its key and meeting ``where`` (or
    the sum of their ``column``), without pairing them: both key columns are numbered
    together once and the related rows counted by number. None when the pairs are needed
    (a criterion reads the subject) or the keys are not text."""
    rel = ctx.env.table(table)
    local, cross = _split_where(where)
    keys = ctx.column(subject_key)
    if cross or not (pd.api.types.is_string_dtype(keys.dtype) and pd.api.types.is_string_dtype(rel[related_key].dtype)):
        return None
    if local:
        rel = rel[_all(local, _Context(rel, ctx.env))]
    numbered = pc.dictionary_encode(pa.concat_arrays([arrow_strings(keys), arrow_strings(rel[related_key])]))
    codes = numbered.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    subjects, related = codes[: len(keys)], codes[len(keys) :]
    weights = None if column is None else rel[column].to_numpy(dtype=np.float64, na_value=0.0)[related >= 0]
    totals = np.bincount(related[related >= 0], weights=weights, minlength=len(numbered.dictionary) + 1)
    totals = totals.astype(np.float64)
    totals[-1] = 0.0  # a subject without a key has no related rows
    return totals[subjects]


def _days(ctx: _Context, start: str, end: str, by: m.DayCount) -> np.ndarray:
    facility = ctx.column("facility_id") if by is m.DayCount.WORKING and "facility_id" in ctx.frame else None
    return day_difference(ctx.column(start), ctx.column(end), by, calendars=ctx.env.calendars, facility=facility)


def _derive(d: m.Derivation, ctx: _Context) -> pd.Series:
    n = len(ctx)
    match d:
        case m.DeriveDays(start, end, by, minimum):
            days = _days(ctx, start, end, by)
            if minimum is not None:
                days = np.where(np.isnan(days), np.nan, np.maximum(days, minimum))
            return pd.Series(days, dtype="Float64")
        case m.DeriveDaysInPeriod(start, end):
            return pd.Series(
                days_in_period(ctx.column(start), ctx.column(end), ctx.env.period.start, ctx.env.period.end),
                dtype="Float64",
            )
        case m.DeriveYears(start, end):
            return pd.Series(completed_years(ctx.column(start), ctx.column(end)), dtype="Float64")
        case m.DeriveLookup(table, related_key, subject_key, column):
            src = ctx.env.table(table)
            rel = pd.DataFrame({"__rk": src[related_key], "__value": src[column]})
            rel = rel.drop_duplicates("__rk", keep="last")
            left = pd.DataFrame({"__key": ctx.column(subject_key)})
            out = left.merge(rel, left_on="__key", right_on="__rk", how="left")["__value"]
            return out.reset_index(drop=True)
        case m.DeriveAggregate(fn, table, related_key, subject_key, where, column):
            totals = _per_subject(ctx, table, related_key, subject_key, where, column if fn != "count" else None)
            if totals is not None:
                return pd.Series(totals, dtype="Float64")
            extra = (column,) if column else ()
            rows, merged = _joined(ctx, table, related_key, subject_key, where, extra)
            if fn == "count":
                return pd.Series(np.bincount(rows, minlength=n).astype(np.float64), dtype="Float64")
            weights = merged[column].to_numpy(dtype=np.float64, na_value=0.0)
            return pd.Series(np.bincount(rows, weights=weights, minlength=n), dtype="Float64")
    raise IndicatorDefinitionError(f"unsupported derivation {d!r}")


# ------------------------------------------------------------------------ criteria
def _all(items: list[m.Criterion] | tuple[m.Criterion, ...], ctx: _Context) -> np.ndarray:
    out = np.ones(len(ctx), dtype=bool)
    for c in items:
        out &= mask(c, ctx)
    return out


def _value_for(series: pd.Series, value: Any) -> Any:
    if pd.api.types.is_datetime64_any_dtype(series.dtype) and isinstance(value, str):
        return pd.Timestamp(value)
    return value


def mask(c: m.Criterion, ctx: _Context) -> np.ndarray:
    """Boolean mask over ``ctx.frame`` for one criterion (nulls -> False)."""
    match c:
        case m.AllOf(items):
            return _all(items, ctx)
        case m.AnyOf(items):
            out = np.zeros(len(ctx), dtype=bool)
            for item in items:
                out |= mask(item, ctx)
            return out
        case m.Not(item):
            return ~mask(item, ctx)
        case m.PopulationRef(pop):
            return ctx.populations[pop].copy()
        case m.InPeriod(column):
            s = timestamps(ctx.column(column))
            start, end = (np.datetime64(t.to_datetime64(), "us") for t in (ctx.env.period.start, ctx.env.period.end))
            return ~np.isnat(s) & (s >= start) & (s < end)
        case m.OverlapsPeriod(start_col, end_col):
            a, b = timestamps(ctx.column(start_col)), timestamps(ctx.column(end_col))
            start, end = (np.datetime64(t.to_datetime64(), "us") for t in (ctx.env.period.start, ctx.env.period.end))
            return ~np.isnat(a) & (a < end) & (np.isnat(b) | (b >= start))
        case m.OpenAtPeriodEnd(start_col, end_col):
            a, b = timestamps(ctx.column(start_col)), timestamps(ctx.column(end_col))
            end = np.datetime64(ctx.env.period.end.to_datetime64(), "us")
            return ~np.isnat(a) & (a < end) & (np.isnat(b) | (b >= end))
        case m.OverdueAtPeriodEnd(start_col, allowed, by):
            facility = ctx.column("facility_id") if "facility_id" in ctx.frame else None
            due = deadline_days(ctx.column(start_col), allowed, by, calendars=ctx.env.calendars, facility=facility)
            end_day = np.datetime64(ctx.env.period.end.to_datetime64(), "D")
            return ~np.isnat(due) & (due < end_day)
        case m.Equals(column, value):
            s = ctx.column(column)
            return _bool(s.eq(_value_for(s, value)))
        case m.OneOf(column, values):
            s = ctx.column(column)
            return _bool(s.isin([_value_for(s, v) for v in values]))
        case m.IsNull(column):
            return ctx.column(column).isna().to_numpy(dtype=bool)
        case m.NotNull(column):
            return ctx.column(column).notna().to_numpy(dtype=bool)
        case m.Compare(column, op, value, other):
            s = ctx.column(column)
            rhs = ctx.column(other) if other else _value_for(s, value)
            return _bool(_OPS[op](s, rhs))
        case m.InValueSet(ref, code, system):
            return ctx.env.valuesets.mask(ref, ctx.column(system), ctx.column(code))
        case m.DaysBetween(start, end, by, lo, hi):
            days = _days(ctx, start, end, by)
            out = ~np.isnan(days)
            if lo is not None:
                out &= np.nan_to_num(days, nan=-np.inf) >= lo
            if hi is not None:
                out &= np.nan_to_num(days, nan=np.inf) <= hi
            return out
        case m.Exists(table, related_key, subject_key, where):
            totals = _per_subject(ctx, table, related_key, subject_key, where, None)
            if totals is not None:
                return totals > 0
            rows, _ = _joined(ctx, table, related_key, subject_key, where)
            out = np.zeros(len(ctx), dtype=bool)
            out[rows] = True
            return out
    raise IndicatorDefinitionError(f"unsupported criterion {c!r}")


# ---------------------------------------------------------------- subject frames
def subject_frame(basis: m.Basis, env: _Env) -> pd.DataFrame:
    """The basis table as subject rows, with patient_id / facility_id / ward_id / service."""
    df = env.table(BASIS_TABLE[basis])
    if basis is m.Basis.COMPLAINT:
        df = df.assign(patient_id=pd.Series(pd.NA, index=df.index, dtype="string"))
    elif basis is m.Basis.SURVEY_RESPONSE:
        enc = env.table("encounters")[["encounter_id", "patient_id"]]
        df = df.merge(enc, on="encounter_id", how="left")
    elif basis is m.Basis.PATIENT:
        na = pd.Series(pd.NA, index=df.index, dtype="string")
        df = df.assign(facility_id=df["organization_id"], ward_id=na, service=na)
    return df


def _population_mask(pop: m.PopulationDef, ctx: _Context) -> np.ndarray:
    if pop.function is not None:
        result = pop.function(ctx.materialised(), ctx.env.data, ctx.env.period, ctx.env.terms)
        out = _bool(np.asarray(result) if not isinstance(result, pd.Series) else result)
        if out.shape != (len(ctx),):
            raise IndicatorDefinitionError(
                f"population function {pop.population.value} returned {out.shape[0]} values for {len(ctx)} subjects"
            )
        return out
    if pop.criteria is None:  # denominator / measure population default: the initial population
        return np.ones(len(ctx), dtype=bool)
    return mask(pop.criteria, ctx)


def censored_subjects(
    start: pd.Series,
    follow_up: m.FollowUp,
    data_end: pd.Timestamp,
    *,
    calendars: WorkingCalendars = DEFAULT_CALENDARS,
    facility: pd.Series | None = None,
) -> np.ndarray:
    """Subjects whose deadline day had not wholly passed when the data ends (``data_end``,
    exclusive): their outcome is not known yet (see :class:`model.FollowUp`)."""
    due = deadline_days(start, follow_up.days, follow_up.by, calendars=calendars, facility=facility)
    end_day = np.datetime64(data_end.to_datetime64(), "D")
    return ~np.isnat(due) & (due >= end_day)


def evaluate(
    indicator: m.Indicator,
    data: Mapping[str, pd.DataFrame],
    period: str,
    valuesets: ValueSetIndex,
    *,
    data_end: pd.Timestamp | None = None,
    calendars: WorkingCalendars = DEFAULT_CALENDARS,
) -> pd.DataFrame:
    """Membership of every initial-population subject, in ``INDICATOR_SUBJECTS`` shape.

    ``data`` holds warehouse tables shaped like ``tables.TABLES`` (absent tables count
    as empty). Ratio measures carry ``denominator_value`` for subjects in the
    denominator and not excluded, and ``numerator_events`` for those and for numerator
    subjects not excluded from the numerator; continuous measures carry
    ``observation`` for the measure population minus its exclusions.

    ``data_end`` (exclusive) is when the data ends: a subject of an indicator with a
    ``follow_up`` whose deadline has not passed by then is censored - kept in the
    initial population, out of every other population - until a later run sees it.
    """
    p = m.Period.parse(period)
    if not isinstance(data, Snapshot):  # frames in memory: the read model's rule still decides
        data = Snapshot.of(data)
    declared = DeclaredValueSets(valuesets, indicator.declared_valuesets, indicator.declared_codes)
    env = _Env(data, p, valuesets, Retrieve(data, declared), calendars)
    missing = sorted(ref for ref in indicator.valuesets if ref not in valuesets)
    if missing:
        raise MissingValueSets(f"{indicator.id}: {len(missing)} value set(s) not loaded (first: {missing[0]})", missing)
    full = _Context(subject_frame(indicator.basis, env), env, indicator.derive)
    ip = _population_mask(indicator.populations[m.Population.INITIAL_POPULATION], full)
    ctx = full.subset(ip)
    n = len(ctx)
    flags: dict[m.Population, np.ndarray] = {m.Population.INITIAL_POPULATION: np.ones(n, dtype=bool)}
    ctx.populations = flags
    parent = {
        m.Population.DENOMINATOR: m.Population.INITIAL_POPULATION,
        m.Population.DENOMINATOR_EXCLUSION: m.Population.DENOMINATOR,
        m.Population.NUMERATOR: m.Population.DENOMINATOR,
        m.Population.NUMERATOR_EXCLUSION: m.Population.NUMERATOR,
        m.Population.MEASURE_POPULATION: m.Population.INITIAL_POPULATION,
        m.Population.MEASURE_POPULATION_EXCLUSION: m.Population.MEASURE_POPULATION,
    }
    if indicator.scoring is m.Scoring.RATIO:  # numerator and denominator independent (module docstring)
        parent[m.Population.NUMERATOR] = m.Population.INITIAL_POPULATION
    for pop in m.SCORING_POPULATIONS[indicator.scoring][1:]:
        within = flags.get(parent[pop], np.zeros(n, dtype=bool)).copy()
        if (
            pop is m.Population.NUMERATOR
            and indicator.scoring is not m.Scoring.RATIO
            and m.Population.DENOMINATOR_EXCLUSION in flags
        ):
            within &= ~flags[m.Population.DENOMINATOR_EXCLUSION]
        definition = indicator.populations.get(pop)
        if definition is None:
            if pop in (m.Population.DENOMINATOR, m.Population.MEASURE_POPULATION):
                flags[pop] = within
            continue
        # A population nested in an empty one is empty: its criteria are not evaluated.
        flags[pop] = within & _population_mask(definition, ctx) if within.any() else within

    censored = np.zeros(n, dtype=bool)
    if indicator.follow_up is not None and data_end is not None and n:
        censored = censored_subjects(
            ctx.column(indicator.follow_up.start),
            indicator.follow_up,
            data_end,
            calendars=calendars,
            facility=ctx.column("facility_id"),
        )
        if censored.any():
            for pop in list(flags):
                if pop is not m.Population.INITIAL_POPULATION:
                    flags[pop] = flags[pop] & ~censored

    out = pd.DataFrame(
        {
            "indicator_id": pd.Series([indicator.id] * n, dtype="string"),
            "period": pd.Series([p.label] * n, dtype="string"),
            "subject_id": ctx.column(TABLES[BASIS_TABLE[indicator.basis]].key).astype("string"),
            "patient_id": ctx.column("patient_id").astype("string"),
            "facility_id": ctx.column("facility_id").astype("string"),
            "ward_id": ctx.column("ward_id").astype("string"),
            "service": ctx.column("service").astype("string"),
        }
    )
    for pop in indicator.reported_populations:
        out[pop.column] = pd.array(flags.get(pop, np.zeros(n, dtype=bool)), dtype="boolean")
    for col in ("denominator", "denominator_exclusion", "numerator", "numerator_exclusion"):
        if col not in out.columns:
            out[col] = pd.array(np.zeros(n, dtype=bool), dtype="boolean")
    out["censored"] = pd.array(censored, dtype="boolean")
    counted = flags.get(m.Population.DENOMINATOR, flags.get(m.Population.MEASURE_POPULATION, np.zeros(n, dtype=bool)))
    counted = counted & ~flags.get(
        m.Population.DENOMINATOR_EXCLUSION,
        flags.get(m.Population.MEASURE_POPULATION_EXCLUSION, np.zeros(n, dtype=bool)),
    )

    # A ratio numerator is not nested in the denominator: its events are carried for
    # numerator subjects not excluded from it even when the denominator excludes them.
    no = np.zeros(n, dtype=bool)
    scored = flags.get(m.Population.NUMERATOR, no) & ~flags.get(m.Population.NUMERATOR_EXCLUSION, no)

    def values(column: str | None, dtype: str, where: np.ndarray = counted) -> pd.Series:
        if column is None:
            return pd.Series(pd.NA, index=out.index, dtype=dtype)
        v = ctx.column(column).astype("Float64").reset_index(drop=True)
        v = v.where(pd.Series(where), pd.NA)
        return v.round().astype("Int64") if dtype == "Int64" else v.astype(dtype)

    out["numerator_events"] = values(indicator.numerator_events, "Int64", counted | scored)
    out["denominator_value"] = values(indicator.denominator_value, "Float64")
    out["observation"] = values(indicator.observation, "Float64")
    log.info("%s %s: %d subjects in the initial population", indicator.id, p.label, n)
    return out[INDICATOR_SUBJECTS.column_names]


__all__ = [
    "censored_subjects",
    "evaluate",
    "mask",
    "subject_frame",
]
