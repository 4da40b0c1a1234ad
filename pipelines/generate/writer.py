"""Batch folders on disk: one open handle per (batch, file), lines counted as written.

Counting lines at write time is what lets the defect manifest name the exact
1-based line (NDJSON) or data row (CSV) of every injected defect without ever
re-reading a file, so memory stays bounded however many patients are generated.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import IO, Any

import orjson

from pipelines.generate import defects as D
from pipelines.generate.feedback import COMPLAINT_COLUMNS, SURVEY_COLUMNS
from pipelines.tables import FEEDBACK_FILES, RESOURCE_TABLES

NDJSON_FILES = (
    "Patient.ndjson",
    "Encounter.ndjson",
    "Condition.ndjson",
    "Procedure.ndjson",
    "MedicationAdministration.ndjson",
    "Observation.ndjson",
    "AdverseEvent.ndjson",
    "Claim.ndjson",
    "Organization.ndjson",
    "Location.ndjson",
)
CSV_COLUMNS: dict[str, list[str]] = {
    "survey_responses.csv": SURVEY_COLUMNS,
    "complaints.csv": COMPLAINT_COLUMNS,
}
ALL_FILES = NDJSON_FILES + tuple(CSV_COLUMNS)
MANIFEST = "_defects.jsonl"
_BUFFER = 1 << 16


def table_of(file_name: str) -> str:
    if file_name in FEEDBACK_FILES:
        return FEEDBACK_FILES[file_name]
    return RESOURCE_TABLES[file_name.removesuffix(".ndjson")]


def _ensure_handles(needed: int) -> None:
    """Every (batch, file) stays open for the whole run; make sure the OS allows that many."""
    try:
        import resource
    except ImportError:  # not POSIX: nothing to check
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard == resource.RLIM_INFINITY or hard >= want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        else:
            raise ValueError(
                f"{needed} output files must stay open but the open-file limit is {hard}; generate fewer months per run"
            )


class BatchWriter:
    """Writes records into ``out_dir/<period>/`` files, injecting and logging defects."""

    def __init__(self, out_dir: Path, periods: list[str], defect_rate: float, defect_seed: str) -> None:
        if not 0.0 <= defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be within [0, 1], got {defect_rate}")
        _ensure_handles(len(periods) * (len(ALL_FILES) + 1))
        self.periods = periods
        self.rate = defect_rate
        self.rng = random.Random(defect_seed)
        self.counts: list[dict[str, int]] = [dict.fromkeys(ALL_FILES, 0) for _ in periods]
        self.defects: dict[str, int] = dict.fromkeys(D.KINDS, 0)
        self._nd: list[dict[str, IO[bytes]]] = []
        self._csv_fh: list[dict[str, IO[str]]] = []
        self._csv: list[dict[str, Any]] = []
        self._manifest: list[IO[bytes]] = []
        for p in periods:
            folder = out_dir / p
            folder.mkdir(parents=True, exist_ok=True)
            self._nd.append({f: open(folder / f, "wb", buffering=_BUFFER) for f in NDJSON_FILES})  # noqa: SIM115
            fhs: dict[str, IO[str]] = {f: open(folder / f, "w", encoding="utf-8", newline="") for f in CSV_COLUMNS}  # noqa: SIM115
            self._csv_fh.append(fhs)
            writers = {f: csv.writer(fh, lineterminator="\n") for f, fh in fhs.items()}
            for f, cols in CSV_COLUMNS.items():
                writers[f].writerow(cols)
            self._csv.append(writers)
            self._manifest.append(open(folder / MANIFEST, "wb", buffering=_BUFFER))  # noqa: SIM115

    # ---- writing ------------------------------------------------------------------------------------

    def static(self, file_name: str, resources: list[dict[str, Any]]) -> None:
        """Reference resources re-sent in full in every batch; never made defective."""
        lines = b"".join(orjson.dumps(r) + b"\n" for r in resources)
        for b in range(len(self.periods)):
            self._nd[b][file_name].write(lines)
            self.counts[b][file_name] += len(resources)

    def resource(self, batch: int, file_name: str, res: dict[str, Any]) -> None:
        fh = self._nd[batch][file_name]
        counts = self.counts[batch]
        if self.rate and self.rng.random() < self.rate:
            kinds = D.resource_kinds(res)
            kind = kinds[self.rng.randrange(len(kinds))]
            line, rid = D.break_resource(res, kind, self.rng)
            if kind == D.DUPLICATE:
                fh.write(line + b"\n")
                counts[file_name] += 1
            fh.write(line + b"\n")
            counts[file_name] += 1
            self._log(batch, file_name, counts[file_name], rid, kind)
            return
        fh.write(orjson.dumps(res) + b"\n")
        counts[file_name] += 1

    def row(self, batch: int, file_name: str, values: list[Any]) -> None:
        writer = self._csv[batch][file_name]
        counts = self.counts[batch]
        if self.rate and self.rng.random() < self.rate:
            table = FEEDBACK_FILES[file_name]
            row = dict(zip(CSV_COLUMNS[file_name], values, strict=True))
            kinds = D.row_kinds(table, row)
            kind = kinds[self.rng.randrange(len(kinds))]
            broken = D.break_row(table, row, kind, self.rng)
            out = ["" if v is None else v for v in broken.values()]
            if kind == D.DUPLICATE:
                writer.writerow(out)
                counts[file_name] += 1
            writer.writerow(out)
            counts[file_name] += 1
            self._log(batch, file_name, counts[file_name], row[CSV_COLUMNS[file_name][0]], kind)
            return
        writer.writerow(["" if v is None else v for v in values])
        counts[file_name] += 1

    def _log(self, batch: int, file_name: str, line: int, record_id: str | None, kind: str) -> None:
        entry = {
            "file": file_name,
            "line": line,
            "table": table_of(file_name),
            "record_id": record_id,
            "kind": kind,
        }
        self._manifest[batch].write(orjson.dumps(entry) + b"\n")
        self.defects[kind] += 1

    def close(self) -> None:
        handles: list[IO[Any]] = [*self._manifest]
        for d in self._nd:
            handles.extend(d.values())
        for c in self._csv_fh:
            handles.extend(c.values())
        errors: list[BaseException] = []
        for fh in handles:
            try:
                fh.close()
            except OSError as exc:  # keep closing the rest, then report
                errors.append(exc)
        if errors:
            raise errors[0]


__all__ = ["ALL_FILES", "CSV_COLUMNS", "MANIFEST", "NDJSON_FILES", "BatchWriter", "table_of"]
