"""Check an export package before it is sent (or after it arrives): :func:`verify_package`.

Each check answers a question a regulator or the data-protection officer would ask,
and a failed check is one readable line; an empty list means the package is valid.

1. **Complete and intact**: ``manifest.json`` is there with every key
   (:data:`manifest.KEYS`) of the right kind; every file it lists exists with the
   listed SHA-256 and size; no file is in the folder that it does not list.
2. **FHIR**: the MeasureReport Bundle (and any other JSON file that is a ``Bundle``,
   or a ``*.measurereport.json``) parses as R4 (``fhir.resources.R4B``), its entries
   with it.
3. **Suppression holds in the CSV as published**, re-read from the file rather than
   trusted from the code that wrote it, with the manifest's threshold ``t``:

   * no published count is in ``1..t-1``;
   * a field the ``suppressed`` column lists is blank, and a row with a suppressed
     score input has no score, interval or status;
   * counts that do not apply to the row's scoring are blank; with the manifest's
     ``rounding``, every count is a multiple of it;
   * complementary suppression: in the equations between cells that
     :func:`suppression.equations` builds (strata into their total, facilities into
     the system, a row's parts into its population) no suppressed cell is alone, and
     none follows from the published cells through a chain of them
     (:func:`suppression.recoverable`).
4. **The Parquet file** (when present) holds the CSV's rows, value for value, so what
   was checked in the CSV holds there too; the data dictionary names the CSV's columns.
5. **No identifiers**: no cell of a CSV and no string in a JSON file looks like a
   record id: ``enc-`` or ``pat-`` at the start of a word (the synthetic and
   source-system encounter and patient id prefixes) or a UUID. This is a tripwire for
   a join gone wrong, not proof of anonymity; free text is kept out by construction
   (the writers emit fixed columns), and the check makes a leak of the usual shapes
   visible.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.measurereport import MeasureReport
from pydantic import ValidationError

from pipelines.errors import ExportError
from pipelines.export.csv_export import COLUMNS, format_decimal
from pipelines.export.dictionary import FILENAME as DICTIONARY
from pipelines.export.manifest import FORMAT, FORMAT_VERSION, KEYS, MANIFEST, package_files, read_manifest
from pipelines.export.suppression import APPLICABLE, COUNTS, DERIVED, SCORE_INPUTS, equations, recoverable, rounded
from pipelines.periods import REPORTING_PERIOD_PATTERN
from pipelines.tables import NOT_COMPUTED

#: What a record identifier looks like (see the module docstring, check 5).
IDENTIFIER = re.compile(
    r"(?<![A-Za-z0-9])(?:enc|pat)-|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
KEY_COLUMNS = ["indicator_id", "facility_id", "stratifier", "stratum"]


def _check_manifest(manifest: dict[str, Any]) -> list[str]:
    problems = [f"manifest: missing key {k!r}" for k in KEYS if k not in manifest]
    problems += [f"manifest: unknown key {k!r}" for k in sorted(set(manifest) - set(KEYS))]
    if manifest.get("format", FORMAT) != FORMAT:
        problems.append(f"manifest: format is {manifest['format']!r}, expected {FORMAT!r}")
    if manifest.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        problems.append(f"manifest: format_version {manifest['format_version']!r} is not {FORMAT_VERSION}")
    for key in ("software_version", "run_id", "period", "input_fingerprint"):
        if key in manifest and not isinstance(manifest[key], str):
            problems.append(f"manifest: {key} is not a string")
    threshold = manifest.get("small_number_threshold", 1)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        problems.append(f"manifest: small_number_threshold {threshold!r} is not a positive integer")
    base = manifest.get("rounding", 0)
    if isinstance(base, bool) or not isinstance(base, int) or base < 0:
        problems.append(f"manifest: rounding {base!r} is not 0 (off) or a positive integer")
    if "reporter" in manifest and not isinstance(manifest["reporter"], str):
        problems.append("manifest: reporter is not a string")
    sets = manifest.get("valuesets", [])
    if not isinstance(sets, list) or not all(
        isinstance(v, dict) and isinstance(v.get("url"), str) and isinstance(v.get("version"), str) for v in sets
    ):
        problems.append("manifest: valuesets is not a list of {url, version}")
    return problems


def _listed_files(manifest: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """name -> entry of well-formed file entries, and the problems of the rest."""
    entries = manifest.get("files", [])
    if not isinstance(entries, list):
        return {}, ["manifest: files is not a list"]
    listed: dict[str, dict[str, Any]] = {}
    problems = []
    for i, entry in enumerate(entries):
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("sha256"), str)
            and _SHA256.fullmatch(entry["sha256"]) is not None
            and isinstance(entry.get("bytes"), int)
        )
        if not ok:
            problems.append(f"manifest: files[{i}] is not a {{name, sha256, bytes}} entry")
            continue
        name = entry["name"]
        if name.startswith("/") or ".." in Path(name).parts or name == MANIFEST:
            problems.append(f"manifest: files[{i}] has an unsafe or reserved name {name!r}")
        elif name in listed:
            problems.append(f"manifest: {name} is listed twice")
        else:
            listed[name] = entry
    return listed, problems


def _check_files(folder: Path, listed: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, entry in listed.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: listed in the manifest but missing")
            continue
        data = path.read_bytes()
        if len(data) != entry["bytes"]:
            problems.append(f"{name}: {len(data)} bytes, the manifest says {entry['bytes']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{name}: SHA-256 does not match the manifest (the file was changed)")
    problems += [
        f"{name}: in the folder but not in the manifest" for name in package_files(folder) if name not in listed
    ]
    return problems


def _check_fhir(folder: Path, names: list[str]) -> list[str]:
    problems = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{name}: not valid JSON: {exc}")
            continue
        model: type[MeasureReport] | type[Bundle] | None = None
        if name.endswith(".measurereport.json"):
            model = MeasureReport
        elif isinstance(data, dict) and data.get("resourceType") == "Bundle":
            model = Bundle
        if model is None:
            continue
        try:
            model.model_validate(data)
        except (ValidationError, ValueError, TypeError) as exc:
            first = str(exc).splitlines()[0:3]
            problems.append(f"{name}: not a valid FHIR R4 {model.__name__}: {' '.join(first)}")
    return problems


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows as strings) of a CSV as written: no type guessing, blanks stay ``""``."""
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def _label(row: dict[str, str]) -> str:
    return "/".join(row[k] for k in KEY_COLUMNS)


