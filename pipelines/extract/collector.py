"""The accumulator every reader writes into: rows per table, quarantine rows, and
the counts that let a batch reconcile (read = accepted + quarantined).

Readers add plain dicts; DataFrames are built once per table at the end
(:mod:`pipelines.extract.batch`), which is what keeps extraction at tens of
thousands of resources per second.

Two rules need a resource that may arrive later in the batch, so the collector keeps
only the small facts they need and :func:`~pipelines.extract.batch.finish` applies them
before any frame is built: present-on-admission stated on Encounter.diagnosis for a
Condition (:class:`~pipelines.extract.poa.StayPoa`), and the codes of Medication
resources that medicationReference points at (:meth:`Collector.link_medications`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

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
from pipelines.extract.structure import structure_error
from pipelines.tables import RESOURCE_TABLES, TABLES

#: Quarantine payloads are truncated to this many characters (tables.QUARANTINE).
MAX_PAYLOAD = 2000
#: table_name for a Bundle file or entry that cannot be attributed to any table.
BUNDLE_TABLE = "bundle"
CODINGS = "codings"

_FLATTEN_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError)


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
    #: Resources structurally validated so far in this run, per type: the sample is a
    #: budget per run, so a folder of one-patient Bundles is sampled like one NDJSON file.
    sampled: Counter[str] = field(default_factory=Counter)
    #: table -> rows: dicts, except codings (tuples in column order, see children.py).
    rows: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
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
    #: (resource type, table, row position, Bundle or None, Medication key, reference as
    #: sent) of each row whose medicationReference points outside its resource.
    medication_links: list[tuple[str, str, int, str | None, str, str | None]] = field(default_factory=list)
    #: table -> row position -> why the row cannot be accepted, decided once the whole
    #: batch is read (a medicationReference that named nothing); batch.finish quarantines them.
    held_back: dict[str, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))

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
        if self.sampled[rtype] < self.validate_sample:
            self.sampled[rtype] += 1
            error = structure_error(resource)
            if error is not None:
                self.reject(table, resource.get("id"), error, allowed_fields(resource), source_file, source_line)
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
        rows = self.rows
        for rec in produced:
            row = rec.row
            row["source_file"] = source_file
            row["source_line"] = source_line
            parent_rows = rows[rec.table]
            parent = (rec.table, len(parent_rows))
            parent_rows.append(row)
            for child_table, child in rec.children:
                child["source_file"] = source_file
                child["source_line"] = source_line
                rows[child_table].append(child)
                self.parents[child_table].append(parent)
            if rec.codings:
                rows[CODINGS].extend([(*c, source_file, source_line) for c in rec.codings])
                self.parents[CODINGS].extend([parent] * len(rec.codings))
            if medication is not None:
                if medication.target is not None:
                    link = (rtype, rec.table, parent[1], bundle, medication.target, medication.reference)
                    self.medication_links.append(link)
                elif medication.dangling:
                    self.held_back[rec.table][parent[1]] = unresolved_reason(medication.reference)

    def link_medications(self) -> int:
        """Fill the code columns and medication codings of every row whose
        medicationReference names a Medication read anywhere in its scope (before or
        after it); hold the rest back for quarantine (:attr:`held_back`). Returns how
        many references stayed unresolved (dangling ones included)."""
        for rtype, table, position, bundle, target, reference in self.medication_links:
            found, concept = self.medications.find(target, bundle)
            if not found:
                self.held_back[table][position] = unresolved_reason(reference or target)
                continue
            row = self.rows[table][position]
            row.update(medication_code_columns(concept))
            spec = TABLES[table]
            if row[spec.key] is None:
                continue  # a record without an id has no codings (children.records)
            typed = rtype if spec.type_column else None
            codings: list[CodingTuple] = []
            add_codings(codings, table, str(row[spec.key]), MEDICATION_ELEMENT, [concept], typed)
            self.rows[CODINGS].extend([(*c, row["source_file"], row["source_line"]) for c in codings])
            self.parents[CODINGS].extend([(table, position)] * len(codings))
        self.medication_links.clear()
        return sum(len(rows) for rows in self.held_back.values())


__all__ = ["BUNDLE_TABLE", "CODINGS", "MAX_PAYLOAD", "Collector", "payload_text"]
