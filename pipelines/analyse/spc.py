"""Statistical process control (SPC) charts and NHS England "Making Data Count" icons.

A monthly quality report should tell two kinds of variation apart: *common cause*
(the month-to-month noise of a stable process) and *special cause* (something changed).
Shewhart control charts do this with limits at three sigma around the centre line plus
a few run rules; NHS England's "Making Data Count" (MDC) guidance ("SPC and the icons")
turns the result for the latest month into a variation icon and, given a target, an
assurance icon. This module is the one computation behind both the drawn chart and the
board icons, so that the two can never disagree.

Charts (sigma per point, limits at centre +/- 3 sigma, warning lines at +/- 2 sigma):

* ``p``: proportion with varying denominators, p-bar = sum(x) / sum(n) over the
  baseline, sigma_i = sqrt(p-bar (1 - p-bar) / n_i), limits clipped to [0, 1]
  (Montgomery, *Introduction to Statistical Quality Control*, sec. 7.2).
* ``u``: events per unit of exposure, u-bar = sum(c) / sum(e), sigma_i = sqrt(u-bar / e_i),
  lower limit floored at 0 (Montgomery sec. 7.3).
* ``p_prime`` / ``u_prime``: Laney (2002), "Improved control charts for attributes",
  *Quality Engineering* 14(4). With large denominators the binomial / Poisson sigma
  shrinks like 1/sqrt(n) while real month-to-month variation does not, so a plain p chart
  flags nearly every month. Laney standardises z_i = (p_i - p-bar) / sigma_i, measures the
  spread of z by its average moving range (sigma_z = mean|MR_z| / 1.128, as for an
  individuals chart) and widens the limits to p-bar +/- 3 sigma_i sigma_z.
* ``xmr``: individuals chart for a continuous value (median days, a 90th percentile...):
  mean +/- 2.66 x the average moving range (Wheeler, *Understanding Variation*;
  2.66 = 3 / d2 with d2 = 1.128 for ranges of two). Not floored at zero.
* ``g``: number of cases (opportunities) between successive rare events, a geometric
  count: centre g-bar, limits g-bar +/- 3 sqrt(g-bar (g-bar + 1)), lower floored at 0
  (Benneyan 2001, "Number-between g-type statistical quality control charts for
  monitoring adverse events", *Health Care Management Science* 4). Low values mean
  events coming closer together, i.e. more frequent harm.
* ``t``: days between rare events. Exponential waiting times are made near-normal by
  y = t ** (1 / 3.6) (Nelson 1994, *J. Quality Technology* 26(3); Provost & Murray,
  *The Health Care Data Guide*, the t chart; Montgomery Example 7.6); XmR limits are
  computed on y and transformed back to days. A negative lower limit on y is floored
  at 0 before back-transforming.

For g and t charts a *high* value is few events: pass ``plotted_improvement(chart_type,
indicator_improvement)`` as ``improvement`` so that a long gap between harms reads as an
improvement for a "decrease" indicator.

Rules (``Rule``), each evaluated within a phase:

* ``beyond_limits``: a point beyond a 3-sigma limit (Shewhart).
* ``shift``: a run of N (MDC default 7) points on one side of the centre line.
  Points exactly on the centre line neither break nor extend a run (Anhoej / qicharts2
  convention; "exactly" allows 1e-9 relative rounding); missing months are skipped, so a
  run continues across a gap: a missing month is no evidence that the process moved
  back, and MDC charts simply leave the month out.
* ``trend``: N (MDC default 6) consecutive non-missing points each strictly higher (or each
  strictly lower) than the one before; a tie breaks the trend (it is not a move in
  either direction), a gap is skipped as for shifts.
* ``two_of_three``: two of three consecutive non-missing points beyond the same 2-sigma
  line (Western Electric *Statistical Quality Control Handbook*, 1956; MDC "close to the
  limits"). Only the points beyond the line are flagged.

The whole run or trend is flagged, not only the point that completed it, as MDC colours
every point of a run. Where one point belongs to several patterns its side is taken
in the order beyond_limits, trend, two_of_three, shift (the order of the NHS-R
"plot the dots" implementation of MDC).

Missing (NaN) inputs and zero denominators give NaN points, never an error; limits that
cannot be estimated (one point, no denominator) are NaN. Impossible inputs (negative
counts, more events than cases for a proportion, negative waiting times) raise
``ValueError``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.typing import ArrayLike

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Wheeler's scaling factor for XmR natural process limits: 3 / d2 (d2 = 1.128), rounded as Wheeler and MDC print it.
XMR_FACTOR = 2.66
#: Bias-correction constant d2 for moving ranges of two (mean range of two standard normals = 2 / sqrt(pi)).
D2 = 1.128
#: Power of the t chart transform y = t ** (1 / T_POWER) (Nelson 1994; Provost & Murray).
T_POWER = 3.6
#: Mean denominator per point above which a p / u chart is replaced by Laney's p' / u'.
#: Laney (2002) gives no fixed cut-off; his point is that the binomial sigma shrinks like
#: 1 / sqrt(n) while real between-month variation does not. Around a thousand cases a month
#: the p chart limits of hospital data are typically narrower than that variation, so we
#: switch there (see ``has_large_denominators``).
LARGE_DENOMINATOR = 1000.0

_REL_TOL = 1e-9
_NONE = ""


class ChartType(StrEnum):
    P = "p"
    P_PRIME = "p_prime"
    U = "u"
    U_PRIME = "u_prime"
    XMR = "xmr"
    G = "g"
    T = "t"


_COUNT_CHARTS = frozenset({ChartType.P, ChartType.P_PRIME, ChartType.U, ChartType.U_PRIME})
_PROPORTION_CHARTS = frozenset({ChartType.P, ChartType.P_PRIME})
_LANEY_CHARTS = frozenset({ChartType.P_PRIME, ChartType.U_PRIME})


class Rule(StrEnum):
    BEYOND_LIMITS = "beyond_limits"
    SHIFT = "shift"
    TREND = "trend"
    TWO_OF_THREE = "two_of_three"


#: Side precedence when a point belongs to several patterns (module docstring).
_SIDE_ORDER = (Rule.BEYOND_LIMITS, Rule.TREND, Rule.TWO_OF_THREE, Rule.SHIFT)


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


@dataclass(frozen=True)
class RuleSet:
    """Which special-cause rules apply and the run lengths of ``shift`` and ``trend``.

    The default is NHS England Making Data Count: all four rules, a shift of 7 and a trend of 6.
    """

    rules: frozenset[Rule] = frozenset(Rule)
    shift_length: int = 7
    trend_length: int = 6

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", frozenset(_rule(r) for r in self.rules))
        if not _is_int(self.shift_length) or self.shift_length < 2:
            raise ValueError(f"shift_length must be an integer >= 2, got {self.shift_length!r}")
        if not _is_int(self.trend_length) or self.trend_length < 3:
            raise ValueError(f"trend_length must be an integer >= 3, got {self.trend_length!r}")

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | str | RuleSet | None) -> RuleSet:
        """A rule set from an indicator's YAML ``spc_rules`` entry.

        ``None`` is the default (MDC); a string names a preset (``mdc``, ``western_electric``);
        a mapping may name a ``preset`` to start from and override ``rules`` (a list of rule
        names), ``shift_length`` and ``trend_length``. Anything else raises ``ValueError``
        naming what is allowed.
        """
        if spec is None:
            return DEFAULT_RULES
        if isinstance(spec, RuleSet):
            return spec
        if isinstance(spec, str):
            return _preset(spec)
        if not isinstance(spec, Mapping):
            raise ValueError(f"SPC rules must be a preset name or a mapping, got {type(spec).__name__}")
        unknown = set(spec) - {"preset", "rules", "shift_length", "trend_length"}
        if unknown:
            raise ValueError(
                f"unknown SPC rule setting(s) {', '.join(sorted(map(str, unknown)))}; "
                "allowed: preset, rules, shift_length, trend_length"
            )
        base = _preset(spec["preset"]) if "preset" in spec else DEFAULT_RULES
        rules: frozenset[Rule] = base.rules
        if "rules" in spec:
            listed = spec["rules"]
            if isinstance(listed, str) or not isinstance(listed, Sequence | set | frozenset):
                raise ValueError(f"SPC 'rules' must be a list of rule names, got {listed!r}")
            rules = frozenset(_rule(r) for r in listed)
        return cls(
            rules=rules,
            shift_length=spec.get("shift_length", base.shift_length),
            trend_length=spec.get("trend_length", base.trend_length),
        )


def _rule(name: object) -> Rule:
    try:
        return Rule(str(name).strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Rule)
        raise ValueError(f"unknown SPC rule {name!r}; allowed: {allowed}") from None


DEFAULT_RULES = RuleSet()

#: Named rule sets. ``western_electric``: the 1956 handbook's 3-sigma, 2-of-3 and run-of-8
#: rules, with the six-point trend of Montgomery's sensitizing rules (Nelson 1984); the
#: handbook's 4-of-5-beyond-1-sigma rule is not implemented.
PRESETS: dict[str, RuleSet] = {
    "mdc": DEFAULT_RULES,
    "western_electric": RuleSet(shift_length=8, trend_length=6),
}


def _preset(name: object) -> RuleSet:
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    if key not in PRESETS:
        raise ValueError(f"unknown SPC rule preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[key]


@dataclass(frozen=True, eq=False)
class Chart:
    """One SPC chart: what the report draws and what the icons read. Arrays are read-only.

    ``value`` is NaN for a missing or undefined point (no denominator). ``lcl``/``ucl`` are
    the 3-sigma limits, ``lower_2s``/``upper_2s`` the 2-sigma lines, NaN where they cannot
    be estimated. ``baseline`` marks the points that set their phase's centre and sigma.
    ``signals`` has one row per point: a bool column per ``Rule``, ``special_cause``,
    ``side`` ("high", "low" or "") and ``signal`` ("improvement", "concern" or "").
    """

    chart_type: ChartType
    value: FloatArray
    centre: FloatArray
    lcl: FloatArray
    ucl: FloatArray
    lower_2s: FloatArray
    upper_2s: FloatArray
    phase: IntArray
    baseline: BoolArray
    signals: pd.DataFrame


def _check_improvement(improvement: str) -> None:
    if improvement not in ("increase", "decrease"):
        raise ValueError(f"improvement must be increase or decrease, got {improvement!r}")


def plotted_improvement(chart_type: ChartType | str, improvement: str) -> str:
    """The improvement direction of the plotted statistic, given the indicator's.

    g and t charts plot the gap between events, which grows as events become rarer, so a
    "decrease" indicator (fewer harms) improves when its g / t values increase.
    """
    _check_improvement(improvement)
    if ChartType(chart_type) in (ChartType.G, ChartType.T):
        return "decrease" if improvement == "increase" else "increase"
    return improvement


def _vector(x: ArrayLike, name: str) -> FloatArray:
    a = np.array(x, dtype=np.float64)  # a copy: the chart's arrays are made read-only
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def _phase_index(phases: Sequence[int], n: int) -> IntArray:
    starts = [operator.index(i) for i in phases]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    for prev, cur in zip(starts, starts[1:], strict=False):
        if cur <= prev:
            raise ValueError(f"phase starts must be strictly increasing, got {list(phases)}")
    bad = [s for s in starts[1:] if not 0 < s < n]
    if bad:
        raise ValueError(f"phase start(s) {bad} out of range for {n} points")
    return (np.searchsorted(np.asarray(starts), np.arange(n), side="right") - 1).astype(np.int64)


def _baseline_mask(ok: BoolArray, phase: IntArray, baseline_points: int | None) -> BoolArray:
    if baseline_points is not None and (not _is_int(baseline_points) or baseline_points < 1):
        raise ValueError(f"baseline_points must be a positive integer or None, got {baseline_points!r}")
    base = np.zeros(ok.shape, dtype=np.bool_)
    n_phases = int(phase.max()) + 1 if phase.size else 0
    for p in range(n_phases):
        idx = np.flatnonzero(ok & (phase == p))
        base[idx if baseline_points is None else idx[:baseline_points]] = True
    return base


def _count_limits(
    ct: ChartType, num: FloatArray, den: FloatArray, ok: BoolArray, phase: IntArray, base: BoolArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(statistic, centre, sigma) per point for p, p', u, u' on the unit scale (multiplier 1)."""
    n = num.size
    stat = np.full(n, np.nan)
    stat[ok] = num[ok] / den[ok]
    centre = np.full(n, np.nan)
    sigma = np.full(n, np.nan)
    n_phases = int(phase.max()) + 1 if n else 0
    for p in range(n_phases):
        in_p = phase == p
        b = base & in_p
        total = float(den[b].sum())
        if total <= 0:
            continue
        bar = float(num[b].sum()) / total
        centre[in_p] = bar
        var = bar * (1.0 - bar) if ct in _PROPORTION_CHARTS else bar
        usable = in_p & ok
        s = np.full(n, np.nan)
        s[usable] = np.sqrt(max(var, 0.0) / den[usable])
        if ct in _LANEY_CHARTS:
            s = s * _laney_sigma_z(stat, s, bar, b)
        sigma[in_p] = s[in_p]
    return stat, centre, sigma


