"""Batch folder (or any files/folders) -> conformed tables + extract quarantine.

This is the extract stage's public entry point. Its result always has every table of
the contract (empty ones too), so later stages never special-case a month in which a
feed sent nothing; and ``rows_read`` is counted so that for every table
``rows_read == accepted + quarantined`` holds, which the reconciliation report checks.
"""

from __future__ import annotations

import gc
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from pipelines.errors import ExtractError
from pipelines.extract.collector import Block, Collector
from pipelines.extract.feedback import read_feedback
from pipelines.extract.fhir_bundle import read_bundle
from pipelines.extract.fhir_ndjson import Ahead, columnar_type, read_ahead, read_ndjson
from pipelines.extract.sources import base_name, open_binary
from pipelines.localtime import TimeZones
from pipelines.surveys import Surveys
from pipelines.tables import CHILD_TABLES, FEEDBACK_FILES, QUARANTINE, TABLES, conform, empty_frame

log = logging.getLogger(__name__)

#: Columnar files planned at once (each holds its file and its parsed table in memory).
AHEAD = 2
#: ``ignored`` key for files whose name matches no known source kind.
UNRECOGNISED = "unrecognised file"


@dataclass
class ExtractResult:
    """What one extraction produced.

    Attributes:
        tables: every name in ``tables.TABLES``, conformed (empty frame if no rows).
        quarantine: ``tables.QUARANTINE`` columns, stage ``extract``.
        rows_read: per table, records read = accepted + quarantined (plus ``bundle``
            for Bundle files/entries that could not be attributed to a table).
        ignored: resource types present but not used (Immunization, Coverage ...) -> count,
            plus ``Claim without diagnosis or procedure`` (claims that yield neither a
            claim_diagnoses nor a claim_procedures row). ``Medication`` resources are
            counted here too: they are no table's records, only the source of the code
            of the medication records that reference them, and a line of a Medication
            file that is not a readable Medication is ``Medication unreadable ...``. A
            medication record whose reference names no Medication is quarantined
            (:mod:`pipelines.extract.medication`).
        missing_columns: per table, optional contract columns a CSV header lacked.
    """

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    rows_read: dict[str, int]
    ignored: dict[str, int]
    missing_columns: dict[str, list[str]] = field(default_factory=dict)


def extract_batch(
    batch_dir: Path,
    *,
    validate_sample: int = 25,
    timezones: TimeZones | None = None,
    surveys: Surveys | None = None,
) -> ExtractResult:
    """Extract one batch folder; provenance paths are relative to it. ``surveys`` map
    QuestionnaireResponses onto survey columns (:mod:`pipelines.surveys`)."""
    batch_dir = Path(batch_dir)
    if not batch_dir.is_dir():
        raise ExtractError(f"batch folder {str(batch_dir)!r} does not exist or is not a folder")
    return extract_paths(
        [batch_dir],
        root=batch_dir,
        validate_sample=validate_sample,
        timezones=timezones,
        surveys=surveys,
    )


