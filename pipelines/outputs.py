"""Publishing a set of files all at once, or not at all.

Reports and exports are read by people and by regulators' systems, so a half-written
file that looks complete is worse than no file: an ``index.html`` cut at 100 KB on a
full disk, or four MeasureReports of seven with the last one truncated. Every output
set is therefore written into a fresh temporary folder beside its destination,
flushed to disk, and only then swapped into place with renames on the same file
system: a reader sees the previous complete set or the new complete set. If anything
fails on the way the temporary folder is removed, the previous set stays where it
was, and the caller gets one :class:`~pipelines.errors.OutputError` line (never a
traceback) saying what could not be written and that nothing was replaced.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.errors import OutputError

log = logging.getLogger(__name__)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms that cannot open a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def publish_folder(target: Path, what: str) -> Iterator[Path]:
    """Yield an empty temporary folder; when the block ends without error, it becomes
    ``target`` (replacing any previous ``target`` as a whole)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise OutputError(f"cannot write {what} to {target}: {exc.strerror or exc}; nothing was replaced") from None
    old: Path | None = None
    try:
        yield tmp
        _fsync_tree(tmp)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        os.rename(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.rename(old, target)
        raise OutputError(f"cannot write {what} to {target}: {exc.strerror or exc}; nothing was replaced") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.info("published %s to %s", what, target)


def write_file(path: Path, data: bytes) -> Path:
    """Write one file inside a folder being published (see :func:`publish_folder`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


__all__ = ["publish_folder", "write_file"]