def suppression_problems(rows: list[dict[str, str]], threshold: int, name: str = "CSV", rounding: int = 0) -> list[str]:
    """Every way the published rows break the suppression rule (see :mod:`suppression`):
    small counts left published, flags that disagree with blanks, a score published on
    suppressed inputs, counts published for a scoring they do not apply to, and any
    suppressed cell the equations between cells give back (the one-cell rule and the
    exact null-space audit, :func:`suppression.recoverable`)."""
    problems: list[str] = []
    listed: list[set[str]] = []
    smallest = rounded(threshold, rounding) if rounding > 1 else threshold
    for row in rows:
        where = f"{name} row {_label(row)}"
        kind = row.get("scoring", "")
        if kind not in APPLICABLE:
            problems.append(f"{where}: unknown scoring {kind!r}")
            listed.append(set())
            continue
        flags = {f for f in row["suppressed"].split(";") if f}
        unknown = sorted(flags - set(COUNTS) - set(DERIVED))
        if unknown:
            problems.append(f"{where}: suppressed lists unknown fields {unknown}")
        listed.append(flags)
        for c in COUNTS:
            text = row[c]
            if c not in APPLICABLE[kind]:
                if text != "" or c in flags:
                    problems.append(f"{where}: {c} does not apply to a {kind} measure but is published or flagged")
                continue
            if c in flags and text != "":
                problems.append(f"{where}: {c} is listed as suppressed but published ({text})")
            if text == "":
                if c not in flags and row["state"] != NOT_COMPUTED:
                    problems.append(f"{where}: {c} is blank but not listed as suppressed")
                continue
            try:
                value = int(text)
            except ValueError:
                problems.append(f"{where}: {c} is not a whole number ({text!r})")
                continue
            if 1 <= value < smallest:
                problems.append(f"{where}: {c} = {value} is a small number (1..{smallest - 1}) left published")
            if rounding > 1 and value % rounding:
                problems.append(f"{where}: {c} = {value} is not rounded to a multiple of {rounding}")
        if re.search(r"\b\d[\d,]* cases?\b", row.get("state_reason", "")):
            problems.append(f"{where}: state_reason publishes a case count ({row['state_reason']!r})")
        if flags & set(SCORE_INPUTS[kind]):
            shown = [c for c in DERIVED if row[c] != ""]
            if shown:
                problems.append(f"{where}: a count the score is made of is suppressed but {shown} are published")
    keys = [tuple(row[k] for k in KEY_COLUMNS) for row in rows]
    if len(set(keys)) != len(keys):
        problems.append(f"{name}: duplicate indicator/facility/stratifier/stratum rows")
        return problems
    frame = pd.DataFrame([dict(zip(KEY_COLUMNS, k, strict=True)) for k in keys], columns=KEY_COLUMNS).assign(
        scoring=[row["scoring"] for row in rows]
    )
    eqs = equations(frame)
    mask = np.array([[c in flags for c in COUNTS] for flags in listed], dtype=bool).reshape(len(rows), len(COUNTS))
    for members, total, kind in eqs:
        hidden = [cell for cell in (*members, total) if mask[cell]]
        if len(hidden) == 1:
            r, k = hidden[0]
            if kind == "row":
                parts = " + ".join(COUNTS[m[1]] for m in members)
                into = f"the row's {COUNTS[total[1]]} = {parts}"
            else:
                into = f"the sum into {_label(rows[total[0]])}"
            problems.append(
                f"{name} row {_label(rows[r])}: the only suppressed {COUNTS[k]} of {into}: subtraction gives it "
                "back (complementary suppression missing)"
            )
    if not problems:
        for r, k in recoverable(mask, eqs):
            problems.append(
                f"{name} row {_label(rows[r])}: the suppressed {COUNTS[k]} follows from the published cells "
                "(complementary suppression missing)"
            )
    return problems