def extract_paths(
    paths: Iterable[Path],
    *,
    root: Path | None = None,
    validate_sample: int = 25,
    timezones: TimeZones | None = None,
    surveys: Surveys | None = None,
) -> ExtractResult:
    """Extract any mix of files and folders (folders are walked recursively, sorted).

    ``root`` anchors ``source_file``; by default each folder argument is its own root
    and a file argument is named relative to its parent folder. ``timezones`` decides
    the local clock of each record's facility (default: UTC for every facility).
    """
    sink = Collector(validate_sample=validate_sample, surveys=surveys or Surveys())
    seen: set[Path] = set()
    files: list[tuple[Path, str]] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ExtractError(f"source {str(path)!r} does not exist")
        base = Path(root) if root is not None else (path if path.is_dir() else path.parent)
        for file in _walk(path) if path.is_dir() else [path]:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                files.append((file, _relative(file, base)))
    with _no_cycle_collection(), ThreadPoolExecutor(AHEAD) as pool:
        # The next columnar files are read and parsed on threads, AHEAD at a time, while
        # this one is stored: parsing and Arrow kernels leave the GIL, so both cores work.
        # A file planned for a validation-sample budget it no longer has is planned again.
        budgets: Counter[str] = Counter()
        planned: dict[int, Future[Ahead]] = {}

        def plan(i: int) -> None:
            if i < len(files):
                rtype = columnar_type(files[i][0])
                if rtype is not None:
                    budget = max(0, validate_sample - budgets[rtype])
                    budgets[rtype] += budget
                    planned[i] = pool.submit(read_ahead, files[i][0], files[i][1], budget)

        for i in range(AHEAD):
            plan(i)
        for i, (file, rel) in enumerate(files):
            plan(i + AHEAD)
            ahead = planned.pop(i, None)
            _read_file(file, rel, sink, None if ahead is None else ahead.result())
        return finish(sink, timezones or TimeZones())


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Extraction allocates millions of small dicts, lists and tuples and keeps most of
    them until the frames are built. None of them is in a reference cycle, so CPython's
    cyclic collector, which runs every few hundred allocations and rescans the survivors
    as they pile up, has nothing to free: it cost 3-10% of extraction time on a month of
    400,000 patients. Reference counting still frees everything; the collector's
    previous state is put back afterwards (it then collects any cycle a library made)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _walk(folder: Path) -> list[Path]:
    """Files under ``folder`` in sorted order, skipping ``_``/``.`` names (deterministic)."""
    out: list[Path] = []

    def fail(exc: OSError) -> None:
        raise ExtractError(f"cannot read folder {exc.filename!r}: {exc.strerror}") from exc

    for current, dirs, files in os.walk(folder, onerror=fail):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        out.extend(Path(current) / f for f in sorted(files) if not f.startswith(("_", ".")))
    return out


def _relative(file: Path, base: Path) -> str:
    try:
        return file.resolve().relative_to(base.resolve()).as_posix()
    except ValueError as exc:
        raise ExtractError(f"{str(file)!r} is not inside the batch root {str(base)!r}") from exc


def _read_file(path: Path, rel: str, sink: Collector, ahead: Ahead | None = None) -> None:
    name = base_name(path)
    if name.startswith(("_", ".")):
        return
    if name.endswith(".ndjson"):
        if name.split(".", 1)[0] == "log":  # Bulk Data export log, not resources
            return
        read_ndjson(path, rel, sink, ahead)
    elif name.endswith(".json"):
        read_bundle(path, rel, sink)
    elif name in FEEDBACK_FILES:
        read_feedback(path, rel, FEEDBACK_FILES[name], sink)
    else:
        log.warning("ignoring unrecognised file %s", rel)
        sink.ignored[UNRECOGNISED] += 1


@cache
def _empty(name: str) -> pd.DataFrame:
    """Building an empty typed frame costs ~5 ms; one-bundle extractions (eCQM test
    cases) leave most tables empty, so each is built once and copied."""
    return empty_frame(TABLES[name])


