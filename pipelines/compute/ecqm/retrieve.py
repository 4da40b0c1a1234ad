"""CQL retrieves by value set or code, over every coding of a record.

CQL's ``in`` on a CodeableConcept is true when ANY of its codings is in the set. The tidy
tables keep each record's first coding in its own columns; the ``codings`` table keeps
them all (named by FHIR element, ``codings.element``). A record matches when its own
coding matches or any of its codings of the element does. Where the contract keeps a
code without a system (route, an observation's value), that column is matched on the
code alone.

Value sets and direct-reference codes are named as the CQL names them; the indicator's
YAML declares what each name is (:class:`~pipelines.compute.valuesets.DeclaredValueSets`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NamedTuple, TypeVar, cast

import numpy as np
import pandas as pd

from pipelines.compute.ecqm.columns import isin, strs
from pipelines.compute.valuesets import CodedColumn, DeclaredValueSets, coding_keys
from pipelines.tables import TABLES, coding_record_keys, record_keys

#: ``codings.element`` names under which each coded element may arrive: the extractor
#: names elements after FHIR (``children.CODED_ELEMENTS``); the aliases keep the logic
#: independent of how a feed spells nested elements.
ELEMENTS: dict[str, tuple[str, ...]] = {
    "code": ("code",),
    "medication": ("code", "medication", "medicationCodeableConcept"),
    "request": ("code", "codeCodeableConcept"),
    "type": ("type",),
    "reason": ("reasonCode", "reason"),
    "route": ("route", "dosage.route", "dosageInstruction.route"),
    "status_reason": ("statusReason", "status_reason"),
    "refused": ("reasonRefused", "doNotPerformReason", "reasonCode", "reason"),
    "value": ("value", "valueCodeableConcept"),
    "diagnosis": ("diagnosis", "code", "diagnosisCodeableConcept"),
    "procedure": ("procedure", "code", "procedureCodeableConcept"),
    "event": ("event", "code"),
    "disposition": ("dischargeDisposition", "hospitalization.dischargeDisposition"),
}
#: The element a retrieve of each table matches by default (CQL's code path).
DEFAULT_ELEMENT: dict[str, str] = {
    "encounters": "type",
    "medications": "medication",
    "requests": "request",
    "locations": "type",
    "claim_diagnoses": "diagnosis",
    "claim_procedures": "procedure",
    "adverse_events": "event",
}
#: A table's own columns holding the first coding of its default element (code, system).
OWN_CODING: dict[str, tuple[str, str]] = {
    "encounters": ("type_code", "type_system"),
    "locations": ("kind_code", "kind_system"),
}
#: Own coding: (code column, system column); system None means the code alone.
Own = tuple[str, str | None] | None


T = TypeVar("T")

#: What a retrieve matches: ("vs", value-set names) or ("code", (system, code) pairs).
Spec = tuple[Literal["vs", "code"], tuple]


class _Codings(NamedTuple):
    """The codings of one element of one table: their rows in ``codings`` and the number
    of each one's (system, code) among the distinct values of the whole table."""

    rows: np.ndarray
    ids: np.ndarray


