"""SERVQUAL gaps against means and Student-t intervals computed independently with scipy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.analyse.servqual import (
    RATER_DIMENSIONS,
    TEN_DIMENSIONS,
    TEN_TO_RATER,
    assign_dimensions,
    dimension_gaps,
)
from pipelines.errors import ConfigError

COLUMNS = ["response_id", "facility", "ward", "dimension", "kind", "value"]


def _pairs(
    facility: str, ward: str, dimension: str, pairs: Sequence[tuple[float, float]], start: int = 0
) -> list[tuple]:
    rows: list[tuple] = []
    for i, (e, p) in enumerate(pairs, start=start):
        rows += [(i, facility, ward, dimension, "expectation", e), (i, facility, ward, dimension, "perception", p)]
    return rows


def _one(out: pd.DataFrame, **where: str) -> pd.Series:
    mask = np.logical_and.reduce([out[k] == v for k, v in where.items()])
    assert mask.sum() == 1
    return out[mask].iloc[0]


def _t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def test_ten_to_rater_is_the_1988_consolidation() -> None:
    assert set(TEN_TO_RATER) == set(TEN_DIMENSIONS) and len(TEN_DIMENSIONS) == 10
    assert set(TEN_TO_RATER.values()) == set(RATER_DIMENSIONS)
    assert {d for d, r in TEN_TO_RATER.items() if r == "assurance"} == {
        "competence",
        "courtesy",
        "credibility",
        "security",
    }
    assert {d for d, r in TEN_TO_RATER.items() if r == "empathy"} == {
        "access",
        "communication",
        "understanding_the_patient",
    }


def test_gap_mean_and_interval_match_scipy() -> None:
    pairs = [(7, 5), (6, 6), (7, 4), (5, 5), (6, 3), (7, 6)]
    out = dimension_gaps(pd.DataFrame(_pairs("F", "W", "reliability", pairs), columns=COLUMNS), by=["facility", "ward"])
    row = _one(out, dimension="reliability")
    gaps = [p - e for e, p in pairs]
    assert row["basis"] == "paired" and row["n_responses"] == 6
    assert row["mean_expectation"] == pytest.approx(np.mean([e for e, _ in pairs]))
    assert row["mean_perception"] == pytest.approx(np.mean([p for _, p in pairs]))
    assert row["gap"] == pytest.approx(np.mean(gaps)) == pytest.approx(row["mean_perception"] - row["mean_expectation"])
    assert (row["gap_low"], row["gap_high"]) == pytest.approx(_t_interval(gaps))
    assert (row["perception_low"], row["perception_high"]) == pytest.approx(_t_interval([p for _, p in pairs]))
    wide = dimension_gaps(pd.DataFrame(_pairs("F", "W", "reliability", pairs), columns=COLUMNS), confidence=0.9)
    assert (wide["gap_low"].iloc[0], wide["gap_high"].iloc[0]) == pytest.approx(_t_interval(gaps, 0.9))


def test_a_response_averages_its_items_before_the_gap() -> None:
    rows = [
        (1, "F", "W", "tangibles", "expectation", 7),
        (1, "F", "W", "tangibles", "expectation", 5),  # mean 6
        (1, "F", "W", "tangibles", "perception", 4),
        (2, "F", "W", "tangibles", "expectation", 4),
        (2, "F", "W", "tangibles", "perception", 5),
        (2, "F", "W", "tangibles", "perception", 6),  # mean 5.5
    ]
    row = dimension_gaps(pd.DataFrame(rows, columns=COLUMNS)).iloc[0]
    gaps = [4 - 6, 5.5 - 4]
    assert row["gap"] == pytest.approx(np.mean(gaps))
    assert (row["gap_low"], row["gap_high"]) == pytest.approx(_t_interval(gaps))


def test_a_response_with_perception_items_only_is_left_out_of_the_gap() -> None:
    pairs = [(7, 5), (6, 6), (5, 2)]
    rows = _pairs("F", "W", "courtesy", pairs) + [(99, "F", "W", "courtesy", "perception", 1)]
    rows += [(98, "F", "W", "courtesy", "expectation", 7), (98, "F", "W", "courtesy", "perception", "n/a")]
    row = dimension_gaps(pd.DataFrame(rows, columns=COLUMNS), by=["facility", "ward"]).iloc[0]
    assert row["n_responses"] == 3
    assert row["mean_perception"] == pytest.approx(13 / 3)  # over the paired responses only
    assert row["gap"] == pytest.approx(np.mean([p - e for e, p in pairs]))


def test_rater_pools_the_items_of_its_ten_dimensions() -> None:
    rows = [
        (1, "F", "W", "competence", "expectation", 7),
        (1, "F", "W", "courtesy", "expectation", 5),
        (1, "F", "W", "security", "perception", 3),
        (2, "F", "W", "credibility", "expectation", 6),
        (2, "F", "W", "credibility", "perception", 6),
        (2, "F", "W", "courtesy", "perception", 7),
        (3, "F", "W", "access", "expectation", 6),
        (3, "F", "W", "Understanding the patient", "perception", 4),
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    out = dimension_gaps(frame, by=["facility", "ward"], level="rater")
    assert out["dimension"].tolist() == ["assurance", "empathy"]  # RATER order
    assurance = _one(out, dimension="assurance")
    gaps = [3 - 6, 6.5 - 6]
    assert assurance["n_responses"] == 2 and assurance["gap"] == pytest.approx(np.mean(gaps))
    assert (assurance["gap_low"], assurance["gap_high"]) == pytest.approx(_t_interval(gaps))
    empathy = _one(out, dimension="empathy")
    assert empathy["n_responses"] == 1 and empathy["gap"] == -2 and np.isnan(empathy["gap_low"])
    # At the ten-dimension level the same answers pair only within credibility.
    ten = dimension_gaps(frame, by=["facility", "ward"])
    assert _one(ten, dimension="credibility")["gap"] == 0
    assert _one(ten, dimension="competence")["n_responses"] == 0


def test_groups_by_facility_and_ward_keep_same_named_wards_apart() -> None:
    rows = _pairs("North", "W1", "reliability", [(7, 6), (6, 5)])
    rows += _pairs("South", "W1", "reliability", [(5, 6), (4, 6), (5, 7)], start=10)
    rows += _pairs("South", "W2", "reliability", [(6, 6)], start=20)
    out = dimension_gaps(pd.DataFrame(rows, columns=COLUMNS), by=["facility", "ward"])
    assert list(zip(out["facility"], out["ward"], strict=True)) == [("North", "W1"), ("South", "W1"), ("South", "W2")]
    assert _one(out, facility="North", ward="W1")["gap"] == -1
    south = _one(out, facility="South", ward="W1")
    assert south["gap"] == pytest.approx(5 / 3) and south["n_responses"] == 3
    assert (south["gap_low"], south["gap_high"]) == pytest.approx(_t_interval([1, 2, 2]))


def test_perception_only_survey_reports_mean_perception_and_no_gap() -> None:
    values = [5, 6, 7, 4]
    rows = [(i, "F", "W", "responsiveness", "Perception", v) for i, v in enumerate(values)]
    row = dimension_gaps(pd.DataFrame(rows, columns=COLUMNS), by=["facility", "ward"]).iloc[0]
    assert row["basis"] == "perception_only" and row["n_responses"] == 4
    assert row["mean_perception"] == pytest.approx(5.5)
    assert (row["perception_low"], row["perception_high"]) == pytest.approx(_t_interval(values))
    assert np.isnan(row["gap"]) and np.isnan(row["gap_low"]) and np.isnan(row["mean_expectation"])


def test_min_n_suppresses_small_groups_with_a_reason() -> None:
    rows = _pairs("F", "W1", "reliability", [(7, 6), (6, 5), (5, 5)]) + _pairs("F", "W2", "reliability", [(7, 1)], 9)
    out = dimension_gaps(pd.DataFrame(rows, columns=COLUMNS), by=["facility", "ward"], min_n=3)
    w1, w2 = _one(out, ward="W1"), _one(out, ward="W2")
    assert not w1["suppressed"] and w1["suppression_reason"] is None
    assert w2["suppressed"] and w2["n_responses"] == 1 and w2["suppression_reason"] == "fewer than 3 responses"
    assert np.isnan(w2["gap"]) and np.isnan(w2["mean_perception"])


def test_dimensions_and_kinds_are_checked() -> None:
    bad = pd.DataFrame([(1, "F", "W", "assurance", "perception", 5)], columns=COLUMNS)
    with pytest.raises(ConfigError, match="level='rater'"):
        dimension_gaps(bad)
    assert dimension_gaps(bad, level="rater")["dimension"].tolist() == ["assurance"]
    with pytest.raises(ValueError, match="expectation or perception"):
        dimension_gaps(bad.assign(kind="importance"), level="rater")


def test_assign_dimensions_from_configuration() -> None:
    answers = pd.DataFrame({"response_id": [1, 1, 2], "item": ["q1", "q2", "q9"], "kind": "perception", "value": 5})
    mapping = {"q1": "Reliability", "q2": "understanding the patient"}
    with pytest.raises(ConfigError, match="q9"):
        assign_dimensions(answers, mapping)
    out = assign_dimensions(answers, mapping, unmapped="drop")
    assert out["dimension"].tolist() == ["reliability", "understanding_the_patient"]
    with pytest.raises(ConfigError, match="unknown dimension"):
        assign_dimensions(answers, {"q1": "friendliness"})
