"""SPC charts against published worked examples and independently computed values.

Published data and limits: Montgomery, *Introduction to Statistical Quality Control*
(examples 6.5, 7.1, 7.5, 7.6 and table 7.4), with the reference outputs that the R package
qicharts2 (Anhoej) checks itself against in ``tests/testthat/test_montgomery.R``
(``ex_*.rds``). Where no published example is at hand the expected value is computed in
the test by another route (scipy's geometric distribution, Laney's formula written out
as a plain loop, hand arithmetic in a comment).
"""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy import stats

from pipelines.analyse.spc import (
    LARGE_DENOMINATOR,
    PRESETS,
    Chart,
    ChartType,
    Rule,
    RuleSet,
    assurance_icon,
    cases_between_events,
    chart_type_for,
    compute_chart,
    days_between_events,
    has_large_denominators,
    plotted_improvement,
    special_causes,
    variation_icon,
)

pytestmark = pytest.mark.filterwarnings("error")

NAN = math.nan

# Montgomery Example 7.1 (orange juice concentrate cans, n = 50): nonconforming cans in
# samples 1-30 (phase I) and 31-94 (after the machine adjustment), as in qicharts2's tbl_07.03.
OJ_PHASE_1 = [12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22, 8, 10, 5, 13, 11]
OJ_PHASE_1 += [20, 18, 24, 15, 9, 12, 7, 13, 9, 6]
OJ_PHASE_2 = [9, 6, 12, 5, 6, 4, 6, 3, 7, 6, 2, 4, 3, 6, 5, 4, 8, 5, 6, 7, 5, 6, 3, 5, 8, 7, 5, 6, 4, 5, 2, 3]
OJ_PHASE_2 += [4, 7, 6, 5, 5, 3, 7, 9, 6, 10, 4, 3, 5, 8, 11, 9, 7, 3, 5, 2, 1, 4, 5, 3, 7, 6, 4, 4, 6, 8, 5, 6]


def _lines(n: int, centre: float = 0.0, sigma: float = 1.0) -> dict[str, npt.NDArray[np.float64]]:
    """Constant centre and sigma lines for driving ``special_causes`` with constructed series."""
    c = np.full(n, centre)
    return {
        "centre": c,
        "lcl": c - 3 * sigma,
        "ucl": c + 3 * sigma,
        "lower_2s": c - 2 * sigma,
        "upper_2s": c + 2 * sigma,
    }


def _signals(
    values: list[float],
    rules: RuleSet | None = None,
    improvement: str = "increase",
    phase: npt.NDArray[np.int64] | None = None,
) -> pd.DataFrame:
    v = np.asarray(values, dtype=float)
    c = _lines(v.size)
    return special_causes(
        v,
        c["centre"],
        c["lcl"],
        c["ucl"],
        c["lower_2s"],
        c["upper_2s"],
        rules or RuleSet(),
        improvement,
        phase=phase,
    )


def _flagged(frame: pd.DataFrame, column: str) -> list[int]:
    return [int(i) for i in np.flatnonzero(frame[column].to_numpy())]


# --- published worked examples ---------------------------------------------------------


def test_p_chart_matches_montgomery_example_7_1_orange_juice_cans() -> None:
    """Montgomery, Example 7.1: 30 samples of n = 50, p-bar = 0.2313, UCL 0.4102, LCL 0.0524;
    samples 15 and 23 plot above the upper limit."""
    chart = compute_chart(ChartType.P, numerator=OJ_PHASE_1, denominator=[50] * 30)
    assert chart.centre[0] == pytest.approx(347 / 1500)
    assert chart.centre == pytest.approx(np.full(30, 0.2313), abs=1e-4)
    assert chart.ucl == pytest.approx(np.full(30, 0.4102), abs=1e-4)
    assert chart.lcl == pytest.approx(np.full(30, 0.0524), abs=1e-4)
    assert _flagged(chart.signals, "beyond_limits") == [14, 22]
    assert chart.signals.loc[[14, 22], "side"].tolist() == ["high", "high"]


def test_p_chart_second_phase_matches_qicharts2_montgomery_7_1() -> None:
    """Montgomery Example 7.1 re-phased after the machine adjustment at sample 31; qicharts2's
    reference output ex_7.1_5.rds gives the second phase CL 0.109687, UCL 0.242270, LCL 0."""
    counts = OJ_PHASE_1 + OJ_PHASE_2
    chart = compute_chart("p", numerator=counts, denominator=[50] * 94, phases=(0, 30))
    assert chart.phase.tolist() == [0] * 30 + [1] * 64
    assert chart.centre[29] == pytest.approx(0.231333, abs=1e-6)
    assert chart.centre[30:] == pytest.approx(np.full(64, 0.109687), abs=1e-6)
    assert chart.ucl[30:] == pytest.approx(np.full(64, 0.242270), abs=1e-6)
    assert chart.lcl[30:] == pytest.approx(np.zeros(64))
    assert not chart.signals["beyond_limits"].iloc[30:].any()


