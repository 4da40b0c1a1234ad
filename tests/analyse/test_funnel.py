"""Funnel plots against values computed by other routes: hand-summed Binomial / Poisson
probabilities (pure Python, no scipy), scipy tail probabilities, hand arithmetic for phi and
tau^2, and the output of FunnelPlotR's own functions (R package by C. Mainey, v0.3.2,
R/od_adjustment.R and R/od_limits.R run under R 4.2.2 on the data in the package's
dev/workingout_binom.R and tests/testthat/test-funnel_plot.R)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.analyse.funnel import Funnel, Overdispersion, funnel, funnel_curve

pytestmark = pytest.mark.filterwarnings("error")

Z95 = 1.959963984540054  # Phi^-1(0.975)
Z998 = 3.090232306167813  # Phi^-1(0.999)

# FunnelPlotR dev/workingout_binom.R: ten units, proportions.
FPR_NUM = [12, 30, 26, 50, 42, 71, 4, 29, 48, 36]
FPR_DEN = [82, 98, 100, 125, 162, 151, 12, 100, 82, 99]
# FunnelPlotR tests/testthat/test-funnel_plot.R: six units, observed / expected.
FPR_OBS = [100, 150, 180, 80, 120, 225]
FPR_EXP = [108, 112, 165, 95, 100, 220]


def _units(num: Sequence[float], den: Sequence[float]) -> pd.DataFrame:
    return pd.DataFrame({"unit": [f"u{i}" for i in range(len(num))], "numerator": num, "denominator": den})


def _binom_cdf(r: int, n: int, theta: float) -> float:
    return sum(math.comb(n, k) * theta**k * (1 - theta) ** (n - k) for k in range(0, r + 1)) if r >= 0 else 0.0


def _poisson_cdf(r: int, mu: float) -> float:
    return sum(math.exp(-mu) * mu**k / math.factorial(k) for k in range(0, r + 1)) if r >= 0 else 0.0


def _interpolated(cdf: Callable[[int], float], q: float) -> tuple[int, float]:
    """Spiegelhalter 2005 Appendix A.1.1: smallest r with F(r) >= q, a = (F(r)-q)/(F(r)-F(r-1))."""
    r = 0
    while cdf(r) < q:
        r += 1
    return r, (cdf(r) - q) / (cdf(r) - cdf(r - 1))


def _hand_limits_binomial(n: int, theta: float) -> dict[str, float]:
    """Lower limits (r - a)/n on the event count; upper limits as 1 - the lower limit of the
    non-event count (Binomial(n, 1 - theta)) at the complementary tail point."""
    out = {}
    for col, q in (("lower_95", 0.025), ("lower_998", 0.001)):
        r, a = _interpolated(lambda k: _binom_cdf(k, n, theta), q)
        out[col] = max(0.0, (r - a) / n)
    for col, q in (("upper_95", 0.025), ("upper_998", 0.001)):
        s, a = _interpolated(lambda k: _binom_cdf(k, n, 1 - theta), q)
        out[col] = min(1.0, 1 - max(0.0, (s - a) / n))
    return out


def test_unadjusted_proportion_limits_match_hand_summed_binomial_with_interpolation() -> None:
    """Expected: Spiegelhalter's interpolated Binomial limits summed by hand in pure Python
    (lower tail on events, upper tail on non-events), target 0.1, n = 20, 50, 200."""
    f = funnel(_units([2, 5, 20], [20, 50, 200]), kind="proportion", target=0.1, overdispersion="none")
    assert f.method is Overdispersion.NONE and f.tau2 == 0.0
    for row in f.units.itertuples():
        hand = _hand_limits_binomial(int(row.denominator), 0.1)
        for col, value in hand.items():
            assert getattr(row, col) == pytest.approx(value, abs=1e-10), (row.denominator, col)
    # One literal, n = 50 upper 95%: F(9) = 0.975462 >= 0.975 > F(8) = 0.942133 (Binomial(50, 0.1)),
    # a = (0.975462 - 0.975) / 0.033329 = 0.013864 -> (9 + 1 - 0.013864) / 50 = 0.199723.
    assert f.units.loc[1, "upper_95"] == pytest.approx(0.199723, abs=1e-6)


def test_unadjusted_flags_exactly_when_the_exact_tail_probability_is_below_nominal() -> None:
    """Expected from scipy.stats.binom.sf at target 0.02, n = 10: one event has P(R>=1) = 0.183
    (in control; Spiegelhalter's un-complemented upper limit 0.0946 would flag it), two events
    P(R>=2) = 0.0162 < 0.025 (high_95), three P(R>=3) = 0.00086 < 0.001 (high_998)."""
    assert stats.binom.sf(0, 10, 0.02) == pytest.approx(0.18293, abs=1e-5)
    assert stats.binom.sf(1, 10, 0.02) == pytest.approx(0.016178, abs=1e-6)
    assert stats.binom.sf(2, 10, 0.02) == pytest.approx(0.000864, abs=1e-6)
    f = funnel(_units([0, 1, 2, 3], [10, 10, 10, 10]), kind="proportion", target=0.02, overdispersion="none")
    assert list(f.units["outlier"]) == ["", "", "high_95", "high_998"]


@pytest.mark.parametrize("theta", [0.01, 0.07, 0.3, 0.5, 0.93])
def test_in_control_unit_falls_outside_each_limit_with_at_most_nominal_probability(theta: float) -> None:
    """Expected: for every n in 1..80, P(R/n above upper) <= 1 - q and P(R/n below lower) <= q
    under Binomial(n, theta), summed with scipy.stats.binom.pmf over the flagged counts
    (the property Manktelow & Seaton, PLoS One 2012, ask of funnel limits)."""
    ns = np.arange(1, 81)
    f = funnel(_units([0] * len(ns), list(ns)), kind="proportion", target=theta, overdispersion="none")
    for row in f.units.itertuples():
        n = int(row.denominator)
        r = np.arange(n + 1)
        pmf = stats.binom.pmf(r, n, theta)
        for col, tail in (("upper_95", 0.025), ("upper_998", 0.001)):
            assert pmf[r / n > getattr(row, col)].sum() <= tail + 1e-12
        for col, tail in (("lower_95", 0.025), ("lower_998", 0.001)):
            assert pmf[r / n < getattr(row, col)].sum() <= tail + 1e-12


def test_ratio_limits_are_interpolated_poisson_prediction_limits() -> None:
    """Expected: Poisson(E) probabilities summed by hand for O/E with target 1 at E = 15, 20, 30
    (FunnelPlotR's test-poisson_limits.R denominators). Its chi-square limits there
    (lower 95% 0.5596924 at E = 15) are a confidence interval for E treated as observed:
    P(O/15 < 0.5597) = P(O <= 8) = 0.037 > 0.025 (scipy.stats.poisson.cdf), which these avoid."""
    f = funnel(_units([15, 20, 30], [15.0, 20.0, 30.0]), kind="ratio", target=1.0, overdispersion="none")
    for row in f.units.itertuples():
        e = float(row.denominator)

        def cdf(k: int, e: float = e) -> float:
            return _poisson_cdf(k, e)

        r, a = _interpolated(cdf, 0.025)
        assert row.lower_95 == pytest.approx((r - a) / e, abs=1e-10)
        r, a = _interpolated(cdf, 0.999)
        assert row.upper_998 == pytest.approx((r + 1 - a) / e, abs=1e-10)
    lower15 = f.units.loc[0, "lower_95"]
    assert stats.poisson.cdf(math.ceil(lower15 * 15) - 1, 15) <= 0.025
    assert stats.poisson.cdf(8, 15) == pytest.approx(0.0374, abs=1e-4)
    assert lower15 < 8 / 15 < 0.5596924


def test_proportion_additive_matches_funnelplotr_phi_tau2_and_limits() -> None:
    """Expected: FunnelPlotR 0.3.2 (transformed_zscore, winsorisation trim 0.1, phi_func,
    tau_func, OD_limits with data_type "PR") run under R 4.2.2 on dev/workingout_binom.R's data.
    FunnelPlotR rounds the normal quantiles to 1.959964 and 3.090232, hence limits to 1e-7."""
    f = funnel(_units(FPR_NUM, FPR_DEN), kind="proportion", overdispersion="additive")
    assert f.target == pytest.approx(696 / 2022)
    assert f.phi == pytest.approx(4.00905291702055, rel=1e-12)
    assert f.tau2 == pytest.approx(0.00868825971002332, rel=1e-12)
    assert f.method is Overdispersion.ADDITIVE
    u = f.units
    assert u.loc[0, "lower_95"] == pytest.approx(0.1622939638933, abs=1e-7)
    assert u.loc[0, "upper_95"] == pytest.approx(0.553809587628, abs=1e-7)
    assert u.loc[6, "lower_998"] == pytest.approx(0.00919064991108, abs=1e-7)
    assert u.loc[6, "upper_998"] == pytest.approx(0.839011747378, abs=1e-7)
    assert u.loc[9, "upper_998"] == pytest.approx(0.665623836799, abs=1e-7)
    # un-winsorised: the same functions with trim_by = 0
    g = funnel(_units(FPR_NUM, FPR_DEN), kind="proportion", overdispersion="additive", winsorise=0.0)
    assert g.phi == pytest.approx(6.03739099798277, rel=1e-12)
    assert g.tau2 == pytest.approx(0.0143564578711592, rel=1e-12)
    assert g.units.loc[4, "lower_95"] == pytest.approx(0.1374682413281, abs=1e-7)


def test_ratio_phi_and_tau2_match_funnelplotr_sqrt_scale_and_limits_are_back_transformed() -> None:
    """Expected phi, tau^2: FunnelPlotR 0.3.2 with data_type "SR", sr_method "CQC", trim 0.1 and
    0.05, on test-funnel_plot.R's data. FunnelPlotR's CQC limits stay on the root scale
    (1 +/- z sd); these are squared back, (1 +/- z sqrt(s^2 + tau^2))^2, by hand."""
    f = funnel(_units(FPR_OBS, FPR_EXP), kind="ratio", target=1.0, overdispersion="additive")
    assert f.phi == pytest.approx(2.32717825759412, rel=1e-12)
    assert f.tau2 == pytest.approx(0.00343978015418627, rel=1e-12)
    g = funnel(_units(FPR_OBS, FPR_EXP), kind="ratio", target=1.0, overdispersion="additive", winsorise=0.05)
    assert g.phi == pytest.approx(2.74678261151236, rel=1e-12)
    assert g.tau2 == pytest.approx(0.00440597597932009, rel=1e-12)
    sd = math.sqrt(1 / (4 * 108) + 0.00343978015418627)
    assert f.units.loc[0, "lower_95"] == pytest.approx((1 - Z95 * sd) ** 2, abs=1e-12)
    assert f.units.loc[0, "upper_998"] == pytest.approx((1 + Z998 * sd) ** 2, abs=1e-12)
    # FunnelPlotR's un-squared 95% upper for unit 1 is 1.14868100064 (with z rounded to 1.959964):
    # the same sd, not squared.
    assert 1 + 1.959964 * sd == pytest.approx(1.14868100064, abs=1e-10)


def test_phi_and_tau2_on_a_constructed_dataset_by_hand() -> None:
    """Expected: hand arithmetic. Five units of 100 cases, 10, 20, 30, 40, 50 events, target 0.3.
    z_i = 2 sqrt(100) (asin sqrt(p_i) - asin sqrt(0.3)); winsorised at 20% each end with
    type-7 quantiles (positions 0.8 and 3.2 of the sorted five); phi = mean of squares;
    tau^2 = (5 phi - 4) / (sum w - sum w^2 / sum w), w = 400 (so the denominator is 1600)."""
    ps = [0.1, 0.2, 0.3, 0.4, 0.5]
    t = math.asin(math.sqrt(0.3))
    z = sorted(20 * (math.asin(math.sqrt(p)) - t) for p in ps)
    lo = z[0] + 0.8 * (z[1] - z[0])
    hi = z[3] + 0.2 * (z[4] - z[3])
    phi = sum(min(max(v, lo), hi) ** 2 for v in z) / 5
    tau2 = (5 * phi - 4) / (2000 - 5 * 400**2 / 2000)
    f = funnel(_units([10, 20, 30, 40, 50], [100] * 5), kind="proportion", target=0.3, winsorise=0.2)
    assert f.phi == pytest.approx(phi, rel=1e-12)
    assert f.method is Overdispersion.MULTIPLICATIVE and f.tau2 == 0.0
    sd = math.sqrt(phi) / 20
    assert f.units.loc[0, "lower_95"] == pytest.approx(math.sin(t - Z95 * sd) ** 2, abs=1e-12)
    assert f.units.loc[0, "upper_998"] == pytest.approx(math.sin(t + Z998 * sd) ** 2, abs=1e-12)
    assert f.units.loc[0, "z"] == pytest.approx(z[0] / math.sqrt(phi), rel=1e-12)
    a = funnel(_units([10, 20, 30, 40, 50], [100] * 5), kind="proportion", target=0.3, winsorise=0.2,
               overdispersion="additive")  # fmt: skip
    assert a.tau2 == pytest.approx(tau2, rel=1e-12)
    assert a.units.loc[4, "z"] == pytest.approx(z[4] / 20 / math.sqrt(1 / 400 + tau2), rel=1e-12)


def test_adjustment_only_when_phi_exceeds_the_threshold() -> None:
    """Expected: phi = 4.009 (FunnelPlotR, above) is reported either way; with
    phi_threshold = 5, or on data that are under-dispersed (phi < 1), nothing is applied and the
    limits are the exact ones of overdispersion="none"."""
    units = _units(FPR_NUM, FPR_DEN)
    exact = funnel(units, kind="proportion", overdispersion="none")
    assert exact.phi == pytest.approx(4.00905291702055)
    high = funnel(units, kind="proportion", overdispersion="additive", phi_threshold=5.0)
    assert high.method is Overdispersion.NONE and high.tau2 == 0.0
    pd.testing.assert_frame_equal(high.units, exact.units)
    calm = funnel(_units([30, 29, 31, 30], [100, 100, 100, 100]), kind="proportion", overdispersion="multiplicative")
    assert calm.phi < 1 and calm.method is Overdispersion.NONE
    with pytest.raises(ValueError, match="phi_threshold"):
        funnel(units, kind="proportion", phi_threshold=0.5)


def test_a_unit_is_an_outlier_only_outside_its_limits() -> None:
    """Expected: the flags follow from strict comparisons with the unit's own limits in every
    method; unit u0 (12/82) is low_998 unadjusted and only low_95 once the funnel is widened
    (limits from FunnelPlotR above: 0.1623 additive 95%)."""
    units = _units(FPR_NUM, FPR_DEN)
    for method in Overdispersion:
        u = funnel(units, kind="proportion", overdispersion=method).units
        expect = np.select(
            [u.value > u.upper_998, u.value > u.upper_95, u.value < u.lower_998, u.value < u.lower_95],
            ["high_998", "high_95", "low_998", "low_95"],
            default="",
        )
        assert list(u["outlier"]) == list(expect)
    assert funnel(units, kind="proportion", overdispersion="none").units.loc[0, "outlier"] == "low_998"
    assert funnel(units, kind="proportion", overdispersion="additive").units.loc[0, "outlier"] == "low_95"


def test_a_value_exactly_on_the_limit_is_in_control() -> None:
    """Expected: Binomial(1, 0.5) (hand): upper 95% tail on non-events gives limit 1 and lower
    0, so 0/1 and 1/1 sit on the limits and are not flagged."""
    f = funnel(_units([0, 1], [1, 1]), kind="proportion", target=0.5, overdispersion="none")
    assert list(f.units["upper_95"]) == [1.0, 1.0] and list(f.units["lower_95"]) == [0.0, 0.0]
    assert list(f.units["outlier"]) == ["", ""]


def test_zero_denominator_and_missing_values_get_no_value_no_limits_no_flag() -> None:
    """Expected: units u1 (0 cases), u2 (NaN events), u3 (NaN cases) are undefined and left out
    of the pooled target, which is (5 + 50) / (100 + 100) = 0.275 from u0 and u4 alone."""
    units = _units([5, 0, np.nan, 3, 50], [100, 0, 40, np.nan, 100])
    f = funnel(units, kind="proportion", overdispersion="none")
    assert f.target == pytest.approx(0.275)
    bad = f.units.iloc[[1, 2, 3]]
    cols = ["value", "z", "lower_95", "upper_95", "lower_998", "upper_998"]
    assert bad[cols].isna().all().all()
    assert list(bad["outlier"]) == ["", "", ""]
    assert list(f.units["unit"]) == ["u0", "u1", "u2", "u3", "u4"]
    assert f.units.loc[0, "outlier"] == "low_998" and f.units.loc[4, "outlier"] == "high_998"


def test_denominator_one() -> None:
    """Expected (hand, Binomial(1, theta)): at theta 0.3 nothing can be significant, limits [0, 1];
    at theta 0.01, 1/1 has P = 0.01: beyond 95% (0.025) but not 99.8% (0.001). Upper 95% limit
    (0 + 1 - a) with a = (0.99 - 0.975) / 0.99."""
    f = funnel(_units([0, 1], [1, 1]), kind="proportion", target=0.3, overdispersion="none")
    assert list(f.units["outlier"]) == ["", ""]
    assert f.units.loc[0, "lower_998"] == 0.0 and f.units.loc[0, "upper_998"] == 1.0
    g = funnel(_units([0, 1], [1, 1]), kind="proportion", target=0.01, overdispersion="none")
    assert g.units.loc[1, "upper_95"] == pytest.approx(1 - 0.015 / 0.99, abs=1e-12)
    assert list(g.units["outlier"]) == ["", "high_95"]
    r = funnel(_units([0, 4], [1.0, 1.0]), kind="ratio", target=1.0, overdispersion="none")
    # Poisson(1): P(O >= 4) = 0.0190 < 0.025, P(O >= 4) > 0.001 -> high_95 (scipy.stats.poisson.sf)
    assert stats.poisson.sf(3, 1.0) == pytest.approx(0.01899, abs=1e-5)
    assert list(r.units["outlier"]) == ["", "high_95"]


def test_zero_events_everywhere_target_zero_no_outliers_no_warnings() -> None:
    """Expected: pooled target 0/300 = 0, every z 0, phi 0 (so no adjustment), lower limits 0,
    and nothing flagged; the module's filterwarnings=error proves no warning was raised."""
    for kind in ("proportion", "ratio"):
        for method in Overdispersion:
            f = funnel(_units([0, 0, 0], [50, 100, 150]), kind=kind, overdispersion=method)
            assert f.target == 0.0 and f.phi == 0.0 and f.method is Overdispersion.NONE
            assert (f.units["z"] == 0).all() and (f.units["lower_95"] == 0).all()
            assert list(f.units["outlier"]) == ["", "", ""]
    # An explicit target of 0 flags any event: P(R >= 1) = 0.
    g = funnel(_units([0, 1], [50, 50]), kind="proportion", target=0.0, overdispersion="none")
    assert list(g.units["outlier"]) == ["", "high_998"]


def test_target_one_proportion_all_events_is_in_control() -> None:
    """Expected: Binomial(n, 1) is degenerate at n; 100% everywhere is the target itself."""
    f = funnel(_units([20, 40], [20, 40]), kind="proportion", overdispersion="additive")
    assert f.target == 1.0 and f.phi == 0.0
    assert list(f.units["outlier"]) == ["", ""]
    assert (f.units["upper_998"] == 1.0).all()


def test_single_unit() -> None:
    """Expected: one unit is its own pooled target (z = 0, in control); phi cannot be estimated
    from one unit and is 1.0 with no adjustment, even against an external target."""
    f = funnel(_units([7], [40]), kind="proportion")
    assert f.target == pytest.approx(7 / 40) and f.phi == 1.0 and f.method is Overdispersion.NONE
    assert f.units.loc[0, "z"] == 0.0 and f.units.loc[0, "outlier"] == ""
    g = funnel(_units([30], [40]), kind="proportion", target=0.2)
    assert g.phi == 1.0 and g.units.loc[0, "outlier"] == "high_998"


def test_multiplier_scales_values_limits_and_target() -> None:
    """Expected: the same funnel per 1,000 patient-days is the per-day one x 1000. The target is
    given on the numerator / denominator scale (FunnelPlotR's convention: 1 for O/E even when
    shown x 100, HSMR-style) and returned x multiplier; tau^2 is FunnelPlotR's (above)."""
    units = _units([3, 12, 40], [2000.0, 5000.0, 9000.0])
    base = funnel(units, kind="ratio")
    per_k = funnel(units, kind="ratio", multiplier=1000)
    assert per_k.target == pytest.approx(base.target * 1000) == pytest.approx(55 / 16000 * 1000)
    for col in ("value", "lower_95", "upper_95", "lower_998", "upper_998"):
        np.testing.assert_allclose(per_k.units[col], base.units[col] * 1000, rtol=1e-12)
    assert list(per_k.units["outlier"]) == list(base.units["outlier"])
    given = funnel(units, kind="ratio", target=0.004, multiplier=1000)
    assert given.target == pytest.approx(4.0)
    curve = funnel_curve(given, [5000.0])
    assert curve.loc[0, "target"] == pytest.approx(4.0)
    assert curve.loc[0, "upper_95"] == pytest.approx(given.units.loc[1, "upper_95"], rel=1e-12)
    hsmr = funnel(_units(FPR_OBS, FPR_EXP), kind="ratio", target=1.0, multiplier=100, overdispersion="additive")
    assert hsmr.target == 100 and hsmr.tau2 == pytest.approx(0.00343978015418627)
    sd = math.sqrt(1 / (4 * 108) + 0.00343978015418627)
    assert hsmr.units.loc[0, "upper_95"] == pytest.approx(100 * (1 + Z95 * sd) ** 2, rel=1e-12)
    assert hsmr.units.loc[0, "value"] == pytest.approx(100 * 100 / 108)


def test_funnel_curve_reproduces_the_unit_limits() -> None:
    """Expected: the curve at the units' own denominators equals their limits, for every method;
    a denominator of 0 has none."""
    units = _units(FPR_NUM, FPR_DEN)
    for method in Overdispersion:
        f = funnel(units, kind="proportion", overdispersion=method)
        curve = funnel_curve(f, FPR_DEN + [0])
        for col in ("lower_95", "upper_95", "lower_998", "upper_998"):
            np.testing.assert_allclose(curve[col].to_numpy()[:-1], f.units[col].to_numpy(), rtol=1e-12)
        assert curve.iloc[-1][["lower_95", "upper_998", "target"]].isna().all()
    r = funnel(_units(FPR_OBS, FPR_EXP), kind="ratio", target=1.0)
    curve = funnel_curve(r, np.linspace(1, 300, 50))
    assert (curve["lower_998"] <= curve["lower_95"]).all() and (curve["upper_95"] <= curve["upper_998"]).all()
    assert curve["upper_95"].iloc[-1] < curve["upper_95"].iloc[0]  # it narrows: a funnel


def test_invalid_input_is_refused() -> None:
    """Expected: malformed input raises instead of drawing a wrong funnel."""
    with pytest.raises(ValueError, match="kind"):
        funnel(_units([1], [2]), kind="rate")
    with pytest.raises(ValueError, match="numerator <= denominator"):
        funnel(_units([5], [2]), kind="proportion")
    with pytest.raises(ValueError, match="whole counts"):
        funnel(_units([1.5], [4]), kind="proportion")
    with pytest.raises(ValueError, match="repeated"):
        funnel(pd.DataFrame({"unit": ["a", "a"], "numerator": [1, 2], "denominator": [5, 5]}), kind="proportion")
    with pytest.raises(ValueError):
        funnel(_units([1], [2]), kind="proportion", overdispersion="random")
    with pytest.raises(ValueError, match="target"):
        funnel(_units([1], [2]), kind="proportion", target=1.5)


def test_funnel_is_a_frozen_record() -> None:
    f = funnel(_units([1, 2], [10, 10]), kind="proportion")
    assert isinstance(f, Funnel) and f.kind == "proportion"
    with pytest.raises(AttributeError):
        f.phi = 2.0  # type: ignore[misc]
    assert list(f.units.columns) == [
        "unit", "numerator", "denominator", "value", "z",
        "lower_95", "upper_95", "lower_998", "upper_998", "outlier",
    ]  # fmt: skip
