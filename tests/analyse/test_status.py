from __future__ import annotations

import numpy as np

from pipelines.analyse.status import rag_status


def test_higher_is_better_green_amber_red_grey() -> None:
    status = rag_status(
        score=[0.95, 0.85, 0.60, np.nan, 0.90],
        ci_low=[0.90, 0.70, 0.50, np.nan, 0.80],
        ci_high=[0.99, 0.95, 0.70, np.nan, 0.95],
        target=0.9,
        improvement="increase",
    )
    assert list(status) == ["green", "amber", "red", "grey", "green"]


def test_lower_is_better_needs_whole_interval_above_target_for_red() -> None:
    status = rag_status(
        score=[1.5, 2.5, 4.0, 2.0],
        ci_low=[0.5, 1.0, 2.1, 1.0],
        ci_high=[3.0, 4.0, 6.0, 3.0],
        target=2.0,
        improvement="decrease",
    )
    assert list(status) == ["green", "amber", "red", "green"]


def test_missing_interval_can_only_be_amber_when_target_missed() -> None:
    assert list(rag_status([3.0], [np.nan], [np.nan], 2.0, "decrease")) == ["amber"]