def test_p_chart_with_varying_sample_sizes_matches_montgomery_table_7_4() -> None:
    """Montgomery Table 7.4 (variable sample size), p-bar = 234 / 2450 = 0.0955; qicharts2's
    tbl_7.4_1.rds: UCL 0.183686 / LCL 0.007335 at n = 100, UCL 0.194093 / LCL 0 at n = 80,
    UCL 0.176003 / LCL 0.015017 at n = 120; sample 11 (20 of 110) is above its limit."""
    size = [100, 80, 80, 100, 110, 110, 100, 100, 90, 90, 110, 120, 120, 120, 110, 80, 80, 80, 90, 100, 100, 100]
    size += [100, 90, 90]
    count = [12, 8, 6, 9, 10, 12, 11, 16, 10, 6, 20, 15, 9, 8, 6, 8, 10, 7, 5, 8, 5, 8, 10, 6, 9]
    chart = compute_chart("p", numerator=count, denominator=size)
    assert chart.centre[0] == pytest.approx(0.09551, abs=1e-5)
    assert (chart.ucl[0], chart.lcl[0]) == pytest.approx((0.183686, 0.007335), abs=1e-6)
    assert (chart.ucl[1], chart.lcl[1]) == pytest.approx((0.194093, 0.0), abs=1e-6)
    assert (chart.ucl[11], chart.lcl[11]) == pytest.approx((0.176003, 0.015017), abs=1e-6)
    assert _flagged(chart.signals, "beyond_limits") == [10]


def test_u_chart_per_50_square_metres_matches_montgomery_example_7_5() -> None:
    """Montgomery Example 7.5 (nonconformities in dyed cloth, per 50 m2, 10 rolls); qicharts2's
    ex_7.5_1.rds: u-bar 1.423256, UCL 2.555038 / LCL 0.291474 at 500 m2, 2.688626 / 0.157885 at 400 m2."""
    metres = [500, 400, 650, 500, 475, 500, 600, 525, 600, 625]
    count = [14, 12, 20, 11, 7, 10, 21, 16, 19, 23]
    chart = compute_chart("u", numerator=count, denominator=metres, multiplier=50)
    assert chart.value[0] == pytest.approx(1.4)
    assert chart.centre[0] == pytest.approx(1.423256, abs=1e-6)
    assert (chart.ucl[0], chart.lcl[0]) == pytest.approx((2.555038, 0.291474), abs=1e-6)
    assert (chart.ucl[1], chart.lcl[1]) == pytest.approx((2.688626, 0.157885), abs=1e-6)
    assert (chart.ucl[9], chart.lcl[9]) == pytest.approx((2.435552, 0.410959), abs=1e-6)
    assert not chart.signals["special_cause"].any()


def test_xmr_with_20_baseline_points_matches_montgomery_example_6_5() -> None:
    """Montgomery Example 6.5 (cost per loan, 40 weeks, limits from weeks 1-20): mean 300.5,
    average moving range 148 / 19 = 7.789, UCL 321.22, LCL 279.78; weeks 39 and 40 plot above.
    Wheeler's 2.66: 300.5 + 2.66 * 7.7895 = 321.220; qicharts2's ex_6.5_3.rds, with 3 / 1.128,
    gives 321.216685, the same to the two decimals the book prints."""
    cost = [310, 288, 297, 298, 307, 303, 294, 297, 308, 306, 294, 299, 297, 299, 314, 295, 293, 306, 301, 304]
    cost += [305, 282, 305, 296, 314, 295, 287, 301, 298, 311, 310, 292, 305, 299, 304, 310, 304, 305, 333, 328]
    chart = compute_chart("xmr", value=cost, baseline_points=20)
    assert chart.baseline.tolist() == [True] * 20 + [False] * 20
    assert chart.centre == pytest.approx(np.full(40, 300.5))
    assert chart.ucl[0] == pytest.approx(300.5 + 2.66 * 148 / 19)
    assert (chart.ucl[39], chart.lcl[39]) == pytest.approx((321.22, 279.78), abs=5e-3)
    assert chart.ucl[0] == pytest.approx(321.216685, abs=0.01)
    assert chart.upper_2s[0] == pytest.approx(300.5 + 2 / 3 * 2.66 * 148 / 19)
    assert _flagged(chart.signals, "beyond_limits") == [38, 39]


def test_t_chart_matches_montgomery_example_7_6_hours_between_failures() -> None:
    """Montgomery Example 7.6 (hours between failures, y = t ** (1 / 3.6)); qicharts2's ex_7.6_1.rds:
    CL 430.040952 hours, UCL 6937.93, LCL 0. Our UCL uses Wheeler's 2.66 rather than 3 / 1.128:
    (5.389277 + 2.66 * 2.360921) ** 3.6 = 6940.08, 0.03% above qicharts2's."""
    hours = [286, 948, 536, 124, 816, 729, 4, 143, 431, 8, 2837, 596, 81, 227, 603, 492, 1199, 1214, 2831, 96]
    chart = compute_chart("t", value=hours)
    assert chart.value.tolist() == [float(h) for h in hours]
    assert chart.centre == pytest.approx(np.full(20, 430.040952), abs=1e-6)
    assert chart.ucl[0] == pytest.approx(6937.933488, rel=5e-4)
    assert chart.ucl[0] == pytest.approx(6940.084, abs=1e-2)
    assert chart.lcl == pytest.approx(np.zeros(20))  # 5.389 - 2.66 * 2.361 < 0 on the transformed scale
    assert not chart.signals["beyond_limits"].any()