class _Clock:
    """The zone of each row's facility (:mod:`pipelines.localtime`): a facility column
    where the table has one, else the facility of the row's encounter in this delivery,
    else the patient's managing organisation, else the system's zone."""

    FACILITY_COLUMNS = {
        "encounters": "facility_id",
        "complaints": "facility_id",
        "survey_responses": "facility_id",
        "patients": "organization_id",
    }

    def __init__(self, timezones: TimeZones) -> None:
        self.tz = timezones
        self.by_encounter: dict[str, str] = {}
        self.by_patient: dict[str, str] = {}

    def zones(self, name: str, frame: pd.DataFrame) -> pd.Series | str:
        if self.tz.single:
            return self.tz.default
        column = self.FACILITY_COLUMNS.get(name)
        if column is not None:
            return self.tz.zone_of(frame[column])
        zones = pd.Series(pd.NA, index=frame.index, dtype="string")
        if "encounter_id" in frame.columns:
            zones = frame["encounter_id"].astype("string").map(self.by_encounter).astype("string")
        if "patient_id" in frame.columns:
            zones = zones.fillna(frame["patient_id"].astype("string").map(self.by_patient).astype("string"))
        return zones.fillna(self.tz.default).astype("string")

    def learn(self, name: str, typed: pd.DataFrame) -> None:
        if self.tz.single:
            return
        if name == "patients":
            zones = self.tz.zone_of(typed["organization_id"])
            self.by_patient = dict(zip(typed["patient_id"].astype("string"), zones, strict=True))
        elif name == "encounters":
            zones = self.tz.zone_of(typed["facility_id"])
            self.by_encounter = dict(zip(typed["encounter_id"].astype("string"), zones, strict=True))


def survey_places(surveys: pd.DataFrame, encounters: pd.DataFrame | None) -> pd.DataFrame:
    """Survey returns that do not say where care happened (a QuestionnaireResponse names
    its Encounter, rarely the ward) take the facility, ward and service of their Encounter
    when the same delivery holds it; what a return states itself is kept."""
    if encounters is None or not len(encounters) or not len(surveys):
        return surveys
    # Within one delivery validation keeps the first copy of an encounter id and quarantines
    # the rest (expectations/encounters.json): the place is read from that same copy.
    places = encounters.drop_duplicates("encounter_id", keep="first").set_index("encounter_id")
    keys = surveys["encounter_id"].astype("string")
    out = surveys.copy()
    for column in ("facility_id", "ward_id", "service"):
        known = keys.map(places[column].astype("object")).astype("object")
        out[column] = out[column].where(out[column].notna(), known)
    return out


#: A run of a table's rows in read order: row lists, or one block read column-wise.
Piece = list[Any] | Block


def _pieces(sink: Collector, name: str, rejected: dict[str, set[int]]) -> list[Piece]:
    """The table's rows in read order, without the children of parents quarantined
    when their own table was conformed (those were never read)."""
    rows = sink.rows.get(name) or []
    blocks = sink.blocks.get(name, [])
    parents = sink.parents.get(name, []) if name in CHILD_TABLES else []
    pieces: list[Piece] = []
    start = 0
    for block in [*blocks, None]:
        end = len(rows) if block is None else block.at
        part = rows if (start, end) == (0, len(rows)) else rows[start:end]
        if part and parents and rejected:
            part = [r for r, (t, pos) in zip(part, parents[start:end], strict=True) if pos not in rejected.get(t, ())]
        pieces.append(part)
        if block is not None:
            pieces.append(_without_rejected(block, rejected))
        start = end
    return pieces


def _without_rejected(block: Block, rejected: dict[str, set[int]]) -> Block:
    if block.parent is None:
        return block
    tables, positions = block.parent
    names = [tables] if isinstance(tables, str) else sorted(set(tables.tolist()))
    keep = np.ones(len(block), dtype=bool)
    for name in names:
        gone = rejected.get(name)
        if gone:
            mine = keep if isinstance(tables, str) else tables == name
            keep &= ~(mine & np.isin(positions, np.fromiter(gone, dtype=np.int64)))
    if keep.all():
        return block
    mask = pa.array(keep)
    return Block(
        block.at,
        {k: v.filter(mask) for k, v in block.columns.items()},
        block.source_file,
        block.source_lines[keep],
        (tables if isinstance(tables, str) else tables[keep], positions[keep]),
        block.rtype,
        None if block.origin is None else replace(block.origin, spans=block.origin.spans[keep]),
        None if block.record is None else block.record[keep],
    )


#: Text read column-wise stays in Arrow (no Python string per value).
_TEXT = pd.StringDtype("pyarrow")