def _laney_sigma_z(stat: FloatArray, s: FloatArray, bar: float, b: BoolArray) -> float:
    """Laney's sigma_z from the baseline's z-scores; 1.0 (the plain p / u chart) when it is undefined.

    It is undefined with fewer than two baseline points of non-zero sigma (one point, or
    p-bar of 0 or 1 where every sigma_i is zero): there is no between-point variation to
    measure, so the chart falls back to the binomial / Poisson sigma, which is exactly
    Laney's formula with sigma_z = 1.
    """
    zb = b & (s > 0)
    if int(zb.sum()) < 2:
        return 1.0
    z = (stat[zb] - bar) / s[zb]
    return float(np.mean(np.abs(np.diff(z)))) / D2


def _xmr_limits(y: FloatArray, phase: IntArray, base: BoolArray) -> tuple[FloatArray, FloatArray]:
    """(centre, sigma) per point of an individuals chart: sigma = (2.66 / 3) x mean moving range."""
    n = y.size
    centre = np.full(n, np.nan)
    sigma = np.full(n, np.nan)
    n_phases = int(phase.max()) + 1 if n else 0
    for p in range(n_phases):
        in_p = phase == p
        yb = y[base & in_p]  # baseline points in order: consecutive non-missing points
        if yb.size == 0:
            continue
        centre[in_p] = float(yb.mean())
        if yb.size >= 2:
            sigma[in_p] = XMR_FACTOR / 3.0 * float(np.mean(np.abs(np.diff(yb))))
    return centre, sigma


