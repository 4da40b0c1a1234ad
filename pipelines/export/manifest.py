"""``manifest.json``: what an export package holds, so a recipient can check it arrived whole.

Written last, into the folder the writers of :data:`pipelines.export.FORMATS` filled:
every other file with its SHA-256 and size, plus what made the package (software
version, run id, input fingerprint, value set versions) and the small-number
threshold its suppression used (:mod:`verify` re-checks suppression against it).
Byte-stable like the files it lists: keys sorted, 2-space indent, a trailing newline,
files and value sets sorted, no timestamp (the run id names the run).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines import outputs
from pipelines.errors import ExportError

MANIFEST = "manifest.json"
FORMAT = "careqi-export-package"
FORMAT_VERSION = 1
#: Every key a manifest has.
KEYS = (
    "files",
    "format",
    "format_version",
    "input_fingerprint",
    "period",
    "reporter",
    "rounding",
    "run_id",
    "small_number_threshold",
    "software_version",
    "valuesets",
)


def package_files(folder: Path) -> list[str]:
    """Every file in the package except the manifest: paths relative to ``folder``
    (``/``-separated), sorted."""
    folder = Path(folder)
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(n for n in names if n != MANIFEST)


def file_entry(folder: Path, name: str) -> dict[str, Any]:
    data = (Path(folder) / name).read_bytes()
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The one serialisation of a manifest (so equal manifests are equal bytes)."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def build_manifest(
    folder: Path,
    *,
    period: str,
    run_id: str,
    software_version: str,
    input_fingerprint: str,
    valuesets: Iterable[Mapping[str, str]],
    small_number_threshold: int,
    rounding: int = 0,
    reporter: str = "CareQI",
) -> dict[str, Any]:
    """The manifest of ``folder`` as it is now (pure apart from reading the files)."""
    sets = sorted(({"url": str(v["url"]), "version": str(v.get("version") or "")} for v in valuesets),
                  key=lambda v: (v["url"], v["version"]))  # fmt: skip
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "software_version": software_version,
        "run_id": run_id,
        "period": period,
        "input_fingerprint": input_fingerprint,
        "small_number_threshold": int(small_number_threshold),
        "rounding": int(rounding),
        "reporter": reporter,
        "valuesets": sets,
        "files": [file_entry(folder, name) for name in package_files(folder)],
    }


def write_manifest(
    out_dir: Path,
    *,
    period: str,
    run_id: str,
    software_version: str,
    input_fingerprint: str,
    valuesets: Iterable[Mapping[str, str]],
    small_number_threshold: int,
    rounding: int = 0,
    reporter: str = "CareQI",
) -> Path:
    """Write ``out_dir/manifest.json`` listing every other file in ``out_dir``; call it
    after all formats are written (and before the folder is published)."""
    out_dir = Path(out_dir)
    manifest = build_manifest(
        out_dir,
        period=period,
        run_id=run_id,
        software_version=software_version,
        input_fingerprint=input_fingerprint,
        valuesets=valuesets,
        small_number_threshold=small_number_threshold,
        rounding=rounding,
        reporter=reporter,
    )
    return outputs.write_file(out_dir / MANIFEST, manifest_bytes(manifest))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The package's manifest; an ExportError when it is missing or is not a JSON object."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path}: no manifest: not an export package, or an incomplete one") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: the manifest is not a JSON object")
    return data


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KEYS",
    "MANIFEST",
    "build_manifest",
    "manifest_bytes",
    "package_files",
    "read_manifest",
    "write_manifest",
]