def _block_frame(block: Block, columns: list[str]) -> pd.DataFrame:
    """A block as the row lists would have given it: text as strings, numbers as numbers."""
    n = len(block)
    data: dict[str, Any] = {}
    for name in columns:
        if name == "source_file":
            data[name] = pd.Series(pd.arrays.ArrowStringArray(pa.repeat(pa.scalar(block.source_file), n)))
        elif name == "source_line":
            data[name] = block.source_lines
        elif name in block.columns:
            data[name] = block.columns[name].to_pandas(types_mapper={pa.string(): _TEXT}.get)
        else:
            data[name] = pd.Series([None] * n, dtype="object")
    return pd.DataFrame(data, columns=columns)


def _frame(pieces: list[Piece], columns: list[str]) -> pd.DataFrame:
    blocks = [_block_frame(p, columns) if isinstance(p, Block) else None for p in pieces]
    text = {c for f in blocks if f is not None for c in f.columns if f[c].dtype == _TEXT}
    frames = []
    for piece, block in zip(pieces, blocks, strict=True):
        if block is not None:
            frames.append(block)
        elif len(piece):
            frame = pd.DataFrame.from_records(piece, columns=columns)
            # Rows read row-wise beside a block: their all-text columns as the block's,
            # so that the table stays Arrow text (pandas would make one mixed column).
            for c in text:
                if pd.api.types.infer_dtype(frame[c], skipna=True) in ("string", "empty"):
                    frame[c] = frame[c].astype(_TEXT)
            frames.append(frame)
    frames = [f for f in frames if len(f)]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _rows_at(pieces: list[Piece], positions: np.ndarray, columns: list[str]) -> Iterator[dict[str, Any]]:
    """The rows at ``positions`` of the table as plain values, as a rejected row is
    described in the quarantine: a resource read column-wise is flattened again from
    its line, so it is described exactly as the row-wise path describes it."""
    from pipelines.extract.children import records

    bounds = np.cumsum([0] + [len(p) for p in pieces])
    with ExitStack() as files:
        handles: dict[Path, BinaryIO] = {}
        for position in positions.tolist():
            k = int(np.searchsorted(bounds, position, side="right")) - 1
            piece, j = pieces[k], position - int(bounds[k])
            if not isinstance(piece, Block):
                row = piece[j]
                yield row if isinstance(row, dict) else dict(zip(columns, row, strict=True))
                continue
            where = {"source_file": piece.source_file, "source_line": int(piece.source_lines[j])}
            origin = piece.origin
            if origin is not None and piece.rtype is not None:
                if origin.path not in handles:
                    handles[origin.path] = files.enter_context(open_binary(origin.path, origin.rel))
                # Positions ascend within a file: a compressed one is read through once.
                resource = orjson.loads(origin.read(handles[origin.path], j))
                which = 0 if piece.record is None else int(piece.record[j])
                yield {**records(piece.rtype, resource)[which].row, **where}
            else:
                yield {**{c: piece.columns[c][j].as_py() for c in piece.columns}, **where}


#: Tables whose rows set the clock of others (:class:`_Clock`), conformed first.
_CLOCK_TABLES = frozenset({"patients", "encounters"})


def _conformed(
    sink: Collector, name: str, rejected: dict[str, set[int]], clock: _Clock, tables: dict[str, pd.DataFrame]
) -> tuple[list[Piece], pd.DataFrame, pd.Series] | None:
    """One table's rows conformed: (its pieces, typed frame, per-row failures), None
    when it has no rows. Reads the collector, changes nothing (runs on a thread)."""
    spec = TABLES[name]
    pieces = _pieces(sink, name, rejected)
    if not any(len(p) for p in pieces):
        return None
    frame = _frame(pieces, spec.column_names)
    if name == "survey_responses":
        frame = survey_places(frame, tables.get("encounters"))
    elif name == "conditions":
        frame = sink.poa.fill(frame)
    typed, failures = conform(frame, spec, zones=clock.zones(name, frame))
    for position, reason in sink.held_back.get(name, {}).items():
        failures.iat[position] = f"{failures.iat[position]}; {reason}" if failures.iat[position] else reason
    return pieces, typed, failures


