"""What every CareQI DAG's tasks share: calling a pipeline function with the right failure mode.

Not a DAG. A CareQI error the user must fix (bad input, a refused delivery, a missing
setting) fails the task at once, without retries that could only fail again; warehouse
outages and unexpected errors propagate, so the task's retries apply.
"""

from __future__ import annotations

from typing import Any


def call(module: str, name: str, *args: object, **kwargs: object) -> Any:
    """``pipelines.<module>.<name>(*args, **kwargs)``, imported inside the task (DAG files
    parse without the pipeline's heavy libraries)."""
    import importlib

    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.errors import CareQIError, WarehouseError

    fn = getattr(importlib.import_module(f"pipelines.{module}"), name)
    try:
        return fn(*args, **kwargs)
    except WarehouseError:
        raise
    except CareQIError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def deliver(folder: str, connection_id: str, remote_dir: str) -> str:
    """Deliver one export package folder to the SFTP server of Airflow connection
    ``connection_id`` (``pipelines.export.delivery``: staged, manifest last, renamed into
    place); returns ``sftp://<host>/<path>``. Airflow's connection and hook are used
    here, in the DAG room, so ``pipelines`` runs without Airflow."""
    from pathlib import Path

    from airflow.providers.sftp.hooks.sftp import SFTPHook

    from pipelines.errors import ExportError
    from pipelines.export.delivery import deliver_through

    try:
        hook = SFTPHook(ssh_conn_id=connection_id)
        sftp = hook.get_conn()
    except Exception as exc:  # the hook raises AirflowNotFoundException, paramiko and socket errors
        raise ExportError(f"export delivery: cannot connect through connection {connection_id!r}: {exc}") from exc
    try:
        return deliver_through(sftp, str(hook.remote_host), Path(folder), remote_dir)
    finally:
        hook.close_conn()
