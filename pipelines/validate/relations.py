"""Checks that look beyond one row: references that must resolve, dates that must
follow another record's date, durations that must be plausible.

Great Expectations checks one table at a time, so these are declared beside the GX
expectations, in the same suite file, under ``meta.relations`` (checks as data, in
the spirit of OHDSI DQD's relational and temporal plausibility checks), in a small
closed vocabulary:

``reference``  ``{"column": "patient_id", "table": "patients"}``: a non-null value must
               be the id of a record of ``table`` delivered in this batch (accepted or
               quarantined: the record exists, even if it is faulty) or held in the
               warehouse from an earlier batch.
``not_before`` ``{"column": "start_at", "table": "patients", "via": "patient_id",
               "other": "birth_date"}``: the row's date must not be before the date in
               ``other`` of the record ``via`` points at (compared as calendar days).
``duration``   ``{"start": "start_at", "end": "end_at", "max_days": 365}``: at most
               ``max_days`` from start to end.

Each carries a plain-language ``description`` and a Kahn ``category`` like every
expectation; a failing row is quarantined with that description as its reason and
the check is reported in the same checks table. The warehouse is reached through a
:data:`Lookup` handed in by the stage (I/O stays at the edge): only the ids a batch
does not deliver itself are looked up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.errors import ConfigError
from pipelines.tables import TABLES, TS, TableSpec

#: (table, ids, columns) -> frame with the key column and ``columns``, latest delivery
#: per id, for the ids the warehouse holds.
Lookup = Callable[[str, Sequence[str], Sequence[str]], pd.DataFrame]

KINDS = ("reference", "not_before", "duration")
#: The data-quality dimension every check (suite expectation or relation) is filed under.
CATEGORIES = ("conformance", "completeness", "plausibility", "uniqueness")


@dataclass(frozen=True)
class Relation:
    kind: str
    description: str
    category: str
    column: str = ""
    table: str = ""
    via: str = ""
    other: str = ""
    start: str = ""
    end: str = ""
    max_days: float = 0.0

    @property
    def name(self) -> str:
        """The check's identity in quarantine reasons and the checks table."""
        if self.kind == "reference":
            return f"reference({self.column} -> {self.table})"
        if self.kind == "not_before":
            return f"not_before({self.column}, {self.table}.{self.other} via {self.via})"
        return f"duration({self.start}, {self.end}) <= {self.max_days:g} days"

    @property
    def columns(self) -> list[str]:
        if self.kind == "reference":
            return [self.column]
        if self.kind == "not_before":
            return [self.column, self.via]
        return [self.start, self.end]


