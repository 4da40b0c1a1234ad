"""Discover ``indicators/*.yaml``, check every file strictly, index by id.

An indicator file is data. Every key, criterion type, table and column it names is
checked here against :mod:`pipelines.tables`, so that a typo fails when the catalogue
is loaded (naming the file and the place in it) rather than quietly computing an
empty population months later. Criteria are parsed into the closed vocabulary of
:mod:`pipelines.compute.model`; nothing is ever evaluated as code.

The one escape hatch (STYLE.md, "Finding your way"): a sibling ``indicators/<id>.py``
may define pure functions named after populations (``numerator(subjects, data, period,
terms)``, see :data:`pipelines.compute.model.PopulationFunction`) for logic that
outgrows the vocabulary; such a population then has no ``criteria`` in the YAML, and
the YAML declares what the functions read (``reads``), the value sets and codes they
name (``valuesets``, ``codes``) and, for an eCQM, its ``measure: {url, version}``.

Vocabulary (criteria; a YAML list is shorthand for ``all``)::

    all: [...]   any: [...]   not: {...}          population: denominator
    in_period: end_at                              equals: {column, value}
    overlaps_period: {start, end}                  open_at_period_end: {start, end}
    overdue_at_period_end: {start, days, by: calendar|working}
    in: {column, values: [...]}                    is_null: col    not_null: col
    compare: {column, op: eq|ne|lt|le|gt|ge, value | other: column}
    in_valueset: slug-or-url-or-oid | {valueset, code: code, system: code_system}
    days_between: {start, end, by: calendar|elapsed|working, min, max}
    exists: {table, join: key | {related, subject}, where: [...]}   # subject.<col> inside where

Derived subject columns (``derive:``, in order; later ones may use earlier ones)::

    days_between: {start, end, by, minimum}        years_between: {start, end}
    days_in_period: {start, end}
    lookup: {table, join, column}                  count: {table, join, where}
    sum: {table, join, column, where}

A rule with a deadline says how long after which date its outcome is known
(``follow_up: {sentence, start, days, by}``); subjects whose deadline has not passed by
the end of the data are censored.

(The join key is ``join``, not ``on``: YAML 1.1 reads a bare ``on`` as the boolean true.)
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from pipelines.compute import model as m
from pipelines.compute.valuesets import ValueSetIndex, load_valuesets
from pipelines.errors import IndicatorDefinitionError, ValueSetError
from pipelines.tables import TABLES

log = logging.getLogger(__name__)

_ID = re.compile(r"^[a-z][a-z0-9_]*$")

BASIS_TABLE: dict[m.Basis, str] = {
    m.Basis.ENCOUNTER: "encounters",
    m.Basis.COMPLAINT: "complaints",
    m.Basis.SURVEY_RESPONSE: "survey_responses",
    m.Basis.PATIENT: "patients",
}
#: Columns the engine adds to a basis table to make the subject row.
BASIS_EXTRA: dict[m.Basis, dict[str, str]] = {
    m.Basis.ENCOUNTER: {},
    m.Basis.COMPLAINT: {"patient_id": "string"},
    m.Basis.SURVEY_RESPONSE: {"patient_id": "string"},
    m.Basis.PATIENT: {"facility_id": "string", "ward_id": "string", "service": "string"},
}
#: Subject columns carried into INDICATOR_SUBJECTS, hence the only ones results can be split by.
STRATIFIABLE = ("ward_id", "service")

TOP_KEYS = {
    "id", "title", "description", "domain", "owner", "scoring", "basis", "improvement", "target", "unit",
    "multiplier", "aggregate", "stratifiers", "cms_id", "grain", "references", "derive", "populations",
    "numerator_events", "denominator_value", "observation", "follow_up", "valuesets", "codes", "reads",
    "measure", "spc", "risk_adjustment",
}  # fmt: skip
REQUIRED_KEYS = (
    "id", "title", "description", "domain", "owner", "scoring", "basis", "improvement", "target", "unit",
    "grain", "populations",
)  # fmt: skip
CRITERIA = (
    "all", "any", "not", "population", "in_period", "overlaps_period", "open_at_period_end",
    "overdue_at_period_end", "equals", "in", "is_null", "not_null",
    "compare",
    "in_valueset", "days_between", "exists",
)  # fmt: skip
DERIVATIONS = ("days_between", "days_in_period", "years_between", "lookup", "count", "sum")


def _kind(dtype: str) -> str:
    if dtype.startswith("datetime"):
        return "datetime"
    if dtype in ("Int64", "Float64", "float64", "int64"):
        return "number"
    if dtype == "boolean":
        return "boolean"
    return "string"


@dataclass
class _Scope:
    """Columns visible where a criterion is evaluated: kind by name."""

    columns: dict[str, str]
    subject: _Scope | None = None  # set inside exists/count: ``subject.<col>`` refers here
    where_am_i: str = ""


class _Parser:
    def __init__(self, path: Path, valuesets: ValueSetIndex | None) -> None:
        self.path = path
        self.valuesets = valuesets

    def fail(self, where: str, problem: str) -> IndicatorDefinitionError:
        return IndicatorDefinitionError(f"{self.path.name}: {where}: {problem}")

    # ---------------------------------------------------------------- primitives
    def mapping(self, node: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict:
        if not isinstance(node, dict):
            raise self.fail(where, f"expected a mapping, got {type(node).__name__}")
        unknown = set(node) - set(required) - set(optional)
        if True in unknown:
            raise self.fail(where, "found the key true: YAML reads a bare `on` as a boolean; write `join`")
        if unknown:
            allowed = ", ".join([*required, *optional])
            raise self.fail(where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (allowed: {allowed})")
        missing = [k for k in required if k not in node]
        if missing:
            raise self.fail(where, f"missing key(s) {', '.join(missing)}")
        return node

    def text(self, node: Any, where: str) -> str:
        if not isinstance(node, str) or not node.strip():
            raise self.fail(where, "expected non-empty text")
        return " ".join(node.split())

    def number(self, node: Any, where: str) -> float:
        if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node):
            raise self.fail(where, f"expected a number, got {node!r}")
        return float(node)

    def enum(self, cls: type[StrEnum], node: Any, where: str) -> Any:
        try:
            return cls(node)
        except ValueError:
            allowed = " | ".join(e.value for e in cls)
            raise self.fail(where, f"{node!r} is not one of {allowed}") from None

    def column(self, name: Any, scope: _Scope, where: str, kinds: Sequence[str] = ()) -> str:
        if not isinstance(name, str):
            raise self.fail(where, f"expected a column name, got {name!r}")
        target, bare = scope, name
        if name.startswith("subject."):
            if scope.subject is None:
                raise self.fail(where, f"{name!r}: 'subject.' columns only exist inside exists/count/sum")
            target, bare = scope.subject, name.removeprefix("subject.")
        if bare not in target.columns:
            raise self.fail(
                where,
                f"unknown column {name!r} in {target.where_am_i} (known: {', '.join(sorted(target.columns))})",
            )
        kind = target.columns[bare]
        if kinds and kind not in kinds:
            raise self.fail(where, f"column {name!r} is {kind}, expected {' or '.join(kinds)}")
        return name

    def kind_of(self, name: str, scope: _Scope) -> str:
        if name.startswith("subject.") and scope.subject is not None:
            return scope.subject.columns[name.removeprefix("subject.")]
        return scope.columns[name]

    def constant(self, value: Any, kind: str, where: str) -> Any:
        ok = {
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "datetime": isinstance(value, str),
        }[kind]
        if not ok:
            raise self.fail(where, f"constant {value!r} does not fit a {kind} column")
        return value

    def table(self, name: Any, where: str) -> _Scope:
        if name not in TABLES:
            raise self.fail(where, f"unknown table {name!r} (known: {', '.join(TABLES)})")
        return _Scope({c: _kind(t) for c, t in TABLES[name].dtypes.items()}, where_am_i=f"table {name}")

    def join(self, node: Any, related: _Scope, subject: _Scope, where: str) -> tuple[str, str]:
        if isinstance(node, str):
            rel, sub = node, node
        else:
            spec = self.mapping(node, f"{where}.join", ("related", "subject"))
            rel, sub = spec["related"], spec["subject"]
        self.column(rel, related, f"{where}.join")
        self.column(sub, subject, f"{where}.join")
        return rel, sub

    # ------------------------------------------------------------------ criteria
    def criterion(self, node: Any, scope: _Scope, where: str, populations: set[m.Population]) -> m.Criterion:
        if isinstance(node, list):
            return m.AllOf(tuple(self.criterion(c, scope, f"{where}[{i}]", populations) for i, c in enumerate(node)))
        if not isinstance(node, dict) or len(node) != 1:
            raise self.fail(where, f"a criterion is a mapping with exactly one of: {', '.join(CRITERIA)}")
        ((kind, arg),) = node.items()
        here = f"{where}.{kind}"
        if kind not in CRITERIA:
            raise self.fail(where, f"unknown criterion type {kind!r} (known: {', '.join(CRITERIA)})")
        if kind in ("all", "any"):
            if not isinstance(arg, list):
                raise self.fail(here, "expected a list of criteria")
            items = tuple(self.criterion(c, scope, f"{here}[{i}]", populations) for i, c in enumerate(arg))
            return m.AllOf(items) if kind == "all" else m.AnyOf(items)
        if kind == "not":
            return m.Not(self.criterion(arg, scope, here, populations))
        if kind == "population":
            if scope.subject is not None:
                raise self.fail(here, "population references are only allowed at subject level")
            pop = self.enum(m.Population, arg, here)
            if pop not in populations:
                raise self.fail(here, f"population {arg!r} is not defined before this one")
            return m.PopulationRef(pop)
        if kind in ("in_period", "is_null", "not_null"):
            kinds = ("datetime",) if kind == "in_period" else ()
            col = self.column(arg, scope, here, kinds)
            if kind == "in_period":
                return m.InPeriod(col)
            return m.IsNull(col) if kind == "is_null" else m.NotNull(col)
        if kind in ("overlaps_period", "open_at_period_end"):
            spec = self.mapping(arg, here, ("start", "end"))
            span = m.OverlapsPeriod if kind == "overlaps_period" else m.OpenAtPeriodEnd
            return span(
                self.column(spec["start"], scope, here, ("datetime",)),
                self.column(spec["end"], scope, here, ("datetime",)),
            )
        if kind == "overdue_at_period_end":
            spec = self.mapping(arg, here, ("start", "days", "by"))
            days = spec["days"]
            if not isinstance(days, int) or isinstance(days, bool) or days < 0:
                raise self.fail(here, "days must be a whole number of days, 0 or more")
            by = self.enum(m.DayCount, spec["by"], here)
            if by is m.DayCount.ELAPSED:
                raise self.fail(here, "a deadline is counted in calendar or working days")
            return m.OverdueAtPeriodEnd(self.column(spec["start"], scope, here, ("datetime",)), days, by)
        if kind == "equals":
            spec = self.mapping(arg, here, ("column", "value"))
            col = self.column(spec["column"], scope, here)
            return m.Equals(col, self.constant(spec["value"], self.kind_of(col, scope), here))
        if kind == "in":
            spec = self.mapping(arg, here, ("column", "values"))
            col = self.column(spec["column"], scope, here)
            if not isinstance(spec["values"], list) or not spec["values"]:
                raise self.fail(here, "values must be a non-empty list")
            k = self.kind_of(col, scope)
            return m.OneOf(col, tuple(self.constant(v, k, here) for v in spec["values"]))
        if kind == "compare":
            spec = self.mapping(arg, here, ("column", "op"), ("value", "other"))
            col = self.column(spec["column"], scope, here)
            op = spec["op"]
            if op not in m.OPERATORS:
                raise self.fail(here, f"op {op!r} is not one of {' | '.join(m.OPERATORS)}")
            k = self.kind_of(col, scope)
            if op not in ("eq", "ne") and k not in ("number", "datetime"):
                raise self.fail(here, f"op {op} needs a number or datetime column; {col!r} is {k}")
            if ("value" in spec) == ("other" in spec):
                raise self.fail(here, "give exactly one of value (a constant) or other (a column)")
            if "other" in spec:
                other = self.column(spec["other"], scope, here, (k,))
                return m.Compare(col, op, other=other)
            return m.Compare(col, op, value=self.constant(spec["value"], k, here))
        if kind == "in_valueset":
            spec = (
                {"valueset": arg}
                if isinstance(arg, str)
                else self.mapping(arg, here, ("valueset",), ("code", "system"))
            )
            ref = self.text(spec["valueset"], here)
            code = self.column(spec.get("code", "code"), scope, here, ("string",))
            system = self.column(spec.get("system", "code_system"), scope, here, ("string",))
            if self.valuesets is not None:
                try:
                    self.valuesets.get(ref)
                except ValueSetError as exc:
                    raise self.fail(here, f"{exc} (looked in indicators/valuesets and extra folders)") from exc
            return m.InValueSet(ref, code, system)
        if kind == "days_between":
            spec = self.mapping(arg, here, ("start", "end", "by"), ("min", "max"))
            start = self.column(spec["start"], scope, here, ("datetime",))
            end = self.column(spec["end"], scope, here, ("datetime",))
            by = self.enum(m.DayCount, spec["by"], f"{here}.by")
            lo = self.number(spec["min"], f"{here}.min") if "min" in spec else None
            hi = self.number(spec["max"], f"{here}.max") if "max" in spec else None
            if lo is None and hi is None:
                raise self.fail(here, "give min and/or max")
            return m.DaysBetween(start, end, by, lo, hi)
        # exists
        if scope.subject is not None:
            raise self.fail(here, "exists cannot be nested inside exists")
        spec = self.mapping(arg, here, ("table", "join"), ("where",))
        related = self.table(spec["table"], f"{here}.table")
        related.subject = scope
        rel, sub = self.join(spec["join"], related, scope, here)
        where_node = spec.get("where", [])
        where_list = where_node if isinstance(where_node, list) else [where_node]
        items = tuple(self.criterion(c, related, f"{here}.where[{i}]", populations) for i, c in enumerate(where_list))
        return m.Exists(spec["table"], rel, sub, items)

    # --------------------------------------------------------------- derivations
    def derivation(self, name: str, node: Any, scope: _Scope) -> tuple[m.Derivation, str]:
        where = f"derive.{name}"
        if not isinstance(node, dict) or len(node) != 1:
            raise self.fail(where, f"a derivation is a mapping with exactly one of: {', '.join(DERIVATIONS)}")
        ((kind, arg),) = node.items()
        here = f"{where}.{kind}"
        if kind == "days_between":
            spec = self.mapping(arg, here, ("start", "end", "by"), ("minimum",))
            mn = self.number(spec["minimum"], f"{here}.minimum") if "minimum" in spec else None
            return m.DeriveDays(
                self.column(spec["start"], scope, here, ("datetime",)),
                self.column(spec["end"], scope, here, ("datetime",)),
                self.enum(m.DayCount, spec["by"], f"{here}.by"),
                mn,
            ), "number"
        if kind == "days_in_period":
            spec = self.mapping(arg, here, ("start", "end"))
            return m.DeriveDaysInPeriod(
                self.column(spec["start"], scope, here, ("datetime",)),
                self.column(spec["end"], scope, here, ("datetime",)),
            ), "number"
        if kind == "years_between":
            spec = self.mapping(arg, here, ("start", "end"))
            return m.DeriveYears(
                self.column(spec["start"], scope, here, ("datetime",)),
                self.column(spec["end"], scope, here, ("datetime",)),
            ), "number"
        if kind == "lookup":
            spec = self.mapping(arg, here, ("table", "join", "column"))
            related = self.table(spec["table"], f"{here}.table")
            rel, sub = self.join(spec["join"], related, scope, here)
            col = self.column(spec["column"], related, here)
            return m.DeriveLookup(spec["table"], rel, sub, col), related.columns[col]
        if kind in ("count", "sum"):
            required = ("table", "join") if kind == "count" else ("table", "join", "column")
            spec = self.mapping(arg, here, required, ("where",))
            related = self.table(spec["table"], f"{here}.table")
            related.subject = scope
            rel, sub = self.join(spec["join"], related, scope, here)
            summed = self.column(spec["column"], related, here, ("number",)) if kind == "sum" else None
            where_node = spec.get("where", [])
            where_list = where_node if isinstance(where_node, list) else [where_node]
            items = tuple(self.criterion(c, related, f"{here}.where[{i}]", set()) for i, c in enumerate(where_list))
            return m.DeriveAggregate(kind, spec["table"], rel, sub, items, summed), "number"
        raise self.fail(where, f"unknown derivation type {kind!r} (known: {', '.join(DERIVATIONS)})")


def _load_functions(py: Path, indicator_id: str) -> dict[str, Any]:
    """Import ``indicators/<id>.py`` under a private module name; return its population functions."""
    spec = importlib.util.spec_from_file_location(f"careqi_indicator_{indicator_id}", py)
    if spec is None or spec.loader is None:
        raise IndicatorDefinitionError(f"{py.name}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is a definition error
        raise IndicatorDefinitionError(f"{py.name}: import failed: {exc}") from exc
    return {p.value: getattr(module, p.value) for p in m.Population if callable(getattr(module, p.value, None))}


def parse_indicator(doc: Any, path: Path, valuesets: ValueSetIndex | None = None) -> m.Indicator:
    """Validate one parsed YAML document and build the :class:`Indicator`."""
    p = _Parser(path, valuesets)
    spec = p.mapping(doc, "top level", REQUIRED_KEYS, sorted(TOP_KEYS - set(REQUIRED_KEYS)))
    ind_id = p.text(spec["id"], "id")
    if not _ID.match(ind_id):
        raise p.fail("id", f"{ind_id!r} must be snake_case (a-z, 0-9, _)")
    if path.suffix in (".yaml", ".yml") and path.stem != ind_id:
        raise p.fail("id", f"{ind_id!r} must match the file name {path.stem!r}")
    scoring = p.enum(m.Scoring, spec["scoring"], "scoring")
    basis = p.enum(m.Basis, spec["basis"], "basis")

    table = BASIS_TABLE[basis]
    subject = _Scope(
        {**{c: _kind(t) for c, t in TABLES[table].dtypes.items()}, **BASIS_EXTRA[basis]},
        where_am_i=f"the {basis.value} subject row",
    )

    derive: dict[str, m.Derivation] = {}
    derive_node = spec.get("derive") or {}
    if not isinstance(derive_node, dict):
        raise p.fail("derive", "expected a mapping of name -> derivation")
    for name, node in derive_node.items():
        if not isinstance(name, str) or not _ID.match(name):
            raise p.fail("derive", f"derived column name {name!r} must be snake_case")
        if name in subject.columns:
            raise p.fail(f"derive.{name}", "clashes with an existing column of the subject row")
        derive[name], subject.columns[name] = p.derivation(name, node, subject)

    functions: dict[str, Any] = {}
    if path.suffix in (".yaml", ".yml") and path.with_suffix(".py").exists():
        functions = _load_functions(path.with_suffix(".py"), ind_id)

    pops_node = spec["populations"]
    if not isinstance(pops_node, dict):
        raise p.fail("populations", "expected a mapping of population -> {sentence, criteria}")
    allowed = m.SCORING_POPULATIONS[scoring]
    for name in pops_node:
        if name not in [a.value for a in allowed]:
            raise p.fail(
                f"populations.{name}",
                f"not a population of a {scoring.value} measure (allowed: {', '.join(a.value for a in allowed)})",
            )
    for req in m.REQUIRED_POPULATIONS[scoring]:
        if req.value not in pops_node:
            raise p.fail("populations", f"missing required population {req.value}")
    extra_fns = set(functions) - set(pops_node)
    if extra_fns:
        raise p.fail("populations", f"{path.with_suffix('.py').name} defines {sorted(extra_fns)} not declared here")

    populations: dict[m.Population, m.PopulationDef] = {}
    for pop in allowed:  # evaluation order, so a population may refer to earlier ones
        if pop.value not in pops_node:
            continue
        where = f"populations.{pop.value}"
        node = p.mapping(pops_node[pop.value], where, ("sentence",), ("criteria",))
        sentence = p.text(node["sentence"], f"{where}.sentence")
        fn = functions.get(pop.value)
        criteria = None
        if "criteria" in node:
            if fn is not None:
                raise p.fail(where, f"has both YAML criteria and a function in {path.with_suffix('.py').name}")
            criteria = p.criterion(node["criteria"], subject, f"{where}.criteria", set(populations))
        elif fn is None and pop not in (m.Population.DENOMINATOR, m.Population.MEASURE_POPULATION):
            raise p.fail(
                where,
                "needs criteria (only denominator / measure_population may default to the initial population)",
            )
        populations[pop] = m.PopulationDef(pop, sentence, criteria, fn)

    def derived_column(key: str, needed: bool) -> str | None:
        if key not in spec:
            if needed:
                raise p.fail(key, f"a {scoring.value} measure must name its {key} (a derived column)")
            return None
        if not needed:
            raise p.fail(key, f"only {'ratio' if key != 'observation' else 'continuous'} measures have {key}")
        return p.column(spec[key], subject, key, ("number",))

    numerator_events = derived_column("numerator_events", scoring is m.Scoring.RATIO)
    denominator_value = derived_column("denominator_value", scoring is m.Scoring.RATIO)
    observation = derived_column("observation", scoring is m.Scoring.CONTINUOUS)
    aggregate = None
    if scoring is m.Scoring.CONTINUOUS:
        if "aggregate" not in spec:
            raise p.fail("aggregate", "a continuous measure must say median, mean or p90")
        aggregate = p.enum(m.Aggregate, spec["aggregate"], "aggregate")
    elif "aggregate" in spec:
        raise p.fail("aggregate", "only continuous measures have an aggregate")

    default_multiplier = 100.0 if scoring is m.Scoring.PROPORTION else 1.0
    multiplier = p.number(spec.get("multiplier", default_multiplier), "multiplier")
    if multiplier <= 0:
        raise p.fail("multiplier", "must be positive")
    target = p.number(spec["target"], "target")
    if scoring is m.Scoring.PROPORTION and not 0 <= target <= 1:
        raise p.fail("target", f"proportion targets are fractions between 0 and 1, got {target}")

    strat = spec.get("stratifiers") or []
    if not isinstance(strat, list) or len(set(strat)) != len(strat):
        raise p.fail("stratifiers", "expected a list of distinct column names")
    for s in strat:
        if s not in STRATIFIABLE:
            raise p.fail("stratifiers", f"{s!r} cannot stratify results (allowed: {', '.join(STRATIFIABLE)})")
    refs = spec.get("references") or []
    if not isinstance(refs, list):
        raise p.fail("references", "expected a list of text")
    cms_id = spec.get("cms_id")
    if cms_id is not None:
        cms_id = p.text(cms_id, "cms_id")
    declared_vs, declared_codes, reads, measure = _declared(p, spec, functions)
    follow_up = None
    if "follow_up" in spec:
        if scoring is m.Scoring.CONTINUOUS:
            raise p.fail("follow_up", "only proportion and ratio measures have a denominator to censor")
        node = p.mapping(spec["follow_up"], "follow_up", ("sentence", "from", "days", "by"))
        days = p.number(node["days"], "follow_up.days")
        if days < 0 or days != int(days):
            raise p.fail("follow_up.days", f"must be a whole number of days, got {days}")
        by = p.enum(m.DayCount, node["by"], "follow_up.by")
        if by is m.DayCount.ELAPSED:
            raise p.fail("follow_up.by", "a deadline is counted in calendar or working days")
        follow_up = m.FollowUp(
            sentence=p.text(node["sentence"], "follow_up.sentence"),
            start=p.column(node["from"], subject, "follow_up.from", ("datetime",)),
            days=int(days),
            by=by,
        )

    spc = _spc(p, spec.get("spc"), scoring)
    risk = None
    if spec.get("risk_adjustment") is not None:
        if scoring is not m.Scoring.PROPORTION or basis is not m.Basis.ENCOUNTER:
            raise p.fail(
                "risk_adjustment", "only proportion measures of encounters are risk-adjusted (a patient outcome)"
            )
        node = p.mapping(spec["risk_adjustment"], "risk_adjustment", ("factors",), ("reference_months",))
        factors = node["factors"]
        if not isinstance(factors, list) or not factors or any(f not in m.RISK_FACTORS for f in factors):
            raise p.fail("risk_adjustment.factors", f"a list drawn from {', '.join(m.RISK_FACTORS)}")
        months = p.number(node.get("reference_months", 12), "risk_adjustment.reference_months")
        if months < 1 or not float(months).is_integer():
            raise p.fail("risk_adjustment.reference_months", "a whole number of months, at least 1")
        risk = m.RiskAdjustment(factors=tuple(factors), reference_months=int(months))

    return m.Indicator(
        id=ind_id,
        title=p.text(spec["title"], "title"),
        description=p.text(spec["description"], "description"),
        domain=p.enum(m.Domain, spec["domain"], "domain"),
        owner=p.text(spec["owner"], "owner"),
        scoring=scoring,
        basis=basis,
        improvement=p.enum(m.Improvement, spec["improvement"], "improvement"),
        target=target,
        unit=p.text(spec["unit"], "unit"),
        multiplier=multiplier,
        grain=p.text(spec["grain"], "grain"),
        populations=populations,
        stratifiers=tuple(strat),
        aggregate=aggregate,
        cms_id=cms_id,
        references=tuple(p.text(r, f"references[{i}]") for i, r in enumerate(refs)),
        derive=derive,
        numerator_events=numerator_events,
        denominator_value=denominator_value,
        observation=observation,
        follow_up=follow_up,
        spc=spc,
        risk_adjustment=risk,
        declared_valuesets=declared_vs,
        declared_codes=declared_codes,
        reads=reads,
        measure_url=measure[0],
        measure_version=measure[1],
        source=path,
    )


def _spc(p: _Parser, node: Any, scoring: m.Scoring) -> m.SpcSpec:
    """The ``spc`` key: checked against the SPC module's own vocabulary."""
    from pipelines.analyse.spc import ChartType, RuleSet

    if node is None:
        return m.SpcSpec()
    spec = p.mapping(node, "spc", (), ("chart", "rules", "baseline_months"))
    chart = spec.get("chart")
    if chart is not None:
        try:
            chart = ChartType(chart).value
        except ValueError:
            raise p.fail("spc.chart", f"{chart!r} is not one of {', '.join(c.value for c in ChartType)}") from None
        fits = {
            m.Scoring.PROPORTION: {"p", "p_prime"},
            m.Scoring.RATIO: {"u", "u_prime"},
            m.Scoring.CONTINUOUS: {"xmr"},
        }[scoring]
        if chart not in fits:
            raise p.fail("spc.chart", f"a {scoring.value} measure is charted as {' or '.join(sorted(fits))}")
    try:
        RuleSet.parse(spec.get("rules"))
    except ValueError as exc:
        raise p.fail("spc.rules", str(exc)) from None
    months = spec.get("baseline_months")
    if months is not None:
        value = p.number(months, "spc.baseline_months")
        if value < 2 or not float(value).is_integer():
            raise p.fail("spc.baseline_months", "a whole number of months, at least 2")
        months = int(value)
    return m.SpcSpec(chart=chart, rules=spec.get("rules"), baseline_months=months)


