"""Red / amber / green against a target, honest about chance.

A ward that misses its target by one fall in a quiet month should not be called red:
red needs the whole 95% interval on the wrong side of the target, i.e. the ward is
statistically worse than target. Missing the target by less than chance explains is
amber; meeting it (by the point estimate) is green; no denominator is grey.
This mirrors the "statistically significantly worse than" rule of NHS funnel-plot
and PHE Fingertips benchmarking, applied to a fixed target.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

GREEN, AMBER, RED, GREY = "green", "amber", "red", "grey"
STATUSES = (GREEN, AMBER, RED, GREY)


def rag_status(
    score: ArrayLike, ci_low: ArrayLike, ci_high: ArrayLike, target: ArrayLike, improvement: str
) -> np.ndarray:
    """Status per row. ``improvement`` is ``increase`` (higher is better) or ``decrease``."""
    s = np.asarray(score, dtype=np.float64)
    lo = np.asarray(ci_low, dtype=np.float64)
    hi = np.asarray(ci_high, dtype=np.float64)
    t = np.broadcast_to(np.asarray(target, dtype=np.float64), s.shape)
    tol = 1e-9 * np.maximum(1.0, np.abs(t))
    if improvement == "increase":
        meets = s >= t - tol
        worse = hi < t - tol
    elif improvement == "decrease":
        meets = s <= t + tol
        worse = lo > t + tol
    else:
        raise ValueError(f"improvement must be increase or decrease, got {improvement!r}")
    no_data = np.isnan(s) | np.isnan(t)
    return np.select([no_data, meets, worse], [GREY, GREEN, RED], default=AMBER).astype(object)


__all__ = ["AMBER", "GREEN", "GREY", "RED", "STATUSES", "rag_status"]