class Retrieve:
    """One evaluation's access to the read model, indexed once for all its retrieves.

    An evaluation (one month of one patient shard) asks dozens of retrieves of the same
    tables, across the populations of a measure. What they share is built on first use
    and kept for the evaluation: the (system, code) of every ``codings`` row numbered once
    (:class:`~pipelines.compute.valuesets.CodedColumn`) and its rows grouped by integer-
    coded (table, element), so a value set costs one test per distinct code and a gather
    per coding; the same numbering of each whole table's own code columns; each whole
    table's record keys; the record keys each (element, value sets) matches; and the
    answer of each retrieve over a whole table. A retrieve over a subset of a table (a
    frame derived from it) matches that frame's own columns directly and its codings
    through the shared record keys.
    """

    def __init__(self, data: Mapping[str, pd.DataFrame], valuesets: DeclaredValueSets) -> None:
        self.data = data
        self.vs = valuesets
        self._index: tuple[CodedColumn, CodedColumn] | None = None
        self._codings: dict[tuple[str, tuple[str, ...]], _Codings] = {}
        self._coding_frames: dict[tuple[str, tuple[str, ...]], pd.DataFrame] = {}
        self._members: dict[Spec, np.ndarray] = {}
        self._own: dict[tuple[str, str, str | None], CodedColumn] = {}
        self._record_keys: dict[tuple[str, str | None], pd.Series] = {}
        self._wanted: dict[tuple[Spec, bool], frozenset[str]] = {}
        self._keys: dict[tuple[str, tuple[str, ...], Spec], np.ndarray] = {}
        self._hits: dict[tuple[object, ...], np.ndarray] = {}
        self._ids: dict[tuple[object, ...], np.ndarray] = {}
        self._positions: dict[str, pd.Index] = {}
        self._facts: dict[str, tuple[pd.Index, np.ndarray | None]] = {}
        self._once: dict[str, object] = {}

    def table(self, name: str) -> pd.DataFrame:
        """One row per record (the data is a read-model snapshot)."""
        return self.data[name]

    def lookup(self, table: str, keys: pd.Series, column: str) -> pd.Series:
        """``column`` of the record of ``table`` that each key names (missing where none):
        a left join on the table's id, whose ids are hashed once per evaluation. Only for
        tables of one resource type, where the id alone names a record."""
        if TABLES[table].type_column is not None:
            raise ValueError(f"{table} holds several resource types: its id alone names no record")
        if table not in self._positions:
            self._positions[table] = pd.Index(strs(self.table(table)[TABLES[table].key]))
        rows = self._positions[table].get_indexer(strs(keys))
        return pd.Series(self.table(table)[column].array.take(rows, allow_fill=True))

    def once(self, name: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per evaluation: a selection of whole tables (active claims,
        administrations) that several populations of a measure start from. It must read
        nothing but the tables."""
        if name not in self._once:
            self._once[name] = compute()
        return cast(T, self._once[name])

    def per_record(
        self, fact: str, frame: pd.DataFrame, key: str, compute: Callable[[pd.DataFrame], np.ndarray]
    ) -> np.ndarray:
        """``compute(frame)`` with each record (by ``key``) computed once per evaluation.

        A measure's populations ask the same facts of the same encounters (the start of
        each one's hospitalization, a present-on-admission diagnosis): the initial
        population of all candidates, the later populations of the subjects it kept.
        ``compute`` must answer row by row, each row from its own record alone, so that
        an answer kept from an earlier call is the answer now.
        """
        keys = strs(frame[key]).reset_index(drop=True)
        if keys.empty or keys.isna().any() or keys.duplicated().any():  # only records named once are kept
            return np.asarray(compute(frame.reset_index(drop=True)))
        known, values = self._facts.get(fact, (pd.Index([], dtype="string"), None))
        rows = known.get_indexer(keys)
        missing = rows < 0
        if missing.any():
            found = np.asarray(compute(frame[missing].reset_index(drop=True)))
            values = found if values is None else np.concatenate([values, found])
            known = known.append(pd.Index(keys[missing]))
            self._facts[fact] = (known, values)
            rows = known.get_indexer(keys)
        assert values is not None
        return values[rows]

    # ------------------------------------------------------------------ indices
    def _codings_index(self) -> tuple[CodedColumn, CodedColumn]:
        """One pass over ``codings``: each row's (table, element) and (system, code), numbered."""
        if self._index is None:
            c = self.table("codings")
            self._index = (CodedColumn(c["element"], c["table_name"]), CodedColumn(c["code"], c["system"]))
        return self._index

    def _coded(self, table: str, element: str) -> _Codings:
        aliases = ELEMENTS.get(element, (element,))
        if (table, aliases) not in self._codings:
            groups, coded = self._codings_index()
            rows = np.flatnonzero(groups.isin(coding_keys((table, alias) for alias in aliases)))
            self._codings[(table, aliases)] = _Codings(rows, coded.ids[rows])
        return self._codings[(table, aliases)]

    def codings(self, table: str, element: str) -> pd.DataFrame:
        """``key`` (the record's :func:`tables.record_keys`), ``record_id``, ``system`` and
        ``code`` of every coding of ``element`` of ``table``'s records."""
        aliases = ELEMENTS.get(element, (element,))
        if (table, aliases) not in self._coding_frames:
            c = self.table("codings").iloc[self._coded(table, element).rows]
            self._coding_frames[(table, aliases)] = pd.DataFrame(
                {
                    "key": strs(coding_record_keys(c)),
                    "record_id": strs(c["record_id"]),
                    "system": strs(c["system"]),
                    "code": strs(c["code"]),
                }
            ).reset_index(drop=True)
        return self._coding_frames[(table, aliases)]

    def _own_coded(self, table: str, code: str, system: str | None) -> CodedColumn:
        """A whole table's own coding columns, numbered once."""
        if (table, code, system) not in self._own:
            frame = self.table(table)
            self._own[(table, code, system)] = CodedColumn(frame[code], None if system is None else frame[system])
        return self._own[(table, code, system)]

    def _table_keys(self, table: str, key: str | None) -> pd.Series:
        """A whole table's :func:`tables.record_keys`, built once."""
        if (table, key) not in self._record_keys:
            self._record_keys[(table, key)] = record_keys(table, self.table(table), key)
        return self._record_keys[(table, key)]

    def _wanted_values(self, spec: Spec, paired: bool) -> frozenset[str]:
        """What ``spec`` matches: joined (system, code) keys, or codes alone (``paired``
        False, for columns the contract keeps without a system)."""
        if (spec, paired) not in self._wanted:
            kind, items = spec
            if kind == "vs" and paired:
                wanted = frozenset().union(*(self.vs.keys(name) for name in items))
            else:
                pairs = [p for name in items for p in self.vs.codes(name)] if kind == "vs" else list(items)
                wanted = coding_keys(pairs) if paired else frozenset(c for _, c in pairs)
            self._wanted[(spec, paired)] = wanted
        return self._wanted[(spec, paired)]

    def _keys_matching(self, table: str, element: str, spec: Spec) -> np.ndarray:
        """Record keys of ``table`` with a coding of ``element`` that ``spec`` matches: the
        codings are matched by number, and only the matching ones are turned into keys."""
        aliases = ELEMENTS.get(element, (element,))
        if (table, aliases, spec) not in self._keys:
            if spec not in self._members:
                self._members[spec] = self._codings_index()[1].member(self._wanted_values(spec, paired=True))
            c = self._coded(table, element)
            rows = c.rows[self._members[spec][c.ids]]
            if len(rows) == 0:
                self._keys[(table, aliases, spec)] = np.array([], dtype=object)
            else:
                codings = self.table("codings")
                matched = pd.DataFrame({col: codings[col].iloc[rows] for col in ("record_id", "record_type")})
                self._keys[(table, aliases, spec)] = strs(coding_record_keys(matched)).unique()
        return self._keys[(table, aliases, spec)]

    # ------------------------------------------------------------------ value sets
    def keys_in(self, table: str, element: str, names: Iterable[str]) -> np.ndarray:
        """Record keys of ``table`` with a coding of ``element`` in any of the value sets."""
        return self._keys_matching(table, element, ("vs", tuple(names)))

    def in_valueset(
        self,
        frame: pd.DataFrame,
        table: str,
        names: Iterable[str] | str,
        *,
        element: str | None = None,
        own: Own | Literal["default"] = "default",
        key: str | None = None,
    ) -> np.ndarray:
        """Rows of ``frame`` (records of ``table``) whose own coding or any coding of
        ``element`` is in one of the named value sets."""
        names = (names,) if isinstance(names, str) else tuple(names)
        return self._rows(frame, table, element, own, key, ("vs", names))

    def ids_in(self, table: str, names: Iterable[str] | str, **kwargs: object) -> np.ndarray:
        """The record ids of ``table`` in any of the value sets (a retrieve of the table)."""
        names = (names,) if isinstance(names, str) else tuple(names)
        memo = (table, names, tuple(sorted(kwargs.items())))
        if memo not in self._ids:
            frame = self.table(table)
            hit = self.in_valueset(frame, table, names, **kwargs)  # type: ignore[arg-type]
            self._ids[memo] = strs(frame.loc[hit, TABLES[table].key]).dropna().unique()
        return self._ids[memo]

    # ------------------------------------------------------------------ direct codes
    def keys_with(self, table: str, element: str, codes: Iterable[tuple[str, str]]) -> np.ndarray:
        """Record keys of ``table`` with a coding of ``element`` equal to one of ``codes``."""
        return self._keys_matching(table, element, ("code", tuple(codes)))

    def with_code(
        self,
        frame: pd.DataFrame,
        table: str,
        codes: Iterable[tuple[str, str] | str],
        *,
        element: str | None = None,
        own: Own | Literal["default"] = "default",
        key: str | None = None,
    ) -> np.ndarray:
        """Rows whose own coding or any coding of ``element`` is one of ``codes`` (CQL ``~``
        on a direct-reference code); a code may be given by its declared name."""
        pairs = tuple(self.vs.code(c) if isinstance(c, str) else c for c in codes)
        return self._rows(frame, table, element, own, key, ("code", pairs))

    def _rows(
        self,
        frame: pd.DataFrame,
        table: str,
        element: str | None,
        own: Own | Literal["default"],
        key: str | None,
        spec: Spec,
    ) -> np.ndarray:
        """Rows of ``frame`` whose own coding matches ``spec`` (on system and code; on the
        code alone where the contract keeps no system) or whose record has a matching
        coding of ``element``. Over the whole table the answer is kept for the evaluation."""
        element = element or DEFAULT_ELEMENT.get(table, "code")
        mine = _default_own(table, element) if isinstance(own, str) else own
        whole = frame is self.table(table)
        memo = (table, element, mine, key, spec)
        if whole and memo in self._hits:
            return self._hits[memo].copy()
        out = np.zeros(len(frame), dtype=bool)
        if frame.empty:
            return out
        if mine is not None:
            code_col, system_col = mine
            if whole:
                coded = self._own_coded(table, code_col, system_col)
            else:
                coded = CodedColumn(frame[code_col], None if system_col is None else frame[system_col])
            out |= coded.isin(self._wanted_values(spec, paired=system_col is not None))
        keys = self._keys_matching(table, element, spec)
        if len(keys):
            out |= isin(self._table_keys(table, key) if whole else record_keys(table, frame, key), keys)
        if whole:
            self._hits[memo] = out.copy()
        return out


def _default_own(table: str, element: str) -> Own:
    """The table's own first coding stands for its default element only."""
    if element != DEFAULT_ELEMENT.get(table, "code"):
        return None
    return OWN_CODING.get(table, ("code", "code_system"))


def code_mask(system: pd.Series, code: pd.Series, codes: Iterable[tuple[str, str]]) -> np.ndarray:
    """(system, code) of each row equal to one of ``codes``; nulls never match."""
    return CodedColumn(code, system).isin(coding_keys(codes))


__all__ = ["DEFAULT_ELEMENT", "ELEMENTS", "OWN_CODING", "Retrieve", "code_mask"]