def _declared(
    p: _Parser, spec: dict, functions: dict[str, Any]
) -> tuple[dict[str, str], dict[str, tuple[str, str]], tuple[str, ...], tuple[str | None, str | None]]:
    """The declarations an indicator with population functions makes about itself:
    ``valuesets`` (name -> canonical), ``codes`` (name -> {system, code}), ``reads`` (the
    tables its functions read: only those are loaded) and ``measure`` ({url, version} of
    the canonical Measure it implements). Value sets are checked when they are loaded."""
    valuesets: dict[str, str] = {}
    vs_node = spec.get("valuesets") or {}
    if not isinstance(vs_node, dict):
        raise p.fail("valuesets", "expected a mapping of value set name -> canonical URL")
    for name, url in vs_node.items():
        where = f"valuesets.{name}"
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "urn:oid:")):
            raise p.fail(where, f"expected a canonical URL, got {url!r}")
        valuesets[p.text(name, where)] = url
    codes: dict[str, tuple[str, str]] = {}
    codes_node = spec.get("codes") or {}
    if not isinstance(codes_node, dict):
        raise p.fail("codes", "expected a mapping of code name -> {system, code}")
    for name, node in codes_node.items():
        where = f"codes.{name}"
        c = p.mapping(node, where, ("system", "code"))
        codes[p.text(name, where)] = (p.text(c["system"], f"{where}.system"), str(c["code"]).strip())
    reads_node = spec.get("reads") or []
    if not isinstance(reads_node, list) or not all(isinstance(t, str) for t in reads_node):
        raise p.fail("reads", "expected a list of table names")
    unknown = sorted(set(reads_node) - set(TABLES))
    if unknown:
        raise p.fail("reads", f"unknown table(s) {', '.join(unknown)} (known: {', '.join(TABLES)})")
    if functions and not reads_node:
        raise p.fail("reads", "an indicator with population functions must list the tables they read")
    if not functions and reads_node:
        raise p.fail("reads", "only population functions need reads: criteria name their tables themselves")
    url = version = None
    if "measure" in spec:
        node = p.mapping(spec["measure"], "measure", ("url",), ("version",))
        url = p.text(node["url"], "measure.url")
        if not url.startswith(("http://", "https://")):
            raise p.fail("measure.url", f"expected the canonical URL of a Measure, got {url!r}")
        version = p.text(str(node["version"]), "measure.version") if "version" in node else None
    return valuesets, codes, tuple(reads_node), (url, version)