def test_g_chart_limits_are_the_geometric_mean_plus_three_sd_from_scipy() -> None:
    """Benneyan (2001): g-bar +/- 3 sqrt(g-bar (g-bar + 1)); the same sd from scipy's geometric
    distribution counted from 0 (p = 1 / (g-bar + 1)). g-bar = 20: UCL = 20 + 3 sqrt(420) = 81.48."""
    between = [10, 35, 4, 22, 41, 8]
    chart = compute_chart("g", value=between)
    gbar = 20.0
    sd = float(stats.geom(1 / (gbar + 1), loc=-1).std())
    assert chart.centre == pytest.approx(np.full(6, gbar))
    assert chart.ucl[0] == pytest.approx(gbar + 3 * sd)
    assert chart.ucl[0] == pytest.approx(81.4817, abs=1e-4)
    assert chart.upper_2s[0] == pytest.approx(gbar + 2 * sd)
    assert chart.lcl == pytest.approx(np.zeros(6))  # floored at 0
    assert chart.lower_2s == pytest.approx(np.zeros(6))


def test_laney_p_prime_matches_the_formula_written_out_as_a_loop() -> None:
    """Laney (2002): z_i = (p_i - p-bar) / sigma_i, sigma_z = mean |MR of z| / 1.128,
    limits p-bar +/- 3 sigma_i sigma_z; computed here with plain Python floats."""
    num = [130, 95, 160, 120, 105, 150, 88, 140, 125, 110, 170, 100]
    den = [2400, 2100, 2600, 2300, 2200, 2500, 2000, 2450, 2350, 2250, 2700, 2150]
    pbar = sum(num) / sum(den)
    sig = [math.sqrt(pbar * (1 - pbar) / n) for n in den]
    z = [(x / n - pbar) / s for x, n, s in zip(num, den, sig, strict=True)]
    sigma_z = sum(abs(b - a) for a, b in zip(z, z[1:], strict=False)) / (len(z) - 1) / 1.128
    assert sigma_z == pytest.approx(2.067311, abs=1e-6)
    chart = compute_chart("p_prime", numerator=num, denominator=den)
    assert chart.centre[0] == pytest.approx(pbar)
    assert chart.ucl == pytest.approx([pbar + 3 * s * sigma_z for s in sig])
    assert chart.lcl == pytest.approx([pbar - 3 * s * sigma_z for s in sig])
    assert chart.upper_2s == pytest.approx([pbar + 2 * s * sigma_z for s in sig])
    assert chart.ucl[0] == pytest.approx(0.081764, abs=1e-6)


def test_laney_u_prime_matches_the_formula_with_a_multiplier() -> None:
    """Laney's u': sigma_i = sqrt(u-bar / e_i), widened by sigma_z; per 1,000 patient-days."""
    events = [40, 22, 61, 35, 18, 52, 30, 44]
    days = [9000, 8500, 9400, 8800, 8200, 9100, 8700, 9300]
    ubar = sum(events) / sum(days)
    sig = [math.sqrt(ubar / e) for e in days]
    z = [(c / e - ubar) / s for c, e, s in zip(events, days, sig, strict=True)]
    sigma_z = sum(abs(b - a) for a, b in zip(z, z[1:], strict=False)) / (len(z) - 1) / 1.128
    chart = compute_chart("u_prime", numerator=events, denominator=days, multiplier=1000)
    assert chart.centre[0] == pytest.approx(ubar * 1000)
    assert chart.ucl == pytest.approx([1000 * (ubar + 3 * s * sigma_z) for s in sig])
    assert chart.lcl == pytest.approx([1000 * max(ubar - 3 * s * sigma_z, 0.0) for s in sig])


def test_laney_p_prime_does_not_flag_ordinary_variation_that_a_p_chart_calls_special() -> None:
    """With 10,000 cases a month the binomial sigma (0.22 points) is far below the real month-to-month
    spread, so the p chart flags three months in ten; Laney's p' widens the limits by sigma_z and flags none."""
    num = [500, 560, 450, 610, 480, 530, 440, 590, 510, 470]
    den = [10_000] * 10
    p = compute_chart("p", numerator=num, denominator=den)
    pp = compute_chart("p_prime", numerator=num, denominator=den)
    assert _flagged(p.signals, "beyond_limits") == [3, 6, 7]
    assert not pp.signals["beyond_limits"].any()
    assert pp.centre == pytest.approx(p.centre)
    assert pp.ucl[0] - pp.centre[0] > 3 * (p.ucl[0] - p.centre[0])


def test_laney_falls_back_to_the_plain_chart_when_sigma_z_is_undefined() -> None:
    """One usable point (no moving range of z) or p-bar = 0 (every sigma_i zero): p' equals p."""
    one_p = compute_chart("p", numerator=[30], denominator=[2000])
    one_pp = compute_chart("p_prime", numerator=[30], denominator=[2000])
    assert one_pp.ucl == pytest.approx(one_p.ucl)
    zero = compute_chart("u_prime", numerator=[0, 0, 0], denominator=[5000, 6000, 5500], multiplier=1000)
    assert zero.centre.tolist() == [0.0, 0.0, 0.0]
    assert zero.ucl.tolist() == [0.0, 0.0, 0.0]
    assert not zero.signals["special_cause"].any()


# --- rules on constructed series ----------------------------------------------------------


def test_shift_of_seven_above_is_flagged_whole_and_its_sign_depends_on_improvement() -> None:
    values = [-0.5, 0.5, 0.4, 0.3, 0.6, 0.2, 0.1, 0.7, -0.3]
    up = _signals(values, improvement="increase")
    assert _flagged(up, "shift") == [1, 2, 3, 4, 5, 6, 7]
    assert up["side"].tolist() == ["", *["high"] * 7, ""]
    assert up["signal"].tolist() == ["", *["improvement"] * 7, ""]
    down = _signals(values, improvement="decrease")
    assert down["signal"].tolist() == ["", *["concern"] * 7, ""]