def _g_limits(g: FloatArray, phase: IntArray, base: BoolArray) -> tuple[FloatArray, FloatArray]:
    """(centre, sigma) per point of a g chart: geometric sd sqrt(g-bar (g-bar + 1)) (Benneyan 2001)."""
    n = g.size
    centre = np.full(n, np.nan)
    sigma = np.full(n, np.nan)
    n_phases = int(phase.max()) + 1 if n else 0
    for p in range(n_phases):
        in_p = phase == p
        gb = g[base & in_p]
        if gb.size == 0:
            continue
        bar = float(gb.mean())
        centre[in_p] = bar
        sigma[in_p] = math.sqrt(bar * (bar + 1.0))
    return centre, sigma


def compute_chart(
    chart_type: ChartType | str,
    *,
    numerator: ArrayLike | None = None,
    denominator: ArrayLike | None = None,
    value: ArrayLike | None = None,
    phases: Sequence[int] = (0,),
    baseline_points: int | None = None,
    rules: RuleSet = DEFAULT_RULES,
    improvement: str = "increase",
    multiplier: float = 1.0,
) -> Chart:
    """Centre line, limits and special causes of one series.

    p, p', u, u' take ``numerator`` and ``denominator`` (cases / events and exposure); a
    point with a zero or missing denominator is missing. ``multiplier`` scales the plotted
    statistic and its lines (1000 for a rate per 1,000 patient-days, 100 for a percentage;
    proportion limits are then clipped to [0, multiplier]). xmr, g and t take ``value``
    (multiplier must stay 1).

    ``phases`` are the indices where a new phase starts (phase 0 starts at 0, which may be
    omitted). Each phase's centre and sigma come from its baseline, the first
    ``baseline_points`` non-missing points of the phase (all of them when None, or when the
    phase has fewer), and its lines extend over the whole phase. ``improvement`` is the
    direction in which the *plotted* statistic improves (see ``plotted_improvement``).
    """
    ct = ChartType(chart_type)
    _check_improvement(improvement)
    if ct in _COUNT_CHARTS:
        if value is not None or numerator is None or denominator is None:
            raise ValueError(f"a {ct.value} chart takes numerator and denominator, not value")
        num = _vector(numerator, "numerator")
        den = _vector(denominator, "denominator")
        if num.shape != den.shape:
            raise ValueError(f"numerator and denominator differ in length: {num.size} and {den.size}")
        if not (math.isfinite(multiplier) and multiplier > 0):
            raise ValueError(f"multiplier must be a positive number, got {multiplier!r}")
        finite = np.isfinite(num) & np.isfinite(den)
        if np.any(finite & ((num < 0) | (den < 0))):
            raise ValueError("numerator and denominator must not be negative")
        ok = finite & (den > 0)
        if ct in _PROPORTION_CHARTS and np.any(ok & (num > den)):
            raise ValueError("a proportion's numerator must not exceed its denominator")
        phase = _phase_index(phases, num.size)
        base = _baseline_mask(ok, phase, baseline_points)
        stat, centre, sigma = _count_limits(ct, num, den, ok, phase, base)
        top = 1.0 if ct in _PROPORTION_CHARTS else np.inf
        lines = [np.minimum(np.maximum(centre + k * sigma, 0.0), top) for k in (-3.0, 3.0, -2.0, 2.0)]
        plotted = stat * multiplier
        centre = centre * multiplier
        lcl, ucl, lo2, hi2 = (line * multiplier for line in lines)
    else:
        if value is None or numerator is not None or denominator is not None:
            raise ValueError(f"a {ct.value} chart takes value, not numerator and denominator")
        if multiplier != 1.0:
            raise ValueError(f"multiplier applies to count charts only, got {multiplier!r} for {ct.value}")
        plotted = _vector(value, "value")
        ok = np.isfinite(plotted)
        if ct in (ChartType.G, ChartType.T) and np.any(ok & (plotted < 0)):
            raise ValueError(f"a {ct.value} chart's values (cases or days between events) must not be negative")
        phase = _phase_index(phases, plotted.size)
        base = _baseline_mask(ok, phase, baseline_points)
        if ct is ChartType.XMR:
            centre, sigma = _xmr_limits(plotted, phase, base)
            lcl, ucl, lo2, hi2 = (centre + k * sigma for k in (-3.0, 3.0, -2.0, 2.0))
        elif ct is ChartType.G:
            centre, sigma = _g_limits(plotted, phase, base)
            lcl, ucl, lo2, hi2 = (np.maximum(centre + k * sigma, 0.0) for k in (-3.0, 3.0, -2.0, 2.0))
        else:  # T: XmR on y = t ** (1 / 3.6), back-transformed
            y = plotted ** (1.0 / T_POWER)
            centre_y, sigma_y = _xmr_limits(y, phase, base)
            centre = centre_y**T_POWER
            lcl, ucl, lo2, hi2 = (np.maximum(centre_y + k * sigma_y, 0.0) ** T_POWER for k in (-3.0, 3.0, -2.0, 2.0))
    signals = special_causes(plotted, centre, lcl, ucl, lo2, hi2, rules, improvement, phase=phase)
    arrays = [plotted, centre, lcl, ucl, lo2, hi2, phase, base]
    for a in arrays:
        a.setflags(write=False)
    return Chart(ct, plotted, centre, lcl, ucl, lo2, hi2, phase, base, signals)


