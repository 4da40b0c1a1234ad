"""Patient-feedback CSV files: ``survey_responses.csv`` and ``complaints.csv``.

The header must name the table's columns (tables.TABLES, minus provenance). A file
lacking a *required* (non-nullable) column cannot produce a single usable row, so it
stops the batch with a message listing what is missing; a missing optional column is
read as all-null and logged, so a feed keeps working when the contract gains a column.
Extra columns are ignored. A row with the wrong number of fields is quarantined, and
values that are present but unreadable (``2026-13-45``) are quarantined later by
``tables.conform``.
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


def _contract_columns(spec: TableSpec) -> list[str]:
    return [c.name for c in spec.columns]


def check_header(header: list[str], spec: TableSpec, rel: str) -> None:
    required = [c.name for c in spec.columns if not c.nullable]
    missing = [c for c in required if c not in header]
    if missing:
        raise ExtractError(
            f"{rel!r} lacks required column(s) {', '.join(missing)}; its header must name the "
            f"{spec.name} columns: {', '.join(_contract_columns(spec))}"
        )
    optional_missing = [c for c in _contract_columns(spec) if c not in header]
    if optional_missing:
        log.warning("%s has no column(s) %s: read as null", rel, ", ".join(optional_missing))


def read_feedback(path: Path, rel: str, table: str, sink: Collector) -> None:
    spec = TABLES[table]
    columns = _contract_columns(spec)
    with open_binary(path, rel) as fh:
        try:
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                raise ExtractError(f"{rel!r} is empty: expected a header row naming the {table} columns")
            header = [h.strip() for h in header]
            check_header(header, spec, rel)
            index = {name: header.index(name) for name in columns if name in header}
            width = len(header)
            for line_no, fields in enumerate(reader, 1):
                if not fields:  # blank line
                    continue
                if len(fields) != width:
                    record = dict(zip(header, fields, strict=False))
                    sink.reject(
                        table,
                        record.get(spec.key) or None,
                        f"malformed CSV row: expected {width} fields, found {len(fields)}",
                        record,
                        rel,
                        line_no,
                    )
                    continue
                row: dict[str, object] = {name: (fields[i] if fields[i] != "" else None) for name, i in index.items()}
                row["source_file"] = rel
                row["source_line"] = line_no
                sink.rows[table].append(row)
        except UnicodeDecodeError as exc:
            raise ExtractError(f"{rel!r} is not UTF-8 text ({exc}); re-export it as UTF-8 CSV") from exc
        except csv.Error as exc:
            raise ExtractError(f"cannot parse CSV {rel!r}: {exc}") from exc
        except READ_ERRORS as exc:
            raise unreadable(path, rel, exc) from exc


__all__ = ["check_header", "read_feedback"]
