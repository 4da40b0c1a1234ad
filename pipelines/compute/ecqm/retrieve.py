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

import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NamedTuple, TypeVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.compute.ecqm.columns import strs
from pipelines.compute.valuesets import CodedColumn, DeclaredValueSets, coding_keys
from pipelines.load.snapshot import Snapshot
from pipelines.strings import arrow_strings, isin
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
_NONE = np.array([], dtype=object)

#: What a retrieve matches: ("vs", value-set names) or ("code", (system, code) pairs).
Spec = tuple[Literal["vs", "code"], tuple]


class _Codings(NamedTuple):
    """The codings of one element of one table: their rows in ``codings``, their (system,
    code) numbered (``coded``), and the table row of each one's record (``row``, -1 where
    the record is not in the table)."""

    rows: np.ndarray
    coded: CodedColumn
    row: np.ndarray


class SnapshotIndex:
    """What every retrieve over one snapshot shares, whichever measure asks: built on
    first use, kept as long as the snapshot (:func:`snapshot_index`).

    A snapshot is one patient shard as of one month; the measures evaluated on it ask
    dozens of retrieves of the same tables. Strings are what cost (a record id, a code):
    each is hashed once here and everything after is integer work. The ``codings`` rows
    of each table are found through the runs in which a delivery writes them; each
    (table, element)'s (system, code) are numbered (:class:`CodedColumn`) so that a
    value set costs one test per distinct code, and its codings are joined to the rows
    of the table once; each table's own code columns are numbered and its record keys
    made once.
    """

    def __init__(self, data: Mapping[str, pd.DataFrame]) -> None:
        self._data = weakref.ref(data) if isinstance(data, Snapshot) else lambda: data
        self._runs: tuple[np.ndarray, list[str | None]] | None = None
        self._elements: dict[str, tuple[np.ndarray, CodedColumn]] = {}
        self._codings: dict[tuple[str, tuple[str, ...]], _Codings] = {}
        self._own: dict[tuple[str, str, str | None], CodedColumn] = {}
        self._record_keys: dict[tuple[str, str | None], pd.Series] = {}
        self._patients: dict[str, np.ndarray] = {}

    @property
    def data(self) -> Mapping[str, pd.DataFrame]:
        """The snapshot (held weakly: the index lives as long as its snapshot, no longer)."""
        data = self._data()
        assert data is not None, "the snapshot of this index is gone"
        return data

    def _table_rows(self, table: str) -> np.ndarray:
        """The ``codings`` rows of ``table``'s records. A delivery writes each table's
        codings together, so the table names come in long runs: finding where they change
        costs one comparison per row, and only the runs' first names are read."""
        if self._runs is None:
            names = arrow_strings(self.data["codings"]["table_name"])
            if len(names) == 0:
                self._runs = (np.zeros(1, dtype=np.int64), [])
            else:
                changes = pc.not_equal(names[1:], names[:-1]).fill_null(True).to_numpy(zero_copy_only=False)
                starts = np.concatenate([[0], np.flatnonzero(changes) + 1, [len(names)]]).astype(np.int64)
                self._runs = (starts, names.take(pa.array(starts[:-1])).to_pylist())
        starts, heads = self._runs
        runs = [np.arange(starts[i], starts[i + 1]) for i, head in enumerate(heads) if head == table]
        return np.concatenate(runs) if runs else np.array([], dtype=np.int64)

    def codings(self, table: str, aliases: tuple[str, ...]) -> _Codings:
        """The codings of one element (any of its ``aliases``) of ``table``; each table's
        element names are numbered once."""
        if (table, aliases) not in self._codings:
            codings = self.data["codings"]
            if table not in self._elements:
                rows = self._table_rows(table)
                self._elements[table] = (rows, CodedColumn(codings["element"].iloc[rows]))
            rows, elements = self._elements[table]
            rows = rows[elements.isin(frozenset(aliases))]
            coded = CodedColumn(codings["code"].iloc[rows], codings["system"].iloc[rows])
            # The one string join from codings to their records: each coding's record key
            # looked up among the table's (a snapshot holds each record once).
            found = pc.index_in(arrow_strings(self.record_keys_of(rows)), value_set=arrow_strings(self.keys(table)))
            row = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
            self._codings[(table, aliases)] = _Codings(rows, coded, row)
        return self._codings[(table, aliases)]

    def own(self, table: str, code: str, system: str | None) -> CodedColumn:
        """A whole table's own coding columns, numbered once."""
        if (table, code, system) not in self._own:
            frame = self.data[table]
            self._own[(table, code, system)] = CodedColumn(frame[code], None if system is None else frame[system])
        return self._own[(table, code, system)]

    def keys(self, table: str, key: str | None = None) -> pd.Series:
        """A whole table's :func:`tables.record_keys`, made once."""
        if (table, key) not in self._record_keys:
            self._record_keys[(table, key)] = record_keys(table, self.data[table], key)
        return self._record_keys[(table, key)]

    def patients(self, table: str) -> np.ndarray:
        """Each row's patient, numbered by its row in ``patients`` (-1: none there): what
        relates records to patients by number ("encounters by patient") from then on."""
        if table not in self._patients:
            ids = arrow_strings(self.data["patients"]["patient_id"])
            found = pc.index_in(arrow_strings(self.data[table]["patient_id"]), value_set=ids)
            self._patients[table] = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return self._patients[table]

    def record_keys_of(self, rows: np.ndarray) -> pd.Series:
        """:func:`tables.coding_record_keys` of the given ``codings`` rows. A coding without
        a record type names its record by id alone, so only typed rows are joined."""
        codings = self.data["codings"]
        keys = strs(codings["record_id"].iloc[rows]).reset_index(drop=True)
        typed = codings["record_type"].iloc[rows].notna().to_numpy(dtype=bool)
        if typed.any():
            both = pd.DataFrame({col: codings[col].iloc[rows[typed]] for col in ("record_id", "record_type")})
            keys[typed] = strs(coding_record_keys(both)).to_numpy()
        return keys


