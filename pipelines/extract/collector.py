"""The accumulator every reader writes into: rows per table, quarantine rows, and
the counts that let a batch reconcile (read = accepted + quarantined).

Readers add plain dicts; DataFrames are built once per table at the end
(:mod:`pipelines.extract.batch`), which is what keeps extraction at tens of
thousands of resources per second.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipelines.extract.children import CLAIM_WITHOUT_ROWS, records
from pipelines.extract.flatten import encounter_diagnosis_poa
from pipelines.extract.structure import structure_error
from pipelines.tables import RESOURCE_TABLES

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
    #: condition id -> POA code found on an Encounter.diagnosis (first seen wins).
    poa: dict[str, Any] = field(default_factory=dict)

    def reject(
        self,
        table: str,
        record_id: Any,
        reason: str,
        payload: Any,
        source_file: str,
        source_line: int,
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
        sampled: Counter[str],
    ) -> None:
        """Flatten one resource into its table (or count it as ignored).

        ``sampled`` counts structurally validated resources per type in the current
        file; the first ``validate_sample`` of each type are validated.
        """
        rtype = resource.get("resourceType")
        table = RESOURCE_TABLES.get(rtype) if isinstance(rtype, str) else None
        if table is None:
            self.ignored[str(rtype)] += 1
            return
        if sampled[rtype] < self.validate_sample:
            sampled[rtype] += 1
            error = structure_error(resource)
            if error is not None:
                self.reject(table, resource.get("id"), error, allowed_fields(resource), source_file, source_line)
                return
        try:
            produced = records(rtype, resource)
            poa = encounter_diagnosis_poa(resource) if rtype == "Encounter" else ()
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
        for condition_id, code in poa:
            self.poa.setdefault(condition_id, code)
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


__all__ = ["BUNDLE_TABLE", "CODINGS", "MAX_PAYLOAD", "Collector", "payload_text"]
