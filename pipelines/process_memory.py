"""A process's resident-memory high-water mark: what the bench reports per stage and
what every Airflow task logs when it ends (``dags/careqi_tasks.call``).

Peak memory is the limit that decides how large a system one worker can serve (a
shard must fit), and no executor reports it: Airflow records a task's duration, not
its memory. Linux keeps the peak as ``VmHWM``; writing 5 to ``clear_refs`` starts a
new one, so a process that runs several stages can report each stage's own peak.
"""

from __future__ import annotations

import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Start a new high-water mark at the current resident size (Linux; False where the
    kernel does not allow it, and the peak then runs from the process's start)."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """The resident-memory high-water mark since the last reset (VmHWM), else the
    process's lifetime peak (ru_maxrss, KiB on Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


__all__ = ["peak_mib", "reset_peak"]
