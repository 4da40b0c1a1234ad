"""The accumulator every reader writes into: rows per table, quarantine rows, and
the counts that let a batch reconcile (read = accepted + quarantined).

Readers hand over plain dicts; the collector keeps each row as a list in the table's
column order (a third of a dict's memory) with its repeated values (codes, systems,
statuses, units: a handful of distinct strings over millions of rows) stored once
(``sys.intern``), and
DataFrames are built once per table at the end (:mod:`pipelines.extract.batch`), which
is what keeps extraction at tens of thousands of resources per second in a memory that
a month of a million patients fits in.

Two rules need a resource that may arrive later in the batch, so the collector keeps
only the small facts they need and :func:`~pipelines.extract.batch.finish` applies them
before any frame is built: present-on-admission stated on Encounter.diagnosis for a
Condition (:class:`~pipelines.extract.poa.StayPoa`), and the codes of Medication
resources that medicationReference points at (:meth:`Collector.link_medications`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa

from pipelines.extract.children import CLAIM_WITHOUT_ROWS, CodingTuple, add_codings, records
from pipelines.extract.flatten import medication_code_columns
from pipelines.extract.medication import (
    MEDICATION,
    MEDICATION_ELEMENT,
    MEDICATION_RESOURCES,
    MedicationCodes,
    medication_concept,
    unresolved_reason,
)
from pipelines.extract.poa import StayPoa
from pipelines.extract.questionnaire import (
    UnmappedQuestionnaire,
    flatten_questionnaire_response,
    is_unfinished,
    survey_of,
)
from pipelines.extract.structure import structure_error
from pipelines.surveys import Surveys
from pipelines.tables import RESOURCE_TABLES, TABLES

#: Quarantine payloads are truncated to this many characters (tables.QUARANTINE).
MAX_PAYLOAD = 2000
#: table_name for a Bundle file or entry that cannot be attributed to any table.
BUNDLE_TABLE = "bundle"
CODINGS = "codings"
QUESTIONNAIRE_RESPONSE = "QuestionnaireResponse"
SURVEYS = "survey_responses"

_FLATTEN_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError)


@dataclass(frozen=True)
class Layout:
    """Where each column of a table's rows sits, and which columns hold repeated values
    (text that is neither an id nor a timestamp) worth storing once."""

    columns: tuple[str, ...]
    position: dict[str, int]
    shared: tuple[int, ...]

    @classmethod
    def of(cls, table: str) -> Layout:
        spec = TABLES[table]
        columns = tuple(spec.column_names)
        dtypes = spec.dtypes
        shared = tuple(
            i
            for i, c in enumerate(columns)
            if dtypes.get(c) == "string" and not c.endswith("_id") and c not in ("source_file", "source_line")
        )
        return cls(columns, {c: i for i, c in enumerate(columns)}, shared)


LAYOUTS: dict[str, Layout] = {name: Layout.of(name) for name in TABLES}


@dataclass(frozen=True)
class Origin:
    """Where resources read column-wise are in their file: (start, end) byte offsets of
    each one's text, in the file as read (decompressed)."""

    path: Path
    rel: str
    spans: np.ndarray

    def read(self, file: BinaryIO, j: int) -> bytes:
        """Resource ``j``'s text, from the file opened again (sources.open_binary)."""
        start, end = self.spans[j]
        file.seek(int(start))
        return file.read(int(end - start))


@dataclass(frozen=True)
class Block:
    """Rows of one table read column-wise (:mod:`~pipelines.extract.columnar`).

    ``at`` places the block in the table's order: after that many of its row lists.
    ``parent`` is (parent table, or one per row; position) per row for a child table; ``rtype`` and
    ``origin`` (where each resource's text is in its file) let a row rejected when
    conformed be described by the tolerant flattener, exactly as the row-wise path
    describes it (the file is read again for those rows only: holding every line until
    the batch is conformed would double extraction's memory).
    """

    at: int
    columns: dict[str, pa.Array]
    source_file: str
    source_lines: np.ndarray
    parent: tuple[str | np.ndarray, np.ndarray] | None = None
    rtype: str | None = None
    origin: Origin | None = None
    #: Per row, which of its resource's records it is (children.records; a Claim has several).
    record: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source_lines)


def payload_text(value: Any) -> str | None:
    """An allowed-fields record as JSON, truncated for the quarantine table (None: nothing kept).

    Only structures are accepted: the quarantine never holds a raw line, because a raw
    FHIR resource carries what the project must not keep (a Patient's name, MRN,
    telecom and address; free text anywhere). See :func:`allowed_fields`.
    """
    if value is None:
        return None
    if isinstance(value, (bytes, str)):
        raise TypeError("quarantine payloads are allowed-field records, never raw text")
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = orjson.dumps({"unserialisable": type(value).__name__}).decode()
    return text[:MAX_PAYLOAD]


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else None