def parse_relations(items: Any, spec: TableSpec, where: str) -> list[Relation]:
    """``meta.relations`` of a suite file, checked strictly (a typo must not validate less)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(f"{where}: meta.relations must be a list")
    out: list[Relation] = []
    allowed = {
        "reference": {"column", "table"},
        "not_before": {"column", "table", "via", "other"},
        "duration": {"start", "end", "max_days"},
    }
    for i, item in enumerate(items, 1):
        at = f"{where}, relation #{i}"
        if not isinstance(item, dict):
            raise ConfigError(f"{at}: expected an object")
        kind = item.get("check")
        if kind not in KINDS:
            raise ConfigError(f"{at}: check must be one of {', '.join(KINDS)}, got {kind!r}")
        fields = set(item) - {"check", "description", "category"}
        if fields != allowed[kind]:
            raise ConfigError(f"{at}: a {kind} check takes {sorted(allowed[kind])}, got {sorted(fields)}")
        description = item.get("description")
        if not isinstance(description, str) or not description.strip() or "; " in description:
            raise ConfigError(f"{at}: a plain-language description (without '; ') is required")
        if item.get("category") not in CATEGORIES:
            raise ConfigError(f"{at}: category must be one of {', '.join(CATEGORIES)}")
        relation = Relation(
            kind=kind,
            description=description,
            category=item["category"],
            column=item.get("column", ""),
            table=item.get("table", ""),
            via=item.get("via", ""),
            other=item.get("other", ""),
            start=item.get("start", ""),
            end=item.get("end", ""),
            max_days=float(item.get("max_days", 0)),
        )
        for col in relation.columns:
            if col not in spec.column_names:
                raise ConfigError(f"{at}: table {spec.name} has no column {col!r}")
        if kind in ("reference", "not_before"):
            if relation.table not in TABLES:
                raise ConfigError(f"{at}: no table {relation.table!r} in pipelines.tables")
            if kind == "not_before" and relation.other not in TABLES[relation.table].column_names:
                raise ConfigError(f"{at}: table {relation.table} has no column {relation.other!r}")
        if kind == "duration" and relation.max_days <= 0:
            raise ConfigError(f"{at}: max_days must be positive")
        for col in (relation.column if kind == "not_before" else "", relation.start, relation.end):
            if col and spec.dtypes[col] != TS:
                raise ConfigError(f"{at}: {col} is not a timestamp column")
        out.append(relation)
    return out


@dataclass
class Delivered:
    """What this batch delivered, for resolving references before asking the warehouse:
    every table's frame (as extracted) and the ids of records quarantined at extraction.
    ``valid`` holds tables already validated: a value another row is compared with (a
    birth date) comes from a record that passed its own checks, so one faulty Patient
    does not condemn its encounters too."""

    tables: Mapping[str, pd.DataFrame]
    quarantined_ids: Mapping[str, set[str]]
    lookup: Lookup | None = None
    valid: dict[str, pd.DataFrame] = field(default_factory=dict)

    def can_resolve(self, table: str) -> bool:
        """References into ``table`` can be judged only when it is part of the delivery
        (validating a few tables on their own proves nothing about the others) or the
        warehouse can be asked."""
        return table in self.tables or self.lookup is not None

    def known_ids(self, table: str, ids: pd.Index) -> set[str]:
        key = TABLES[table].key
        frame = self.tables.get(table)
        here = set(frame[key].dropna().astype(str)) if frame is not None and len(frame) else set()
        here |= self.quarantined_ids.get(table, set())
        found = {i for i in ids if i in here}
        rest = [i for i in ids if i not in here]
        if rest and self.lookup is not None:
            held = self.lookup(table, rest, [])
            found |= set(held[key].astype(str)) if len(held) else set()
        return found

    def values(self, table: str, ids: pd.Index, column: str) -> pd.Series:
        """``column`` of each id's record (this batch first, then the warehouse)."""
        key = TABLES[table].key
        frame = self.valid.get(table, self.tables.get(table))
        out = pd.Series(pd.NaT, index=pd.Index(ids, dtype=object), dtype=TS)
        if frame is not None and len(frame):
            mine = frame.dropna(subset=[key]).drop_duplicates(key, keep="first").set_index(key)[column]
            mine.index = mine.index.astype(str)
            hit = out.index.isin(mine.index)
            out[hit] = mine.reindex(out.index[hit]).to_numpy()
        rest = [i for i in out.index[out.isna()]]
        if rest and self.lookup is not None:
            held = self.lookup(table, rest, [column])
            if len(held):
                held = held.drop_duplicates(key, keep="last").set_index(held[key].astype(str))[column]
                hit = out.index.isin(held.index)
                out[hit] = held.reindex(out.index[hit]).to_numpy()
        return out


def evaluate(relation: Relation, df: pd.DataFrame, delivered: Delivered) -> np.ndarray:
    """Row positions of ``df`` that break ``relation`` (sorted)."""
    if not len(df):
        return np.array([], dtype=np.int64)
    if relation.kind == "reference":
        values = df[relation.column].astype("string")
        present = values.notna().to_numpy(dtype=bool)
        ids = pd.Index(values[present].unique().astype(str))
        known = delivered.known_ids(relation.table, ids)
        bad = present & ~values.isin(known).to_numpy(dtype=bool, na_value=False)
        return np.flatnonzero(bad)
    if relation.kind == "not_before":
        via = df[relation.via].astype("string")
        ids = pd.Index(via.dropna().unique().astype(str))
        other = delivered.values(relation.table, ids, relation.other)
        theirs = via.map(other).to_numpy(dtype="datetime64[us]")
        mine = df[relation.column].to_numpy(dtype="datetime64[us]")
        ok = ~(np.isnat(theirs) | np.isnat(mine))
        bad = np.zeros(len(df), dtype=bool)
        bad[ok] = mine[ok].astype("datetime64[D]") < theirs[ok].astype("datetime64[D]")
        return np.flatnonzero(bad)
    start = df[relation.start].to_numpy(dtype="datetime64[us]")
    end = df[relation.end].to_numpy(dtype="datetime64[us]")
    ok = ~(np.isnat(start) | np.isnat(end))
    bad = np.zeros(len(df), dtype=bool)
    days = (end[ok] - start[ok]).astype("timedelta64[us]").astype(np.float64) / 86_400e6
    bad[ok] = days > relation.max_days
    return np.flatnonzero(bad)


__all__ = ["CATEGORIES", "KINDS", "Delivered", "Lookup", "Relation", "evaluate", "parse_relations"]
