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