def allowed_fields(resource: Any) -> dict[str, Any] | None:
    """What a rejected resource may leave in the quarantine: the fields its table keeps
    (the flattened row, exactly what an accepted record would have stored), or just its
    type and id when it cannot even be flattened."""
    if not isinstance(resource, dict):
        return None
    rtype = resource.get("resourceType")
    skeleton = {"resourceType": rtype if isinstance(rtype, str) else None, "id": _plain(resource.get("id"))}
    if not isinstance(rtype, str) or rtype not in RESOURCE_TABLES:
        return skeleton
    try:
        produced = records(rtype, resource)
    except _FLATTEN_ERRORS:
        return skeleton
    if not produced:
        return skeleton
    return {"resourceType": rtype, **produced[0].row}


@dataclass
class Collector:
    """Mutable state of one extraction run."""

    validate_sample: int = 25
    #: The survey files QuestionnaireResponses are read through (none: each is quarantined).
    surveys: Surveys = field(default_factory=Surveys)
    #: Resources structurally validated so far in this run, per type: the sample is a
    #: budget per run, so a folder of one-patient Bundles is sampled like one NDJSON file.
    sampled: Counter[str] = field(default_factory=Counter)
    #: table -> rows in the table's column order (:data:`LAYOUTS`): lists, except
    #: codings (tuples, see children.py).
    rows: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    #: table -> blocks read column-wise, in read order (:class:`Block`).
    blocks: dict[str, list[Block]] = field(default_factory=lambda: defaultdict(list))
    #: table -> rows stored so far (row lists and blocks): the next row's position.
    size: Counter[str] = field(default_factory=Counter)
    #: child table -> (parent table, parent row position) per child row, so that a
    #: parent quarantined when its frame is conformed takes its children with it.
    parents: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    quarantined: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    #: table -> optional contract columns a CSV header lacked (read as null).
    missing_columns: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: condition id -> POA code stated on an Encounter.diagnosis (first seen wins).
    poa: StayPoa = field(default_factory=StayPoa)
    #: codes of the Medication resources read, by scope and key.
    medications: MedicationCodes = field(default_factory=MedicationCodes)
    #: (resource type, table, row position, index in the table's row lists, Bundle or
    #: None, Medication key, reference as sent) of each row whose medicationReference
    #: points outside its resource (such rows are always read row-wise).
    medication_links: list[tuple[str, str, int, int, str | None, str, str | None]] = field(default_factory=list)
    #: table -> row position -> why the row cannot be accepted, decided once the whole
    #: batch is read (a medicationReference that named nothing); batch.finish quarantines them.
    held_back: dict[str, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))

    def store(self, table: str, row: dict[str, Any]) -> int:
        """Keep one row of ``table`` (a reader's dict) as a list in column order, its
        repeated text stored once; returns its position in the table."""
        layout = LAYOUTS[table]
        kept = list(map(row.get, layout.columns))
        for i in layout.shared:
            v = kept[i]
            if v.__class__ is str:
                kept[i] = intern(v)
        self.rows[table].append(kept)
        self.size[table] += 1
        return self.size[table] - 1

    def add_block(
        self,
        table: str,
        columns: dict[str, pa.Array],
        source_file: str,
        source_lines: np.ndarray,
        *,
        parent: tuple[str | np.ndarray, np.ndarray] | None = None,
        rtype: str | None = None,
        origin: Origin | None = None,
        record: np.ndarray | None = None,
    ) -> int:
        """Keep rows read column-wise after the table's rows so far; returns the
        position of the block's first row."""
        block = Block(len(self.rows[table]), columns, source_file, source_lines, parent, rtype, origin, record)
        self.blocks[table].append(block)
        first = self.size[table]
        self.size[table] += len(block)
        return first

    def reject(
        self,
        table: str,
        record_id: Any,
        reason: str,
        payload: Any,
        source_file: str | None,
        source_line: int | None,
    ) -> None:
        self.quarantine.append(
            {
                "table_name": table,
                "record_id": None if not isinstance(record_id, (str, int)) else str(record_id),
                "stage": "extract",
                "reasons": reason,
                "payload": payload_text(payload),
                "source_file": source_file,
                "source_line": source_line,
            }
        )
        self.quarantined[table] += 1

    def add_resource(
        self,
        resource: dict[str, Any],
        source_file: str,
        source_line: int,
        *,
        bundle: str | None = None,
        full_url: Any = None,
    ) -> None:
        """Flatten one resource into its table (or count it as ignored).

        The first ``validate_sample`` resources of each type in the run are validated
        structurally (:mod:`pipelines.extract.structure`). ``bundle`` names
        the Bundle an entry came from (its source file) and ``full_url`` is the entry's
        fullUrl: references to a Medication are looked up in that Bundle first.
        """
        rtype = resource.get("resourceType")
        if rtype == MEDICATION:
            # Not a record of any table: read for its code only (medication.py).
            self.medications.add(resource, bundle, full_url)
            self.ignored[MEDICATION] += 1
            return
        table = RESOURCE_TABLES.get(rtype) if isinstance(rtype, str) else None
        if table is None or not isinstance(rtype, str):
            self.ignored[str(rtype)] += 1
            return
        if rtype == QUESTIONNAIRE_RESPONSE and is_unfinished(resource):
            self.ignored[f"{rtype} not returned (status {resource.get('status')!r})"] += 1
            return
        if self.sampled[rtype] < self.validate_sample:
            self.sampled[rtype] += 1
            error = structure_error(resource)
            if error is not None:
                self.reject(table, resource.get("id"), error, allowed_fields(resource), source_file, source_line)
                return
        if rtype == QUESTIONNAIRE_RESPONSE:
            self._add_survey_return(resource, source_file, source_line)
            return
        try:
            produced = records(rtype, resource)
            medication = medication_concept(resource) if rtype in MEDICATION_RESOURCES else None
        except _FLATTEN_ERRORS as exc:  # defensive: flatteners tolerate odd shapes
            self.reject(
                table,
                resource.get("id"),
                f"unreadable structure: {type(exc).__name__}: {exc}",
                {"resourceType": rtype, "id": _plain(resource.get("id"))},
                source_file,
                source_line,
            )
            return
        if not produced:
            self.ignored[CLAIM_WITHOUT_ROWS if rtype == "Claim" else f"{rtype} without rows"] += 1
            return
        if rtype == "Encounter":
            self.poa.add(resource)
        for rec in produced:
            row = rec.row
            row["source_file"] = source_file
            row["source_line"] = source_line
            parent = (rec.table, self.store(rec.table, row))
            for child_table, child in rec.children:
                child["source_file"] = source_file
                child["source_line"] = source_line
                self.store(child_table, child)
                self.parents[child_table].append(parent)
            if rec.codings:
                where = (source_file, source_line)
                self.rows[CODINGS].extend([c + where for c in rec.codings])
                self.size[CODINGS] += len(rec.codings)
                self.parents[CODINGS].extend([parent] * len(rec.codings))
            if medication is not None:
                if medication.target is not None:
                    index = len(self.rows[rec.table]) - 1
                    link = (rtype, rec.table, parent[1], index, bundle, medication.target, medication.reference)
                    self.medication_links.append(link)
                elif medication.dangling:
                    self.held_back[rec.table][parent[1]] = unresolved_reason(medication.reference)

    def _add_survey_return(self, resource: dict[str, Any], source_file: str, source_line: int) -> None:
        """A returned QuestionnaireResponse through its survey file, or quarantined saying
        which Questionnaire has no file."""
        try:
            row = flatten_questionnaire_response(resource, survey_of(resource, self.surveys))
        except (UnmappedQuestionnaire, *_FLATTEN_ERRORS) as exc:
            reason = str(exc) if isinstance(exc, UnmappedQuestionnaire) else (
                f"unreadable structure: {type(exc).__name__}: {exc}"
            )  # fmt: skip
            skeleton = {"resourceType": QUESTIONNAIRE_RESPONSE, "id": _plain(resource.get("id")),
                        "questionnaire": _plain(resource.get("questionnaire"))}  # fmt: skip
            self.reject(SURVEYS, resource.get("id"), reason, skeleton, source_file, source_line)
            return
        row["source_file"] = source_file
        row["source_line"] = source_line
        self.store(SURVEYS, row)

    def link_medications(self) -> int:
        """Fill the code columns and medication codings of every row whose
        medicationReference names a Medication read anywhere in its scope (before or
        after it); hold the rest back for quarantine (:attr:`held_back`). Returns how
        many references stayed unresolved (dangling ones included)."""
        for rtype, table, position, index, bundle, target, reference in self.medication_links:
            found, concept = self.medications.find(target, bundle)
            if not found:
                self.held_back[table][position] = unresolved_reason(reference or target)
                continue
            row = self.rows[table][index]
            at = LAYOUTS[table].position
            for column, value in medication_code_columns(concept).items():
                row[at[column]] = value
            spec = TABLES[table]
            if row[at[spec.key]] is None:
                continue  # a record without an id has no codings (children.records)
            typed = rtype if spec.type_column else None
            codings: list[CodingTuple] = []
            add_codings(codings, table, str(row[at[spec.key]]), MEDICATION_ELEMENT, [concept], typed)
            where = (row[at["source_file"]], row[at["source_line"]])
            self.rows[CODINGS].extend([c + where for c in codings])
            self.size[CODINGS] += len(codings)
            self.parents[CODINGS].extend([(table, position)] * len(codings))
        self.medication_links.clear()
        return sum(len(rows) for rows in self.held_back.values())


__all__ = [
    "BUNDLE_TABLE",
    "CODINGS",
    "LAYOUTS",
    "Block",
    "Origin",
    "MAX_PAYLOAD",
    "Collector",
    "Layout",
    "payload_text",
]
