"""What a set of indicators reads: the tables, their columns, and which codings.

The read model (:mod:`pipelines.load.snapshot`) loads only this. An indicator written in
the criteria vocabulary says what it reads by the criteria themselves (every column a
criterion, a derivation or a stratifier names, on the subject's table or on a related
one). An indicator with population functions declares the tables its functions read
(``reads``) and the value sets and direct-reference codes they match (``valuesets``,
``codes``): from ``codings`` only the rows whose (system, code) is in one of those are
kept, since nothing else can ever match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from pipelines.compute import model as m
from pipelines.compute.registry import BASIS_TABLE
from pipelines.compute.valuesets import ValueSetIndex
from pipelines.load.snapshot import Needs
from pipelines.tables import TABLES

#: Subject columns the engine always builds a subject row from (where the table has them).
SUBJECT_COLUMNS = ("patient_id", "facility_id", "ward_id", "service", "organization_id", "encounter_id")


def _on(table: str, columns: Iterable[str]) -> set[str]:
    """The given names that are contract columns of ``table`` (derived names are not read)."""
    names = set(TABLES[table].column_names)
    return {c for c in columns if c in names}


class _Collect:
    def __init__(self) -> None:
        self.columns: dict[str, set[str] | None] = defaultdict(set)

    def add(self, table: str, columns: Iterable[str]) -> None:
        if self.columns.get(table, set()) is None:
            return
        self.columns[table] |= _on(table, columns)  # type: ignore[operator]

    def all_of(self, table: str) -> None:
        self.columns[table] = None

    def criterion(self, c: m.Criterion, table: str) -> None:
        """Columns ``c`` reads on ``table`` (the subject's), and on tables it joins to."""
        self.add(table, m.criterion_columns(c))
        for inner in _exists(c):
            self.related(inner.table, inner.related_key, inner.where, table)
            self.add(table, {inner.subject_key})

    def related(self, related: str, key: str, where: Sequence[m.Criterion], subject_table: str) -> None:
        self.add(related, {key})
        for c in where:
            cols = m.criterion_columns(c)
            self.add(related, {x for x in cols if not x.startswith("subject.")})
            self.add(subject_table, {x.removeprefix("subject.") for x in cols if x.startswith("subject.")})


def _exists(c: m.Criterion) -> list[m.Exists]:
    match c:
        case m.AllOf(items) | m.AnyOf(items):
            return [e for item in items for e in _exists(item)]
        case m.Not(item):
            return _exists(item)
        case m.Exists():
            return [c]
        case _:
            return []


def indicator_columns(indicator: m.Indicator) -> dict[str, set[str] | None]:
    """Table -> columns one indicator reads (None: every contract column)."""
    out = _Collect()
    table = BASIS_TABLE[indicator.basis]
    out.add(table, {TABLES[table].key, *SUBJECT_COLUMNS, *indicator.stratifiers})
    if indicator.basis is m.Basis.SURVEY_RESPONSE:  # the respondent's patient, by the encounter
        out.add("encounters", {"encounter_id", "patient_id"})
    for pop in indicator.populations.values():
        if pop.criteria is not None:
            out.criterion(pop.criteria, table)
    for d in indicator.derive.values():
        match d:
            case m.DeriveDays(start, end) | m.DeriveDaysInPeriod(start, end) | m.DeriveYears(start, end):
                out.add(table, {start, end})
            case m.DeriveLookup(related, related_key, subject_key, column):
                out.add(table, {subject_key})
                out.add(related, {related_key, column})
            case m.DeriveAggregate(_, related, related_key, subject_key, where, column):
                out.add(table, {subject_key})
                out.related(related, related_key, where, table)
                if column:
                    out.add(related, {column})
    if indicator.follow_up is not None:
        out.add(table, {indicator.follow_up.start})
    for name in indicator.reads:  # population functions: the declared tables, whole
        out.all_of(name)
    if any(p.function is not None for p in indicator.populations.values()):
        out.all_of(table)
    return dict(out.columns)


def coding_pairs(indicators: Sequence[m.Indicator], valuesets: ValueSetIndex) -> frozenset[tuple[str, str]] | None:
    """(system, code) of every code the indicators can match in ``codings``: their value
    sets' expansions (those loaded) and their direct-reference codes. None when no
    indicator reads ``codings``."""
    readers = [i for i in indicators if "codings" in i.reads]
    if not readers:
        return None
    pairs: set[tuple[str, str]] = set()
    for ind in readers:
        for url in ind.valuesets:
            if url in valuesets:
                pairs |= valuesets.codes(url)
        pairs |= set(ind.declared_codes.values())
    return frozenset(pairs)


def needs_of(indicators: Sequence[m.Indicator], valuesets: ValueSetIndex) -> Needs:
    """The :class:`Needs` of computing ``indicators`` together."""
    columns: dict[str, set[str] | None] = {}
    for ind in indicators:
        for table, cols in indicator_columns(ind).items():
            if table in columns and columns[table] is None:
                continue
            columns[table] = None if cols is None else (columns.get(table) or set()) | cols
    return Needs(
        columns={t: (None if c is None else frozenset(c)) for t, c in columns.items()},
        codings=coding_pairs(indicators, valuesets),
    )


__all__ = ["SUBJECT_COLUMNS", "coding_pairs", "indicator_columns", "needs_of"]
