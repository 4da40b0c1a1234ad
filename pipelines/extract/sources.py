"""Opening source files: plain or gzip, with whole-file failures as ExtractError.

A file that cannot be read at all (missing, permission denied, not really gzip,
truncated gzip) is a delivery problem the operator must fix, so it stops the batch
with a message naming the file; a bad *record* inside a readable file never does.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pipelines.errors import ExtractError

#: Errors that mean "this file cannot be read", raised while opening or streaming.
READ_ERRORS = (OSError, EOFError, zlib.error)


def is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


#: UTF-8 byte-order mark: some Windows tools write one at the start of a file (or of every
#: appended chunk); it is not part of the JSON.
BOM = b"\xef\xbb\xbf"


def base_name(path: Path) -> str:
    """File name without a trailing ``.gz``."""
    return path.name[:-3] if is_gzip(path) else path.name


def unreadable(path: Path, rel: str, exc: BaseException) -> ExtractError:
    kind = "gzip " if is_gzip(path) else ""
    return ExtractError(
        f"cannot read {kind}file {rel!r} ({type(exc).__name__}: {exc}); "
        "re-deliver the file or remove it from the batch folder"
    )


@contextmanager
def open_binary(path: Path, rel: str) -> Iterator[BinaryIO]:
    """Binary stream of the (decompressed) file; read errors become ExtractError."""
    try:
        fh: BinaryIO = gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
    except READ_ERRORS as exc:
        raise unreadable(path, rel, exc) from exc
    try:
        yield fh
    except READ_ERRORS as exc:
        raise unreadable(path, rel, exc) from exc
    finally:
        fh.close()


def read_bytes(path: Path, rel: str) -> bytes:
    with open_binary(path, rel) as fh:
        return fh.read()


__all__ = ["BOM", "READ_ERRORS", "base_name", "is_gzip", "open_binary", "read_bytes", "unreadable"]