def _tol(ref: FloatArray) -> FloatArray:
    tol: FloatArray = _REL_TOL * np.maximum(1.0, np.abs(ref))
    return tol


def _runs(codes: IntArray) -> tuple[IntArray, IntArray]:
    """Length and code of each run of equal consecutive codes."""
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(codes) != 0) + 1))
    lengths = np.diff(np.concatenate((starts, [codes.size])))
    return lengths.astype(np.int64), codes[starts].astype(np.int64)


def _shift(v: FloatArray, c: FloatArray, length: int) -> IntArray:
    """+1 / -1 for points of a long run above / below the centre, on compressed (non-missing) points."""
    side = np.zeros(v.size, dtype=np.int64)
    side[v > c + _tol(c)] = 1
    side[v < c - _tol(c)] = -1
    out = np.zeros(v.size, dtype=np.int64)
    off = np.flatnonzero(side != 0)  # points on the centre line neither break nor extend a run
    lengths, codes = _runs(side[off])
    long = np.repeat(lengths >= length, lengths)
    out[off[long]] = side[off[long]]
    return out


def _trend(v: FloatArray, length: int) -> IntArray:
    """+1 / -1 for points of a strictly rising / falling trend of at least ``length`` points."""
    out = np.zeros(v.size, dtype=np.int64)
    if v.size < 2:
        return out
    d = np.diff(v)
    tol = _REL_TOL * np.maximum(1.0, np.maximum(np.abs(v[:-1]), np.abs(v[1:])))
    step = np.where(d > tol, 1, np.where(d < -tol, -1, 0)).astype(np.int64)
    lengths, codes = _runs(step)
    in_trend = np.repeat((codes != 0) & (lengths + 1 >= length), lengths)
    step_dir = np.where(in_trend, step, 0)
    # A point takes the direction of the trend leading to it; a trend's first point, of the trend leaving it.
    out[:-1] = step_dir
    out[1:] = np.where(step_dir != 0, step_dir, out[1:])
    return out