def test_shift_of_seven_below_is_low_improvement_for_decrease_and_concern_for_increase() -> None:
    values = [0.5, -0.5, -0.4, -0.3, -0.6, -0.2, -0.1, -0.7]
    down = _signals(values, improvement="decrease")
    assert _flagged(down, "shift") == [1, 2, 3, 4, 5, 6, 7]
    assert set(down.loc[1:, "side"]) == {"low"}
    assert set(down.loc[1:, "signal"]) == {"improvement"}
    assert set(_signals(values, improvement="increase").loc[1:, "signal"]) == {"concern"}


def test_shift_of_six_is_not_a_signal_but_a_configured_length_of_six_is() -> None:
    values = [-0.5, 0.5, 0.4, 0.3, 0.6, 0.2, 0.1, -0.3]
    assert not _signals(values)["shift"].any()
    assert _flagged(_signals(values, RuleSet(shift_length=6)), "shift") == [1, 2, 3, 4, 5, 6]
    assert not _signals(values + [0.2, 0.3], RuleSet(shift_length=8))["shift"].any()  # a run of 2 after a crossing


def test_point_on_the_centre_line_neither_breaks_nor_extends_a_shift() -> None:
    four_zero_three = [0.5, 0.4, 0.3, 0.6, 0.0, 0.2, 0.1, 0.7]
    frame = _signals(four_zero_three)
    assert _flagged(frame, "shift") == [0, 1, 2, 3, 5, 6, 7]
    assert frame.loc[4, "side"] == ""
    three_zero_three = [0.5, 0.4, 0.3, 0.0, 0.2, 0.1, 0.7]  # 6 points off the line: not 7
    assert not _signals(three_zero_three)["shift"].any()


def test_missing_month_inside_a_shift_is_skipped_and_the_run_continues() -> None:
    values = [0.5, 0.4, 0.3, NAN, 0.6, 0.2, 0.1, 0.7]
    frame = _signals(values)
    assert _flagged(frame, "shift") == [0, 1, 2, 4, 5, 6, 7]
    assert frame.loc[3, "special_cause"] == np.False_
    assert frame.loc[3, "side"] == ""


def test_rising_trend_of_six_is_high_and_five_is_not() -> None:
    rising = [-0.5, -0.3, -0.1, 0.1, 0.3, 0.5]
    frame = _signals(rising)
    assert _flagged(frame, "trend") == [0, 1, 2, 3, 4, 5]
    assert set(frame["side"]) == {"high"}
    assert set(frame["signal"]) == {"improvement"}
    assert set(_signals(rising, improvement="decrease")["signal"]) == {"concern"}
    assert not _signals(rising[1:])["trend"].any()


def test_falling_trend_is_low_and_an_improvement_when_decrease_is_better() -> None:
    falling = [0.9, 0.5, 0.3, 0.1, -0.1, -0.3, -0.5, 0.2]
    frame = _signals(falling, improvement="decrease")
    assert _flagged(frame, "trend") == [0, 1, 2, 3, 4, 5, 6]
    assert frame.loc[:6, "side"].tolist() == ["low"] * 7
    assert frame.loc[:6, "signal"].tolist() == ["improvement"] * 7
    assert frame.loc[7, "side"] == ""
    assert set(_signals(falling, improvement="increase").loc[:6, "signal"]) == {"concern"}


def test_tie_breaks_a_trend_and_a_gap_does_not() -> None:
    tie = [-0.5, -0.3, -0.1, -0.1, 0.1, 0.3, 0.5]
    assert not _signals(tie)["trend"].any()
    gap = [-0.5, -0.3, NAN, -0.1, 0.1, 0.3, 0.5]
    assert _flagged(_signals(gap), "trend") == [0, 1, 3, 4, 5, 6]


def test_trend_length_is_configurable() -> None:
    rising = [-0.5, -0.3, -0.1, 0.1, 0.3, 0.5]
    assert not _signals(rising, RuleSet(trend_length=7))["trend"].any()
    assert _flagged(_signals(rising[:4], RuleSet(trend_length=4)), "trend") == [0, 1, 2, 3]


def test_two_of_three_beyond_two_sigma_high_and_low() -> None:
    high = [0.1, 2.5, 0.3, 2.2, -0.4]
    frame = _signals(high)
    assert _flagged(frame, "two_of_three") == [1, 3]  # only the points beyond the 2-sigma line
    assert frame.loc[[1, 3], "signal"].tolist() == ["improvement", "improvement"]
    assert _signals(high, improvement="decrease").loc[[1, 3], "signal"].tolist() == ["concern", "concern"]
    low = [-0.1, -2.5, -2.1, 0.4]
    frame = _signals(low, improvement="decrease")
    assert _flagged(frame, "two_of_three") == [1, 2]
    assert frame.loc[[1, 2], "side"].tolist() == ["low", "low"]
    assert frame.loc[[1, 2], "signal"].tolist() == ["improvement", "improvement"]


def test_two_of_three_needs_the_same_side_and_three_consecutive_points() -> None:
    assert not _signals([0.1, 2.5, -2.5, 0.3])["two_of_three"].any()
    assert not _signals([2.5, 0.1, 0.2, 2.5])["two_of_three"].any()  # four apart
    assert not _signals([0.1, 2.5, 0.3, 0.2])["two_of_three"].any()
    assert _flagged(_signals([2.5, 0.1, NAN, 2.4]), "two_of_three") == [0, 3]  # the gap is skipped


