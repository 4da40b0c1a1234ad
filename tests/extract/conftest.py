from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipelines.config import load_settings


def _dump_lines(lines: Iterable[Any]) -> bytes:
    out = []
    for line in lines:
        out.append(line.encode() if isinstance(line, str) else orjson.dumps(line))
    return b"\n".join(out) + b"\n"


@pytest.fixture
def write_ndjson(tmp_path: Path) -> Callable[..., Path]:
    """Write resources (dicts) or raw text lines to ``tmp_path/<name>``; gzip if name ends .gz."""

    def write(name: str, lines: Iterable[Any], folder: Path | None = None) -> Path:
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _dump_lines(lines)
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return path

    return write


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = load_settings().shared_data_dir
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root} (set CAREQI_SHARED_DATA)")
    return root