def _as_csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_decimal(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def parquet_problems(path: Path, rows: list[dict[str, str]]) -> list[str]:
    """The Parquet file must hold the CSV's rows and columns, value for value."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        return [f"{path.name}: not a readable Parquet file: {exc}"]
    if table.column_names != COLUMNS:
        return [f"{path.name}: columns {table.column_names} are not the CSV's"]
    if table.num_rows != len(rows):
        return [f"{path.name}: {table.num_rows} rows, the CSV has {len(rows)}"]
    for i, (prow, crow) in enumerate(zip(table.to_pylist(), rows, strict=True)):
        diff = [c for c in COLUMNS if _as_csv_text(prow[c]) != crow[c]]
        if diff:
            return [f"{path.name}: row {i + 1} ({_label(crow)}) differs from the CSV in {diff}"]
    return []


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def identifier_problems(folder: Path, names: list[str]) -> list[str]:
    """Cells and JSON strings that look like record ids (check 5 of the module docstring)."""
    problems = []
    for name in names:
        path = folder / name
        try:
            if name.endswith(".csv"):
                cells: list[str] = [c for r in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))) for c in r]
            elif name.endswith(".json"):
                cells = list(_strings(json.loads(path.read_text(encoding="utf-8"))))
            else:
                continue
        except (UnicodeDecodeError, json.JSONDecodeError, csv.Error):
            continue  # reported by the format checks
        hits = sorted({c for c in cells if IDENTIFIER.search(c)})
        if hits:
            problems.append(f"{name}: {len(hits)} value(s) look like record identifiers, e.g. {hits[0]!r}")
    return problems


def verify_package(folder: Path) -> list[str]:
    """Every problem of the export package in ``folder``; an empty list means valid."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: not a folder"]
    try:
        manifest = read_manifest(folder)
    except ExportError as exc:
        return [str(exc)]
    problems = _check_manifest(manifest)
    listed, entry_problems = _listed_files(manifest)
    problems += entry_problems
    problems += _check_files(folder, listed)
    present = package_files(folder)
    problems += _check_fhir(folder, present)

    period, threshold = manifest.get("period"), manifest.get("small_number_threshold")
    base = manifest.get("rounding", 0)
    base = base if isinstance(base, int) and not isinstance(base, bool) else 0
    if isinstance(period, str) and not re.fullmatch(REPORTING_PERIOD_PATTERN, period):
        problems.append(f"manifest: period {period!r} is not a month, quarter or year")
        period = None
    if isinstance(period, str) and isinstance(threshold, int) and not isinstance(threshold, bool):
        csv_path = folder / f"careqi-indicators-{period}.csv"
        if not csv_path.is_file():
            problems.append(f"{csv_path.name}: the aggregate CSV for {period} is missing")
        else:
            try:
                header, rows = read_csv_rows(csv_path)
            except (UnicodeDecodeError, csv.Error) as exc:
                problems.append(f"{csv_path.name}: unreadable CSV: {exc}")
            else:
                if header != COLUMNS:
                    problems.append(f"{csv_path.name}: columns {header} are not the export's {COLUMNS}")
                else:
                    problems += suppression_problems(rows, threshold, csv_path.name, base)
                    pq_path = csv_path.with_suffix(".parquet")
                    if pq_path.is_file():
                        problems += parquet_problems(pq_path, rows)
                    if (folder / DICTIONARY).is_file():
                        _, described = read_csv_rows(folder / DICTIONARY)
                        if [d.get("name") for d in described] != COLUMNS:
                            problems.append(f"{DICTIONARY}: does not describe the CSV's columns in order")
    problems += identifier_problems(folder, present)
    return problems


def verified_file_count(folder: Path) -> int:
    """How many files a valid package's manifest lists (for the ``package OK`` line)."""
    files = read_manifest(Path(folder)).get("files", [])
    return len(files) if isinstance(files, list) else 0


__all__ = [
    "IDENTIFIER",
    "identifier_problems",
    "parquet_problems",
    "read_csv_rows",
    "suppression_problems",
    "verified_file_count",
    "verify_package",
]