def test_beyond_limits_high_and_low_but_not_on_the_limit() -> None:
    frame = _signals([0.0, 3.5, 3.0, -3.2, -3.0])
    assert _flagged(frame, "beyond_limits") == [1, 3]
    assert frame.loc[[1, 3], "side"].tolist() == ["high", "low"]
    assert frame.loc[[1, 3], "signal"].tolist() == ["improvement", "concern"]
    assert _signals([0.0, 3.5, -3.2], improvement="decrease").loc[[1, 2], "signal"].tolist() == [
        "concern",
        "improvement",
    ]


def test_rules_left_out_of_the_rule_set_do_not_fire() -> None:
    values = [0.5, 0.4, 0.3, 0.6, 0.2, 0.1, 0.7, 3.5]
    only_beyond = _signals(values, RuleSet(rules=frozenset({Rule.BEYOND_LIMITS})))
    assert _flagged(only_beyond, "beyond_limits") == [7]
    assert not only_beyond["shift"].any()
    assert _flagged(only_beyond, "special_cause") == [7]
    none = _signals(values, RuleSet(rules=frozenset()))
    assert not none["special_cause"].any()
    assert list(none.columns) == ["beyond_limits", "shift", "trend", "two_of_three", "special_cause", "side", "signal"]


def test_a_point_in_two_patterns_takes_the_side_of_the_earlier_rule_in_precedence() -> None:
    """Precedence beyond_limits, trend, two_of_three, shift (NHS-R plot-the-dots order)."""
    # The first point of a falling trend lies above the upper limit: "high" (beyond) wins over "low" (trend).
    falling_from_above = [3.6, 2.5, 1.5, 0.5, -0.5, -1.5]
    frame = _signals(falling_from_above, RuleSet(rules=frozenset({Rule.BEYOND_LIMITS, Rule.TREND})))
    assert frame.loc[0, "beyond_limits"] and frame.loc[0, "trend"]
    assert frame["side"].tolist() == ["high", "low", "low", "low", "low", "low"]
    # A peak between a rising and a falling trend takes the direction of the trend leading to it.
    peak = [-1.0, -0.6, -0.2, 0.2, 0.6, 1.0, 0.6, 0.2, -0.2, -0.6, -1.0]
    frame = _signals(peak, RuleSet(rules=frozenset({Rule.TREND})))
    assert frame["trend"].all()
    assert frame["side"].tolist() == ["high"] * 6 + ["low"] * 5
    # Seven points below the centre that rise throughout: the trend's side ("high") wins over the shift's.
    low_run_rising = [-1.5, -1.2, -1.0, -0.8, -0.6, -0.4, -0.2]
    frame = _signals(low_run_rising)
    assert frame["shift"].all() and frame["trend"].all()
    assert set(frame["side"]) == {"high"}


def test_runs_do_not_continue_across_a_phase_boundary() -> None:
    values = [0.5, 0.4, 0.3, 0.6, 0.2, 0.1, 0.7]
    assert _signals(values)["shift"].all()
    split = _signals(values, phase=np.array([0, 0, 0, 1, 1, 1, 1]))
    assert not split["shift"].any()


def test_special_causes_rejects_mismatched_lengths_and_bad_improvement() -> None:
    lines = _lines(3)
    with pytest.raises(ValueError, match="same length"):
        special_causes([1.0, 2.0], rules=RuleSet(), improvement="increase", **lines)
    with pytest.raises(ValueError, match="increase or decrease"):
        special_causes([1.0, 2.0, 3.0], rules=RuleSet(), improvement="up", **lines)


# --- rule sets ---------------------------------------------------------------------------


def test_rule_set_default_and_mdc_preset_are_all_four_rules_with_shift_7_trend_6() -> None:
    assert RuleSet.parse(None) == RuleSet() == RuleSet.parse("mdc") == PRESETS["mdc"]
    assert RuleSet().rules == frozenset(Rule)
    assert (RuleSet().shift_length, RuleSet().trend_length) == (7, 6)


def test_rule_set_western_electric_preset_uses_a_run_of_eight() -> None:
    we = RuleSet.parse("Western-Electric")
    assert we.shift_length == 8 and we.trend_length == 6
    assert {Rule.BEYOND_LIMITS, Rule.TWO_OF_THREE} <= we.rules