def _two_of_three(v: FloatArray, lo2: FloatArray, hi2: FloatArray) -> IntArray:
    """+1 / -1 for points beyond the upper / lower 2-sigma line with another such point within 3 in a row."""
    out = np.zeros(v.size, dtype=np.int64)
    for sign, beyond in ((1, v > hi2 + _tol(hi2)), (-1, v < lo2 - _tol(lo2))):
        near = np.zeros(v.size, dtype=np.bool_)
        for k in (1, 2):
            near[k:] |= beyond[:-k]
            near[:-k] |= beyond[k:]
        out[beyond & near] = sign
    return out


def special_causes(
    value: ArrayLike,
    centre: ArrayLike,
    lcl: ArrayLike,
    ucl: ArrayLike,
    lower_2s: ArrayLike,
    upper_2s: ArrayLike,
    rules: RuleSet,
    improvement: str,
    *,
    phase: ArrayLike | None = None,
) -> pd.DataFrame:
    """Which points are special causes, by which rule, on which side, good or bad.

    Runs, trends and two-of-three windows are sought among non-missing points and do not
    continue across a phase boundary (``phase``, default one phase); see the module
    docstring for the conventions. ``side`` is "high" or "low" for flagged points and
    ``signal`` is "improvement" when that side is the good side for ``improvement``.
    """
    _check_improvement(improvement)
    v = _vector(value, "value")
    arrays = [_vector(a, name) for a, name in ((centre, "centre"), (lcl, "lcl"), (ucl, "ucl"))]
    arrays += [_vector(lower_2s, "lower_2s"), _vector(upper_2s, "upper_2s")]
    c, lo3, hi3, lo2, hi2 = arrays
    if any(a.shape != v.shape for a in arrays):
        raise ValueError("value, centre, limits and 2-sigma lines must have the same length")
    ph = np.zeros(v.size, dtype=np.int64) if phase is None else np.asarray(phase, dtype=np.int64)
    if ph.shape != v.shape:
        raise ValueError("phase must have one entry per point")
    direction = {r: np.zeros(v.size, dtype=np.int64) for r in Rule}
    ok = np.isfinite(v)
    with np.errstate(invalid="ignore"):
        if Rule.BEYOND_LIMITS in rules.rules:
            d = direction[Rule.BEYOND_LIMITS]
            d[ok & (v > hi3 + _tol(hi3))] = 1
            d[ok & (v < lo3 - _tol(lo3))] = -1
        for p in np.unique(ph):
            idx = np.flatnonzero(ok & (ph == p))
            if Rule.SHIFT in rules.rules:
                direction[Rule.SHIFT][idx] = _shift(v[idx], c[idx], rules.shift_length)
            if Rule.TREND in rules.rules:
                direction[Rule.TREND][idx] = _trend(v[idx], rules.trend_length)
            if Rule.TWO_OF_THREE in rules.rules:
                direction[Rule.TWO_OF_THREE][idx] = _two_of_three(v[idx], lo2[idx], hi2[idx])
    side_code = np.zeros(v.size, dtype=np.int64)
    for r in reversed(_SIDE_ORDER):  # the first rule in precedence order writes last
        side_code = np.where(direction[r] != 0, direction[r], side_code)
    good = 1 if improvement == "increase" else -1
    side = np.select([side_code > 0, side_code < 0], ["high", "low"], default=_NONE)
    signal = np.select([side_code == good, side_code == -good], ["improvement", "concern"], default=_NONE)
    frame: dict[str, Any] = {r.value: direction[r] != 0 for r in Rule}
    frame["special_cause"] = side_code != 0
    frame["side"] = side.astype(object)
    frame["signal"] = signal.astype(object)
    return pd.DataFrame(frame, index=pd.RangeIndex(v.size))


