"""FHIR Bulk Data NDJSON files: ``<ResourceType>[.<nnn>].ndjson[.gz]``, one resource a line.

Files are streamed line by line so that memory stays flat for any export size. The
Bulk Data spec ties each output file to one resource type (named in the manifest and,
by convention, in the file name), so a line of another type is a sender error and is
quarantined rather than silently routed elsewhere. A UTF-8 byte-order mark (some
Windows tools write one at the start of a file, or of every appended chunk) is not
part of the JSON and is dropped before parsing. ``Medication.ndjson`` feeds no table:
its Medications are read only for the codes medication records reference
(:func:`read_medications`).

A rejected line is quarantined with its file, line and reason, and only the fields
its table keeps (:func:`~pipelines.extract.collector.allowed_fields`), never the raw
line: it may be a Patient with a name and an address.

Files of the high-volume types are read column-wise (:mod:`~pipelines.extract.columnar`)
with the same result; this module's line reader is the fallback, and handles the lines
that path passes back (malformed, of another type, sampled for validation).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import orjson

from pipelines.errors import ExtractError
from pipelines.extract.collector import Collector, allowed_fields
from pipelines.extract.columnar import READERS, Plan, plan_file, read_columnar
from pipelines.extract.medication import MEDICATION, UNREADABLE_MEDICATION
from pipelines.extract.sources import BOM, base_name, open_binary
from pipelines.extract.structure import is_fhir_type
from pipelines.tables import RESOURCE_TABLES

log = logging.getLogger(__name__)


def file_resource_type(path: Path) -> str:
    """``Encounter`` for ``Encounter.ndjson``, ``Encounter.003.ndjson.gz`` ..."""
    return base_name(path).split(".", 1)[0]


def _lines(path: Path, rel: str, data: bytes | None = None) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without a BOM) of every non-blank line; from ``data``
    when the file was read already (a file the columnar path declined)."""
    with nullcontext(io.BytesIO(data)) if data is not None else open_binary(path, rel) as fh:
        for line_no, line in enumerate(fh, 1):
            if line.startswith(BOM):
                line = line[len(BOM) :]
            if line.strip():
                yield line_no, line


def read_medications(path: Path, rel: str, sink: Collector) -> None:
    """Medication.ndjson: no table of its own, read for the codes that medication
    records reference (:mod:`pipelines.extract.medication`). A line that is not a
    readable Medication is counted, with a warning, and references to it stay unresolved."""
    for line_no, line in _lines(path, rel):
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError:
            resource = None
        if not isinstance(resource, dict) or resource.get("resourceType") != MEDICATION:
            log.warning("%s line %d is not a readable Medication", rel, line_no)
            sink.ignored[UNREADABLE_MEDICATION] += 1
            continue
        sink.add_resource(resource, rel, line_no)


#: A file read and planned ahead: its bytes, and (budget, plan) (:mod:`~pipelines.extract.columnar`).
Ahead = tuple[bytes, tuple[int, Plan | None]]


def columnar_type(path: Path) -> str | None:
    """The resource type of an NDJSON file the columnar path reads, else None."""
    name = base_name(path)
    if not name.endswith(".ndjson"):
        return None
    rtype = file_resource_type(path)
    return rtype if rtype in READERS else None


def read_ahead(path: Path, rel: str, budget: int) -> Ahead:
    """Read a columnar file and plan it for ``budget`` (no collector: runs on a thread)."""
    with open_binary(path, rel) as fh:
        data = fh.read()
    return data, (budget, plan_file(data, file_resource_type(path), budget))


def read_ndjson(path: Path, rel: str, sink: Collector, ahead: Ahead | None = None) -> None:
    rtype = file_resource_type(path)
    if rtype == MEDICATION:
        read_medications(path, rel, sink)
        return
    table = RESOURCE_TABLES.get(rtype)
    if table is None:
        if not is_fhir_type(rtype):
            raise ExtractError(
                f"cannot tell the resource type of {rel!r}: NDJSON files must be named "
                "<ResourceType>.ndjson or <ResourceType>.<nnn>.ndjson (optionally .gz)"
            )
        # A FHIR type this pipeline does not use: count its records, do not parse them.
        with open_binary(path, rel) as fh:
            sink.ignored[rtype] += sum(1 for line in fh if line.strip())
        return

    def read_line(line_no: int, line: bytes) -> None:
        _read_line(rtype, table, line_no, line, rel, sink)

    data: bytes | None = None
    if rtype in READERS:
        if ahead is not None:
            data, planned = ahead
        else:
            with open_binary(path, rel) as fh:
                data = fh.read()
            planned = None
        if read_columnar(data, rtype, rel, sink, read_line, path=path, ahead=planned):
            return
    for line_no, line in _lines(path, rel, data):
        read_line(line_no, line)


def _read_line(rtype: str, table: str, line_no: int, line: bytes, rel: str, sink: Collector) -> None:
    """One line of a ``rtype`` file: a resource for ``sink``, or a quarantine row saying why not."""
    try:
        resource = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        sink.reject(table, None, f"malformed JSON: {exc}", None, rel, line_no)
        return
    if not isinstance(resource, dict):
        sink.reject(table, None, f"not a FHIR resource: JSON {type(resource).__name__}", None, rel, line_no)
        return
    found = resource.get("resourceType")
    if found != rtype:
        sink.reject(
            table,
            resource.get("id"),
            f"resourceType mismatch: {str(found)[:64]!r} in a {rtype} file",
            allowed_fields(resource),
            rel,
            line_no,
        )
        return
    sink.add_resource(resource, rel, line_no)


__all__ = ["Ahead", "columnar_type", "file_resource_type", "read_ahead", "read_medications", "read_ndjson"]