def load_indicator_file(path: Path, valuesets: ValueSetIndex | None = None) -> m.Indicator:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise IndicatorDefinitionError(f"{path.name}: cannot be read as YAML: {exc}") from exc
    return parse_indicator(doc, path, valuesets)


def load_indicators(indicators_dir: Path, valueset_dirs: Sequence[Path] = ()) -> list[m.Indicator]:
    """Every ``<indicators_dir>/*.yaml``, validated, sorted by id.

    ``<indicators_dir>/valuesets`` is always searched for value sets, plus ``valueset_dirs``;
    a value set named by an indicator but found nowhere is a definition error.
    """
    indicators_dir = Path(indicators_dir)
    if not indicators_dir.is_dir():
        raise IndicatorDefinitionError(f"indicator folder {indicators_dir} does not exist")
    own = indicators_dir / "valuesets"
    dirs = [own] if own.is_dir() else []
    dirs += [Path(d) for d in valueset_dirs if Path(d).resolve() != own.resolve()]
    try:
        index = load_valuesets(dirs)
    except ValueSetError as exc:
        raise IndicatorDefinitionError(f"value sets for {indicators_dir}: {exc}") from exc
    files = sorted([*indicators_dir.glob("*.yaml"), *indicators_dir.glob("*.yml")])
    found: dict[str, m.Indicator] = {}
    for path in files:
        ind = load_indicator_file(path, index)
        if ind.id in found:
            raise IndicatorDefinitionError(f"{path.name}: id {ind.id!r} also used by {found[ind.id].source}")
        found[ind.id] = ind
    orphans = [py.name for py in indicators_dir.glob("*.py") if py.stem not in found and py.stem != "__init__"]
    if orphans:
        raise IndicatorDefinitionError(f"{', '.join(orphans)}: no matching indicator YAML file")
    log.info("loaded %d indicators from %s", len(found), indicators_dir)
    return [found[k] for k in sorted(found)]


def index_by_id(indicators: Sequence[m.Indicator]) -> Mapping[str, m.Indicator]:
    return {i.id: i for i in indicators}


__all__ = [
    "BASIS_EXTRA",
    "BASIS_TABLE",
    "STRATIFIABLE",
    "index_by_id",
    "load_indicator_file",
    "load_indicators",
    "parse_indicator",
]
