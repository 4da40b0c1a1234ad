"""Patient-feedback CSV files: ``survey_responses.csv`` and ``complaints.csv``.

The header must name the table's columns (tables.TABLES, minus provenance). A file
lacking a *required* (non-nullable) column cannot produce a single usable row, so it
stops the batch with a message listing what is missing. A missing *optional* column
is read as all-null and recorded in ``Collector.missing_columns``: validation turns it
into a failed completeness check, and the delivery guard refuses the batch unless the
operator forces it, because an absent ``acknowledged_at`` would otherwise read as "no
complaint was acknowledged". Extra columns are ignored.

One bad row never stops the file: a row with the wrong number of fields, a field
larger than :data:`FIELD_LIMIT`, or bytes that are not UTF-8 is quarantined with its
row number and the reason (the columns named, never the value), and reading goes on.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from pipelines.errors import ExtractError
from pipelines.extract.collector import Collector
from pipelines.extract.sources import READ_ERRORS, open_binary, unreadable
from pipelines.tables import TABLES, TableSpec

log = logging.getLogger(__name__)

#: Largest CSV field read (characters). Python's csv module refuses fields above 128 KiB
#: by default and then the whole file failed; a larger field is now one quarantined row.
FIELD_LIMIT = 1 << 20
csv.field_size_limit(FIELD_LIMIT)


def _contract_columns(spec: TableSpec) -> list[str]:
    return [c.name for c in spec.columns]


def check_header(header: list[str], spec: TableSpec, rel: str) -> list[str]:
    """The optional contract columns the header lacks (a required one missing is an ExtractError)."""
    required = [c.name for c in spec.columns if not c.nullable]
    missing = [c for c in required if c not in header]
    if missing:
        raise ExtractError(
            f"{rel!r} lacks required column(s) {', '.join(missing)}; its header must name the "
            f"{spec.name} columns: {', '.join(_contract_columns(spec))}"
        )
    optional_missing = [c for c in _contract_columns(spec) if c not in header]
    if optional_missing:
        log.warning("%s has no column(s) %s: read as null and reported as a data-quality failure", rel,
                    ", ".join(optional_missing))  # fmt: skip
    return optional_missing


def _not_utf8(fields: list[str], header: list[str]) -> list[str]:
    """Columns whose text came from bytes that are not UTF-8 (decoded as surrogates)."""
    out = []
    for i, value in enumerate(fields):
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            out.append(header[i] if i < len(header) else f"field {i + 1}")
    return out


def read_feedback(path: Path, rel: str, table: str, sink: Collector) -> None:
    spec = TABLES[table]
    columns = _contract_columns(spec)
    with open_binary(path, rel) as fh:
        try:
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
            reader = csv.reader(text)
            try:
                header = next(reader, None)
            except csv.Error as exc:
                raise ExtractError(f"cannot parse the header of CSV {rel!r}: {exc}") from exc
            if header is None:
                raise ExtractError(f"{rel!r} is empty: expected a header row naming the {table} columns")
            if _not_utf8(header, header):
                raise ExtractError(f"the header of {rel!r} is not UTF-8 text; re-export it as UTF-8 CSV")
            header = [h.strip() for h in header]
            for name in check_header(header, spec, rel):
                if name not in sink.missing_columns[table]:
                    sink.missing_columns[table].append(name)
            index = {name: header.index(name) for name in columns if name in header}
            width = len(header)
            line_no = 0
            while True:
                line_no += 1
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    sink.reject(table, None, f"malformed CSV row: {exc}", None, rel, line_no)
                    continue
                if not fields:  # blank line
                    continue
                record = {name: fields[i] for name, i in index.items() if i < len(fields)}
                kept = {k: v for k, v in record.items() if not _not_utf8([v], [k])}
                if len(fields) != width:
                    sink.reject(
                        table,
                        kept.get(spec.key) or None,
                        f"malformed CSV row: expected {width} fields, found {len(fields)}",
                        kept,
                        rel,
                        line_no,
                    )
                    continue
                bad_text = _not_utf8(fields, header)
                if bad_text:
                    sink.reject(
                        table,
                        kept.get(spec.key) or None,
                        f"not UTF-8 text in {', '.join(bad_text)}: re-export the file as UTF-8",
                        kept,
                        rel,
                        line_no,
                    )
                    continue
                row: dict[str, object] = {name: (fields[i] if fields[i] != "" else None) for name, i in index.items()}
                row["source_file"] = rel
                row["source_line"] = line_no
                sink.store(table, row)
        except READ_ERRORS as exc:
            raise unreadable(path, rel, exc) from exc


__all__ = ["FIELD_LIMIT", "check_header", "read_feedback"]