def _last_point(chart: Chart) -> int | None:
    idx = np.flatnonzero(np.isfinite(chart.value))
    return int(idx[-1]) if idx.size else None


def variation_icon(chart: Chart) -> str:
    """MDC variation icon for the most recent non-missing point.

    "improvement_high" / "improvement_low" / "concern_high" / "concern_low" when that point
    is part of a special cause (an earlier, finished signal does not count: MDC's icon
    describes the latest point), "common_cause" otherwise, "none" without data.
    """
    i = _last_point(chart)
    if i is None:
        return "none"
    row = chart.signals.iloc[i]
    if not bool(row["special_cause"]):
        return "common_cause"
    return f"{row['signal']}_{row['side']}"


def assurance_icon(chart: Chart, target: float | None, improvement: str) -> str:
    """MDC assurance icon: can the process be relied on to meet ``target``?

    Read from the 3-sigma limits at the most recent non-missing point (its phase's limits):
    "pass" when the whole band between the limits meets the target (for "increase" the
    lower limit is at or above it), "fail" when none of it does (the upper limit is below
    it), "hit_or_miss" when the target lies between the limits, and "none" without a
    target or limits. ``target`` is on the chart's scale (times ``multiplier``).
    """
    _check_improvement(improvement)
    if target is None or not math.isfinite(target):
        return "none"
    i = _last_point(chart)
    if i is None:
        return "none"
    lo, hi = float(chart.lcl[i]), float(chart.ucl[i])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "none"
    tol = _REL_TOL * max(1.0, abs(target))
    if improvement == "increase":
        if lo >= target - tol:
            return "pass"
        return "fail" if hi < target - tol else "hit_or_miss"
    if hi <= target + tol:
        return "pass"
    return "fail" if lo > target + tol else "hit_or_miss"