def test_rule_set_from_a_mapping_with_preset_and_overrides() -> None:
    spec = {"rules": ["beyond_limits", "SHIFT"], "shift_length": 9}
    parsed = RuleSet.parse(spec)
    assert parsed == RuleSet(rules=frozenset({Rule.BEYOND_LIMITS, Rule.SHIFT}), shift_length=9, trend_length=6)
    assert RuleSet.parse({"preset": "western_electric", "trend_length": 7}) == RuleSet(shift_length=8, trend_length=7)
    assert RuleSet.parse({"rules": []}).rules == frozenset()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nelson", "unknown SPC rule preset 'nelson'; allowed: mdc, western_electric"),
        ({"rules": ["shift", "four_of_five"]}, "unknown SPC rule 'four_of_five'; allowed: beyond_limits"),
        ({"rule": ["shift"]}, "unknown SPC rule setting"),
        ({"rules": "shift"}, "must be a list"),
        ({"shift_length": 1}, "shift_length must be an integer >= 2"),
        ({"trend_length": "6"}, "trend_length must be an integer >= 3"),
        (42, "preset name or a mapping"),
    ],
)
def test_rule_set_rejects_unknown_names_with_a_helpful_message(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RuleSet.parse(spec)  # type: ignore[arg-type]


# --- phases and baselines ------------------------------------------------------------------


def test_step_change_after_rephasing_gets_its_own_centre_line_and_limits() -> None:
    before = [10.0, 12.0, 11.0, 13.0, 9.0, 11.0, 11.0]  # mean 11, MR-bar (2+1+2+4+2+0)/6 = 11/6
    after = [20.0, 21.0, 19.0, 20.0, 22.0, 18.0, 20.0]  # mean 20, MR-bar (1+2+1+2+4+2)/6 = 2
    one = compute_chart("xmr", value=before + after)
    assert one.centre.tolist() == [15.5] * 14
    assert one.signals["shift"].all()  # one centre line: seven below, then seven above
    two = compute_chart("xmr", value=before + after, phases=(7,))
    assert two.phase.tolist() == [0] * 7 + [1] * 7
    assert two.centre.tolist() == [11.0] * 7 + [20.0] * 7
    assert two.ucl[0] == pytest.approx(11 + 2.66 * 11 / 6)
    assert two.lcl[13] == pytest.approx(20 - 2.66 * 2.0)
    assert not two.signals["special_cause"].any()
    assert compute_chart("xmr", value=before + after, phases=[0, 7]).centre.tolist() == two.centre.tolist()


def test_baseline_points_fix_the_limits_on_the_first_k_non_missing_points() -> None:
    values = [NAN, 5.0, 7.0, 6.0, 40.0, 50.0, 60.0]
    chart = compute_chart("xmr", value=values, baseline_points=3)
    assert chart.baseline.tolist() == [False, True, True, True, False, False, False]
    assert chart.centre == pytest.approx(np.full(7, 6.0))
    assert chart.ucl[6] == pytest.approx(6.0 + 2.66 * 1.5)  # MR 2 and 1
    assert _flagged(chart.signals, "beyond_limits") == [4, 5, 6]
    # More data after the baseline leaves the limits where they were.
    longer = compute_chart("xmr", value=values + [70.0, 80.0], baseline_points=3)
    assert longer.ucl[0] == chart.ucl[0]


def test_baseline_points_apply_per_phase_and_to_proportions() -> None:
    chart = compute_chart("p", numerator=[1, 2, 3, 4, 5, 6, 7, 8], denominator=[10] * 8, phases=(4,), baseline_points=2)
    assert chart.baseline.tolist() == [True, True, False, False, True, True, False, False]
    assert chart.centre.tolist() == pytest.approx([0.15] * 4 + [0.55] * 4)


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        ((0, 5, 3), "strictly increasing"),
        ((4, 4), "strictly increasing"),
        ((0, 8), "out of range"),
        ((-1,), "strictly increasing"),
    ],
)
def test_phase_indices_out_of_range_or_unsorted_are_rejected(phases: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_chart("xmr", value=np.arange(8.0), phases=phases)


def test_baseline_points_must_be_positive() -> None:
    with pytest.raises(ValueError, match="baseline_points"):
        compute_chart("xmr", value=[1.0, 2.0], baseline_points=0)


# --- edge cases --------------------------------------------------------------------------


def test_zero_events_throughout_collapses_limits_to_zero_without_signals() -> None:
    for chart_type in ("p", "p_prime", "u", "u_prime"):
        chart = compute_chart(chart_type, numerator=[0] * 12, denominator=[30] * 12)
        assert chart.centre.tolist() == [0.0] * 12
        assert chart.lcl.tolist() == [0.0] * 12 and chart.ucl.tolist() == [0.0] * 12
        assert not chart.signals["special_cause"].any()
        assert variation_icon(chart) == "common_cause"


def test_all_one_hundred_percent_has_p_bar_one_and_no_signals() -> None:
    chart = compute_chart("p", numerator=[25] * 10, denominator=[25] * 10, multiplier=100)
    assert chart.value.tolist() == [100.0] * 10
    assert chart.centre.tolist() == [100.0] * 10
    assert chart.ucl.tolist() == [100.0] * 10 and chart.lcl.tolist() == [100.0] * 10
    assert not chart.signals["special_cause"].any()
    assert not compute_chart("p_prime", numerator=[25] * 10, denominator=[25] * 10).signals["special_cause"].any()


def test_zero_denominator_is_a_missing_point_and_one_gives_clipped_limits() -> None:
    chart = compute_chart("p", numerator=[1, 0, 0, 1], denominator=[1, 0, 1, 4])
    assert math.isnan(chart.value[1])
    assert math.isnan(chart.ucl[1]) and math.isnan(chart.lcl[1])
    assert chart.centre[1] == pytest.approx(2 / 6)
    assert (chart.lcl[0], chart.ucl[0]) == (0.0, 1.0)  # 1/3 +/- 3 sqrt(2/9) clipped to [0, 1]
    assert (chart.lower_2s[0], chart.upper_2s[0]) == (0.0, 1.0)
    assert not chart.baseline[1]
    rate = compute_chart("u", numerator=[0, 2, 1], denominator=[1.0, 1.0, 0.0])
    assert rate.lcl[0] == 0.0 and rate.ucl[0] == pytest.approx(1 + 3)  # u-bar 1, sqrt(1 / 1)
    assert math.isnan(rate.value[2])


def test_missing_months_in_the_middle_and_at_the_ends() -> None:
    values = [NAN, 3.0, 5.0, NAN, 4.0, 6.0, NAN]
    chart = compute_chart("xmr", value=values)
    assert chart.centre == pytest.approx(np.full(7, 4.5))  # defined on missing months too
    assert chart.ucl[0] == pytest.approx(4.5 + 2.66 * (2 + 1 + 2) / 3)  # ranges across the gap
    assert chart.baseline.tolist() == [False, True, True, False, True, True, False]
    assert not chart.signals["special_cause"].any()
    assert variation_icon(chart) == "common_cause"
    counts = compute_chart("u", numerator=[NAN, 3, 4, NAN], denominator=[100, 100, NAN, 100], multiplier=1000)
    assert np.isnan(counts.value).tolist() == [True, False, True, True]
    assert counts.centre == pytest.approx(np.full(4, 30.0))


def test_a_series_with_one_point() -> None:
    p = compute_chart("p", numerator=[3], denominator=[20])
    assert p.centre.tolist() == [0.15]
    assert p.ucl[0] == pytest.approx(0.15 + 3 * math.sqrt(0.15 * 0.85 / 20))
    xmr = compute_chart("xmr", value=[7.0])
    assert xmr.centre.tolist() == [7.0]
    assert math.isnan(xmr.ucl[0]) and math.isnan(xmr.lcl[0])  # no moving range: no sigma
    assert variation_icon(xmr) == "common_cause"
    assert assurance_icon(xmr, 5.0, "increase") == "none"
    t = compute_chart("t", value=[30.0])
    assert t.centre[0] == pytest.approx(30.0) and math.isnan(t.ucl[0])


@pytest.mark.parametrize("chart_type", list(ChartType))
def test_an_empty_series_gives_an_empty_chart(chart_type: ChartType) -> None:
    if chart_type in (ChartType.P, ChartType.P_PRIME, ChartType.U, ChartType.U_PRIME):
        chart = compute_chart(chart_type, numerator=[], denominator=[])
    else:
        chart = compute_chart(chart_type, value=[])
    assert chart.value.size == chart.centre.size == chart.phase.size == 0
    assert len(chart.signals) == 0
    assert "special_cause" in chart.signals.columns
    assert variation_icon(chart) == "none"
    assert assurance_icon(chart, 0.5, "increase") == "none"


def test_all_missing_series_has_no_centre_and_no_icon() -> None:
    chart = compute_chart("p", numerator=[NAN, 1, 2], denominator=[10, 0, NAN])
    assert np.isnan(chart.centre).all() and np.isnan(chart.ucl).all()
    assert variation_icon(chart) == "none"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chart_type": "p", "numerator": [3, -1], "denominator": [5, 5]}, "negative"),
        ({"chart_type": "p", "numerator": [6], "denominator": [5]}, "exceed"),
        ({"chart_type": "u", "numerator": [1, 2], "denominator": [5]}, "differ in length"),
        ({"chart_type": "p", "value": [0.5]}, "numerator and denominator"),
        ({"chart_type": "xmr", "numerator": [1], "denominator": [2]}, "takes value"),
        ({"chart_type": "xmr", "value": [1.0], "multiplier": 100}, "count charts only"),
        ({"chart_type": "u", "numerator": [1], "denominator": [5], "multiplier": 0}, "positive"),
        ({"chart_type": "t", "value": [3.0, -1.0]}, "negative"),
        ({"chart_type": "g", "value": [3.0, -1.0]}, "negative"),
        ({"chart_type": "run", "value": [1.0]}, "ChartType"),
        ({"chart_type": "xmr", "value": [1.0], "improvement": "higher"}, "increase or decrease"),
    ],
)
def test_impossible_inputs_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_chart(**kwargs)  # type: ignore[arg-type]


