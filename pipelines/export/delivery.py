"""Deliver an export package to the regulator's SFTP server, named by an Airflow connection.

Off by default (packages stay in the local exports folder). With
``CAREQI_EXPORT_CONNECTION=<conn id>`` the ``regulator_export`` DAG opens that
connection (``dags/careqi_tasks.py``: Airflow stays out of ``pipelines``) and the
package folder is copied to
``<CAREQI_EXPORT_REMOTE_DIR>/<period>/`` on the server of that connection
(``conn_type`` ``sftp``: host, port, login, password or key; defined in Airflow, or
as ``AIRFLOW_CONN_<ID>`` in the environment, so credentials never sit in CareQI's
configuration or code).

A receiver must never pick up half a package: the files go into a staging folder
beside the target (``.<period>.partial``), the manifest last, every file's size is
checked on the server, and only then is the staging folder renamed into place
(replacing an earlier delivery of the same period). A failed delivery leaves the
previous package, if any, where it was, and raises :class:`ExportError`; the local
package is already published and the delivery can simply be run again.
"""

from __future__ import annotations

import logging
import posixpath
import stat
from pathlib import Path
from typing import Any

from pipelines.errors import ExportError
from pipelines.export.manifest import MANIFEST, package_files

log = logging.getLogger(__name__)


def _mkdirs(sftp: Any, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    current = "/" if path.startswith("/") else ""
    for part in parts:
        current = posixpath.join(current, part) if current else part
        try:
            sftp.stat(current)
        except OSError:
            try:
                sftp.mkdir(current)
            except OSError:  # another package's task made it meanwhile (they run in parallel)
                sftp.stat(current)


def _remove_tree(sftp: Any, path: str) -> None:
    try:
        entries = sftp.listdir_attr(path)
    except OSError:
        return
    for entry in entries:
        child = posixpath.join(path, entry.filename)
        if entry.st_mode is not None and stat.S_ISDIR(entry.st_mode):
            _remove_tree(sftp, child)
        else:
            sftp.remove(child)
    sftp.rmdir(path)


def upload_package(sftp: Any, folder: Path, remote_dir: str) -> str:
    """Copy ``folder`` (a verified package) to ``remote_dir/<folder name>`` through an open
    paramiko-style SFTP client, atomically as seen by a reader. Returns the remote path."""
    folder = Path(folder)
    names = package_files(folder)
    if not (folder / MANIFEST).is_file():
        raise ExportError(f"{folder}: no manifest: only a written export package is delivered")
    base = remote_dir.rstrip("/") or "."
    target = posixpath.join(base, folder.name)
    staging = posixpath.join(base, f".{folder.name}.partial")
    _mkdirs(sftp, base)
    _remove_tree(sftp, staging)
    sftp.mkdir(staging)
    for name in [*names, MANIFEST]:  # the manifest last: its arrival means the rest is there
        local = folder / name
        remote = posixpath.join(staging, name)
        if "/" in name:
            _mkdirs(sftp, posixpath.dirname(remote))
        sftp.put(str(local), remote)
        size = sftp.stat(remote).st_size
        if size != local.stat().st_size:
            raise ExportError(f"delivery of {name}: {size} bytes arrived of {local.stat().st_size}")
    old = posixpath.join(base, f".{folder.name}.replaced")
    _remove_tree(sftp, old)
    try:
        sftp.stat(target)
    except OSError:
        replaced = False
    else:
        sftp.rename(target, old)
        replaced = True
    try:
        sftp.rename(staging, target)
    except OSError:
        if replaced:  # put the previous delivery back where the receiver expects it
            sftp.rename(old, target)
        raise
    _remove_tree(sftp, old)
    return target


def deliver_through(sftp: Any, host: str, folder: Path, remote_dir: str) -> str:
    """:func:`upload_package` with every failure as one ExportError; returns
    ``sftp://<host>/<remote path>``. The client comes from the caller: the
    ``regulator_export`` DAG opens it from its Airflow connection (Airflow stays in
    ``dags/``)."""
    try:
        target = upload_package(sftp, Path(folder), remote_dir)
    except ExportError:
        raise
    except Exception as exc:  # OSError, and paramiko's SSHException (not an OSError)
        raise ExportError(f"export delivery to {host} failed: {exc}") from exc
    log.info("delivered %s to sftp://%s/%s", folder, host, target)
    return f"sftp://{host}/{target}"


__all__ = ["deliver_through", "upload_package"]