def has_large_denominators(denominator: ArrayLike) -> bool:
    """Whether the mean positive denominator exceeds ``LARGE_DENOMINATOR`` (then use p' / u')."""
    d = _vector(denominator, "denominator")
    d = d[np.isfinite(d) & (d > 0)]
    return bool(d.size) and float(d.mean()) > LARGE_DENOMINATOR


def chart_type_for(scoring: str, *, rare: bool = False, large_denominators: bool = False) -> ChartType:
    """The chart for an indicator's scoring.

    proportion -> p (p' with large denominators, g for rare events: count the cases between
    them); ratio -> u (u', or t for rare events: the days between them); continuous
    (FHIR's "continuous-variable") -> xmr. Rare wins over large denominators: when most
    months have no event at all, a count chart's limits say little and the gap between
    events is the informative measure (Provost & Murray; Benneyan 2001). Large denominators
    means the mean denominator exceeds ``LARGE_DENOMINATOR`` (``has_large_denominators``).
    """
    key = str(scoring).strip().lower()
    if key == "proportion":
        return ChartType.G if rare else ChartType.P_PRIME if large_denominators else ChartType.P
    if key == "ratio":
        return ChartType.T if rare else ChartType.U_PRIME if large_denominators else ChartType.U
    if key in ("continuous", "continuous-variable"):
        return ChartType.XMR
    raise ValueError(f"no SPC chart for scoring {scoring!r}; expected proportion, ratio or continuous")