def test_chart_arrays_are_read_only_and_the_callers_array_is_untouched() -> None:
    values = np.array([1.0, 2.0, 3.0])
    chart = compute_chart("xmr", value=values)
    assert isinstance(chart, Chart)
    assert values.flags.writeable
    with pytest.raises(ValueError):
        chart.value[0] = 5.0


def test_g_and_t_charts_read_long_gaps_as_improvement_for_a_harm_indicator() -> None:
    assert plotted_improvement("g", "decrease") == "increase"
    assert plotted_improvement(ChartType.T, "increase") == "decrease"
    assert plotted_improvement("p", "decrease") == "decrease"
    gaps = [5.0, 6.0, 4.0, 5.0, 7.0, 5.0, 6.0, 4.0, 5.0, 200.0]
    chart = compute_chart("t", value=gaps, improvement=plotted_improvement("t", "decrease"))
    assert chart.signals.loc[9, "beyond_limits"]
    assert variation_icon(chart) == "improvement_high"


# --- icons -------------------------------------------------------------------------------

_STABLE = [5.0, 6.0, 4.0, 5.5, 4.5, 5.0, 6.0, 4.0, 5.0, 5.5, 4.5, 5.0]


@pytest.mark.parametrize(
    ("last", "improvement", "icon"),
    [
        (20.0, "increase", "improvement_high"),
        (20.0, "decrease", "concern_high"),
        (-10.0, "decrease", "improvement_low"),
        (-10.0, "increase", "concern_low"),
        (5.2, "increase", "common_cause"),
    ],
)
def test_variation_icon_for_the_latest_point(last: float, improvement: str, icon: str) -> None:
    chart = compute_chart("xmr", value=[*_STABLE, last], baseline_points=12, improvement=improvement)
    assert variation_icon(chart) == icon