#: The index of each snapshot still in use, by the snapshot's id, dropped when the snapshot
#: is: a snapshot never changes once read, and the measures of one shard are evaluated on
#: the same snapshot one after another.
_INDICES: dict[int, SnapshotIndex] = {}


def snapshot_index(data: Mapping[str, pd.DataFrame]) -> SnapshotIndex:
    """The :class:`SnapshotIndex` of ``data``, shared by every evaluation on the same
    snapshot (frames that are not a snapshot get their own)."""
    if not isinstance(data, Snapshot):
        return SnapshotIndex(data)
    index = _INDICES.get(id(data))
    if index is None or index._data() is not data:
        index = _INDICES[id(data)] = SnapshotIndex(data)
        weakref.finalize(data, _INDICES.pop, id(data), None)
    return index


class Retrieve:
    """One evaluation's access to the read model: retrieves through the snapshot's shared
    :class:`SnapshotIndex`, with what depends on the measure kept for the evaluation.

    The value sets a measure names are its own (its YAML declares what each name is), so
    per evaluation are: the (system, code) each retrieve matches, the answer of each
    retrieve over a whole table, the record keys each one matches (for retrieves over a
    subset of a table, a frame derived from it, which match that frame's own columns
    directly), and the facts a measure's populations share (:meth:`per_record`,
    :meth:`once`).
    """

    def __init__(self, data: Mapping[str, pd.DataFrame], valuesets: DeclaredValueSets) -> None:
        self.data = data
        self.vs = valuesets
        self.index = snapshot_index(data)
        self._coding_frames: dict[tuple[str, tuple[str, ...]], pd.DataFrame] = {}
        self._wanted: dict[tuple[Spec, bool], frozenset[str]] = {}
        self._keys: dict[tuple[str, tuple[str, ...], Spec], np.ndarray] = {}
        self._hits: dict[tuple[object, ...], np.ndarray] = {}
        self._ids: dict[tuple[object, ...], np.ndarray] = {}
        self._facts: dict[str, tuple[pa.Array, np.ndarray | None]] = {}
        self._once: dict[str, object] = {}
        self._subjects: tuple[pd.DataFrame, np.ndarray] | None = None

    def table(self, name: str) -> pd.DataFrame:
        """One row per record (the data is a read-model snapshot)."""
        return self.data[name]

    def lookup(self, table: str, keys: pd.Series, column: str) -> pd.Series:
        """``column`` of the record of ``table`` that each key names (missing where none):
        a left join on the table's id (a snapshot holds each record once). Only for tables
        of one resource type, where the id alone names a record."""
        if TABLES[table].type_column is not None:
            raise ValueError(f"{table} holds several resource types: its id alone names no record")
        found = pc.index_in(arrow_strings(keys), value_set=arrow_strings(self.index.keys(table)))
        rows = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return pd.Series(self.table(table)[column].array.take(rows, allow_fill=True))

    def once(self, name: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per evaluation: a selection of whole tables (active claims,
        skin exams) that several populations of a measure start from. It must read
        nothing but the tables and the measurement period."""
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
        known, values = self._facts.get(fact, (pa.array([], type=pa.large_string()), None))
        wanted = arrow_strings(keys)
        rows = pc.index_in(wanted, value_set=known).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        missing = rows < 0
        if missing.any():
            found = np.asarray(compute(frame[missing].reset_index(drop=True)))
            values = found if values is None else np.concatenate([values, found])
            start = len(known)
            known = pa.concat_arrays([known, wanted.filter(pa.array(missing))])
            self._facts[fact] = (known, values)
            rows[missing] = np.arange(start, len(known))
        assert values is not None
        return values[rows]

    def having(self, subjects: pd.DataFrame, table: str, mask: np.ndarray) -> np.ndarray:
        """Patient-based measures: the subjects (patients) with a record of ``table`` where
        ``mask``, over the whole table, holds. Patients are matched by number
        (:meth:`SnapshotIndex.patients`), the subjects' own numbers found once per frame."""
        found = np.zeros(len(self.table("patients")) + 1, dtype=bool)  # the last: "no patient"
        found[self.index.patients(table)[mask]] = True
        found[-1] = False
        return found[self._subject_patients(subjects)]

    def _subject_patients(self, subjects: pd.DataFrame) -> np.ndarray:
        """The subjects' patients, numbered as :meth:`SnapshotIndex.patients`; a population
        asks it of one frame many times, so the last frame's are kept."""
        if self._subjects is None or self._subjects[0] is not subjects:
            ids = arrow_strings(self.table("patients")["patient_id"])
            found = pc.index_in(arrow_strings(subjects["patient_id"]), value_set=ids)
            self._subjects = (subjects, found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64))
        return self._subjects[1]

    # ------------------------------------------------------------------ codings
    def _coded(self, table: str, element: str) -> _Codings:
        return self.index.codings(table, ELEMENTS.get(element, (element,)))

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
            c = self._coded(table, element)
            rows = c.rows[c.coded.isin(self._wanted_values(spec, paired=True))]
            self._keys[(table, aliases, spec)] = strs(self.index.record_keys_of(rows)).unique() if len(rows) else _NONE
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
                coded = self.index.own(table, code_col, system_col)
            else:
                coded = CodedColumn(frame[code_col], None if system_col is None else frame[system_col])
            out |= coded.isin(self._wanted_values(spec, paired=system_col is not None))
        if whole and key is None:  # the matching codings' records, by row
            c = self._coded(table, element)
            row = c.row[c.coded.isin(self._wanted_values(spec, paired=True))]
            out[row[row >= 0]] = True
        else:
            keys = self._keys_matching(table, element, spec)
            if len(keys):
                out |= isin(self.index.keys(table, key) if whole else record_keys(table, frame, key), keys)
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


__all__ = ["DEFAULT_ELEMENT", "ELEMENTS", "OWN_CODING", "Retrieve", "SnapshotIndex", "code_mask", "snapshot_index"]