def finish(sink: Collector, timezones: TimeZones | None = None) -> ExtractResult:
    """Build one DataFrame per table, conform it, and quarantine unreadable rows.

    Parent tables go first: a parent row quarantined here removes its child rows
    (locations, diagnoses, codings) before they are counted, so they were never read.
    Patients and encounters go before the tables that point at them, so that every
    timestamp is read on its facility's clock.
    """
    clock = _Clock(timezones or TimeZones())
    # Cross-resource rules, now that every resource of the batch has been read.
    unresolved = sink.link_medications()
    if unresolved:
        log.warning("%d medication record(s) name a Medication that is not in the delivery: quarantined", unresolved)
    tables: dict[str, pd.DataFrame] = {}
    rejected: dict[str, set[int]] = {}
    order = [n for n in TABLES if n not in CHILD_TABLES] + [n for n in CHILD_TABLES if n in TABLES]
    # Conformed two tables at a time (Arrow's kernels leave the GIL), in three rounds: the
    # clocks' tables, the other parents, then the children once their parents' rejections
    # are known. Each table's outcome is settled in order, so the quarantine reads the same.
    rounds = [[n for n in order if n in _CLOCK_TABLES], [n for n in order if n not in _CLOCK_TABLES]]
    rounds = [[n for n in r if n not in CHILD_TABLES] for r in rounds] + [[n for n in order if n in CHILD_TABLES]]
    with ThreadPoolExecutor(2) as pool:
        for names in rounds:
            work = {n: pool.submit(_conformed, sink, n, rejected, clock, tables) for n in names}
            for name in names:
                spec = TABLES[name]
                done = work.pop(name).result()
                if done is None:
                    tables[name] = _empty(name).copy()
                    continue
                pieces, typed, failures = done
                bad = failures.ne("").to_numpy()
                if bad.any():
                    positions = bad.nonzero()[0]
                    rejected[name] = set(positions.tolist())
                    for i, row in zip(positions, _rows_at(pieces, positions, spec.column_names), strict=True):
                        kept = {k: v for k, v in row.items() if k not in ("source_file", "source_line")}
                        sink.reject(
                            name,
                            row.get(spec.key),
                            str(failures.iat[i]),
                            kept,
                            row.get("source_file"),
                            row.get("source_line"),
                        )
                    typed = typed.loc[~bad].reset_index(drop=True)
                clock.learn(name, typed)
                tables[name] = typed
                # The table's rows are done with: freed now, so the batch's frames and its
                # remaining rows are what memory holds, never both in full.
                sink.rows[name] = []
                sink.blocks.pop(name, None)
                del pieces
    tables = {name: tables[name] for name in TABLES}
    quarantine = (
        conform(pd.DataFrame.from_records(sink.quarantine, columns=QUARANTINE.column_names), QUARANTINE)[0]
        if sink.quarantine
        else empty_frame(QUARANTINE)
    )
    rows_read = {name: len(tables[name]) + sink.quarantined.get(name, 0) for name in TABLES}
    for name, count in sink.quarantined.items():
        rows_read.setdefault(name, count)
    ignored = dict(sorted(sink.ignored.items()))
    log.info(
        "extracted %s; quarantined %d; ignored %s",
        ", ".join(f"{n}={len(f)}" for n, f in tables.items() if len(f)),
        len(quarantine),
        ", ".join(f"{k}={v}" for k, v in ignored.items()) or "nothing",
    )
    return ExtractResult(
        tables=tables,
        quarantine=quarantine,
        rows_read=rows_read,
        ignored=ignored,
        missing_columns={t: list(c) for t, c in sorted(sink.missing_columns.items()) if c},
    )


__all__ = ["UNRECOGNISED", "ExtractResult", "extract_batch", "extract_paths", "finish"]