def test_variation_icon_ignores_an_earlier_signal_and_trailing_missing_months() -> None:
    earlier = compute_chart("xmr", value=[*_STABLE, 20.0, 5.0], baseline_points=12)
    assert earlier.signals.loc[12, "special_cause"]
    assert variation_icon(earlier) == "common_cause"
    trailing = compute_chart("xmr", value=[*_STABLE, 20.0, NAN, NAN], baseline_points=12)
    assert variation_icon(trailing) == "improvement_high"


def test_variation_icon_counts_a_run_the_latest_point_belongs_to() -> None:
    lifted = [*_STABLE, 5.6, 5.8, 5.7, 5.9, 5.6, 5.8, 5.7]  # seven above the mean of 5.0
    chart = compute_chart("xmr", value=lifted, baseline_points=12, improvement="decrease")
    assert chart.signals["shift"].iloc[-7:].all()
    assert variation_icon(chart) == "concern_high"


@pytest.mark.parametrize(
    ("target", "improvement", "icon"),
    [
        (1.0, "increase", "pass"),  # limits about 2.3 .. 7.7, all above the target
        (9.0, "increase", "fail"),
        (5.0, "increase", "hit_or_miss"),
        (9.0, "decrease", "pass"),
        (1.0, "decrease", "fail"),
        (5.0, "decrease", "hit_or_miss"),
        (None, "increase", "none"),
        (NAN, "decrease", "none"),
    ],
)
def test_assurance_icon_against_the_latest_limits(target: float | None, improvement: str, icon: str) -> None:
    chart = compute_chart("xmr", value=_STABLE)
    assert 2.0 < chart.lcl[-1] < 3.0 and 7.0 < chart.ucl[-1] < 8.0
    assert assurance_icon(chart, target, improvement) == icon


def test_assurance_icon_uses_the_latest_phase_and_counts_a_target_on_the_limit_as_met() -> None:
    chart = compute_chart("xmr", value=[*_STABLE, 50.0, 51.0, 49.0, 50.0], phases=(12,))
    assert assurance_icon(chart, 9.0, "increase") == "pass"  # the old phase would say fail
    zero = compute_chart("p", numerator=[0] * 6, denominator=[40] * 6)
    assert assurance_icon(zero, 0.0, "decrease") == "pass"  # never any harm, target zero
    assert assurance_icon(zero, 0.0, "increase") == "pass"
    assert assurance_icon(zero, 0.05, "increase") == "fail"


def test_assurance_icon_is_none_when_the_latest_point_has_no_limits() -> None:
    chart = compute_chart("xmr", value=[3.0])
    assert assurance_icon(chart, 1.0, "increase") == "none"
    with pytest.raises(ValueError, match="increase or decrease"):
        assurance_icon(chart, 1.0, "up")


# --- helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scoring", "rare", "large", "expected"),
    [
        ("proportion", False, False, ChartType.P),
        ("proportion", False, True, ChartType.P_PRIME),
        ("proportion", True, True, ChartType.G),
        ("ratio", False, False, ChartType.U),
        ("ratio", False, True, ChartType.U_PRIME),
        ("ratio", True, False, ChartType.T),
        ("continuous-variable", False, False, ChartType.XMR),
        ("continuous", True, True, ChartType.XMR),
    ],
)
def test_chart_type_for_scoring(scoring: str, rare: bool, large: bool, expected: ChartType) -> None:
    assert chart_type_for(scoring, rare=rare, large_denominators=large) is expected


def test_chart_type_for_unknown_scoring_is_rejected() -> None:
    with pytest.raises(ValueError, match="cohort"):
        chart_type_for("cohort")


def test_large_denominators_means_a_mean_over_one_thousand() -> None:
    assert LARGE_DENOMINATOR == 1000
    assert has_large_denominators([1500, 900, 0, math.nan])  # mean of 1500 and 900 = 1200
    assert not has_large_denominators([1000, 1000])
    assert not has_large_denominators([])


def test_days_between_events_from_dates_and_datetimes() -> None:
    days = [date(2025, 1, 3), date(2025, 1, 10), date(2025, 1, 10), date(2025, 3, 1)]
    assert days_between_events(days).tolist() == [7.0, 0.0, 50.0]
    assert days_between_events([datetime(2025, 1, 1, 6), datetime(2025, 1, 2, 18)]).tolist() == [1.5]
    assert days_between_events([date(2025, 1, 1)]).size == 0
    with pytest.raises(ValueError, match="order"):
        days_between_events([date(2025, 2, 1), date(2025, 1, 1)])


def test_cases_between_events_counts_the_cases_strictly_between() -> None:
    flags = [False, False, True, False, False, False, True, True, False, True, False]
    between = cases_between_events(flags)
    assert between.tolist() == [3, 0, 1]
    assert between.dtype == np.int64
    assert cases_between_events([True]).size == 0
    assert cases_between_events([0, 1, 0, 1]).tolist() == [1]  # type: ignore[list-item]
    with pytest.raises(ValueError, match="booleans"):
        cases_between_events([0.0, math.nan, 1.0])  # type: ignore[list-item]


def test_g_chart_from_flags_end_to_end() -> None:
    flags = ([False] * 30 + [True]) * 5 + [False] * 2 + [True]
    chart = compute_chart("g", value=cases_between_events(flags), improvement=plotted_improvement("g", "decrease"))
    assert chart.value.tolist() == [30.0] * 4 + [2.0]
    assert chart.centre[0] == pytest.approx(24.4)
    assert variation_icon(chart) == "common_cause"  # the lower limit of a g chart is 0
