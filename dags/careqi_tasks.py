"""What every CareQI DAG's tasks share: calling a pipeline function with the right failure
mode, and logging what it cost.

Not a DAG. A CareQI error the user must fix (bad input, a refused delivery, a missing
setting) fails the task at once, without retries that could only fail again; warehouse
outages and unexpected errors propagate, so the task's retries apply.
"""

from __future__ import annotations

from typing import Any

#: The line each task logs when its pipeline function returns (scripts and tests read it
#: back from the task logs: ``scripts/airflow_celery_run.sh`` prints every task's peak).
RESOURCE_LINE = "careqi task {name}: {seconds:.1f} s, peak resident memory {peak:.0f} MiB"


def call(module: str, name: str, *args: object, **kwargs: object) -> Any:
    """``pipelines.<module>.<name>(*args, **kwargs)``, imported inside the task (DAG files
    parse without the pipeline's heavy libraries). The task logs its duration and its
    peak resident memory (:data:`RESOURCE_LINE`): Airflow records a task's duration but
    not its memory, and the memory of a shard task is what sizes a worker."""
    import importlib
    import logging
    import time

    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.errors import CareQIError, WarehouseError
    from pipelines.process_memory import peak_mib, reset_peak

    reset_peak()
    start = time.perf_counter()
    fn = getattr(importlib.import_module(f"pipelines.{module}"), name)
    try:
        value = fn(*args, **kwargs)
    except WarehouseError:
        raise
    except CareQIError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - start
    line = RESOURCE_LINE.format(name=f"{module}.{name}", seconds=seconds, peak=peak_mib())
    logging.getLogger("careqi.task").info(line)
    return value


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