def days_between_events(event_days: Sequence[date]) -> FloatArray:
    """Days from each event to the next, for a t chart: one value fewer than events.

    The wait before the first event is unknown (the previous event may lie before the
    data) and the wait after the last is still running, so neither is a value. Dates
    give whole days; datetimes give fractions. Events out of order raise ``ValueError``.
    """
    days = list(event_days)
    gaps = np.array([(b - a).total_seconds() / 86400.0 for a, b in zip(days, days[1:], strict=False)], dtype=float)
    if np.any(gaps < 0):
        raise ValueError("event dates must be in order of occurrence")
    return gaps


def cases_between_events(flags: Sequence[bool]) -> IntArray:
    """Cases without the event between successive events, for a g chart (Benneyan's count from 0).

    ``flags`` is one bool per case in order of occurrence. As for ``days_between_events``
    the cases before the first event and after the last are not a complete gap and give
    no value. Adjacent events give 0.
    """
    a = np.asarray(flags)
    if a.dtype != np.bool_:
        if a.size and not np.all(np.isin(a, (0, 1))):
            raise ValueError("flags must be booleans (one per case)")
        a = a.astype(np.bool_)
    events = np.flatnonzero(a.reshape(-1))
    return (np.diff(events) - 1).astype(np.int64)


__all__ = [
    "D2",
    "DEFAULT_RULES",
    "LARGE_DENOMINATOR",
    "PRESETS",
    "T_POWER",
    "XMR_FACTOR",
    "Chart",
    "ChartType",
    "Rule",
    "RuleSet",
    "assurance_icon",
    "cases_between_events",
    "chart_type_for",
    "compute_chart",
    "days_between_events",
    "has_large_denominators",
    "plotted_improvement",
    "special_causes",
    "variation_icon",
]
