"""Intervals against values computed independently (scipy reference methods, published tables)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipelines.analyse.intervals import grouped_median, mean_ci, median_ci, poisson_rate, wilson


def test_wilson_8_of_10_matches_scipy_binomtest() -> None:
    ref = stats.binomtest(8, 10).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson([8], [10])
    assert low[0] == pytest.approx(ref.low, abs=1e-9)
    assert high[0] == pytest.approx(ref.high, abs=1e-9)


def test_wilson_handles_all_none_and_zero_trials() -> None:
    low, high = wilson([0, 4, 0], [4, 4, 0])
    ref0 = stats.binomtest(0, 4).proportion_ci(method="wilson")
    ref4 = stats.binomtest(4, 4).proportion_ci(method="wilson")
    assert (low[0], high[0]) == pytest.approx((ref0.low, ref0.high))
    assert (low[1], high[1]) == pytest.approx((ref4.low, ref4.high))
    assert math.isnan(low[2]) and math.isnan(high[2])


def test_garwood_zero_events_upper_limit_is_3_689() -> None:
    low, high = poisson_rate([0], [1.0])
    assert low[0] == 0.0
    assert high[0] == pytest.approx(3.6889, abs=1e-4)  # -ln(0.025), the classic rule-of-3.69


def test_garwood_five_events_matches_published_table_and_scales_by_exposure() -> None:
    # Exact Poisson 95% limits for 5 events: 1.6235 .. 11.6683 (Garwood 1936; Ulm 1990 table).
    low, high = poisson_rate([5], [2500.0], multiplier=1000)
    assert low[0] == pytest.approx(1.6235 / 2.5, abs=1e-4)
    assert high[0] == pytest.approx(11.6683 / 2.5, abs=1e-4)


def test_garwood_zero_exposure_is_undefined() -> None:
    low, high = poisson_rate([3], [0.0])
    assert math.isnan(low[0]) and math.isnan(high[0])


def test_median_ci_of_ten_values_uses_2nd_and_9th_order_statistics() -> None:
    # Binomial(10, 1/2): P(B <= 1) = 11/1024 < 0.025 <= P(B <= 2) -> ranks 2 and 9 (coverage 97.9%).
    values = [13, 2, 5, 8, 21, 1, 34, 3, 55, 89]
    med, low, high = median_ci(values)
    assert med == pytest.approx(np.median(values))
    ordered = sorted(values)
    assert (low, high) == (ordered[1], ordered[8])


def test_median_ci_for_tiny_samples_falls_back_to_range_and_empty_is_nan() -> None:
    assert median_ci([4.0, 1.0, 9.0]) == (4.0, 1.0, 9.0)
    assert all(math.isnan(x) for x in median_ci([]))


def test_grouped_median_keeps_groups_apart_and_ignores_nan() -> None:
    med, low, high = grouped_median([1, 100, 3, np.nan, 200, 2], [0, 1, 0, 0, 1, 0], 3)
    assert med[0] == 2 and med[1] == 150
    assert math.isnan(med[2])


def test_mean_ci_matches_student_t() -> None:
    x = np.array([3.0, 5.0, 7.0, 10.0, 15.0])
    ref = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    mean, low, high = mean_ci(x)
    assert mean == pytest.approx(x.mean())
    assert (low, high) == pytest.approx(ref)
    one = mean_ci([4.0])
    assert one[0] == 4.0 and math.isnan(one[1])


def test_grouped_quantile_matches_numpy_and_brackets_it() -> None:
    from pipelines.analyse.intervals import grouped_quantile

    rng = np.random.default_rng(7)
    values = rng.gamma(2.0, 10.0, 500)
    groups = rng.integers(0, 3, 500)
    est, low, high = grouped_quantile(values, groups, 4, 0.9)
    for g in range(3):
        v = np.sort(values[groups == g])
        assert est[g] == pytest.approx(np.quantile(v, 0.9))
        assert low[g] <= est[g] <= high[g]
    assert np.isnan(est[3]) and np.isnan(low[3])  # an empty group


def test_grouped_quantile_interval_covers_the_true_p90() -> None:
    """Coverage, not the formula again: 4,000 samples of 60 exponential values, whose true 90th
    percentile is ln 10; a distribution-free 95% interval covers it about 95% of the time (the
    order-statistic interval is a little conservative)."""
    from pipelines.analyse.intervals import grouped_quantile

    rng = np.random.default_rng(11)
    groups, n = 4000, 60
    values = rng.exponential(1.0, groups * n)
    _, low, high = grouped_quantile(values, np.repeat(np.arange(groups), n), groups, 0.9)
    coverage = float(np.mean((low <= np.log(10)) & (np.log(10) <= high)))
    assert 0.93 <= coverage <= 0.99, coverage
