"""Funnel plots: fair comparisons between units of different sizes (Spiegelhalter 2005).

Why a funnel and not a league table: a small ward's rate swings by chance far more than a
big hospital's, so ranking them rewards and punishes size, not care. A funnel plot draws,
around the system value (the *target*), the range that chance alone would give a unit of
each size, and calls a unit an outlier only outside that range (Spiegelhalter, "Funnel
plots for comparing institutional performance", Stat Med 2005;24:1185-1202).

Two kinds of indicator:

* ``"proportion"``: numerator events out of denominator cases (mortality, readmission),
  Binomial(n, target) under the null.
* ``"ratio"``: events per unit of exposure, Poisson(target x exposure) under the null. This
  covers rates (falls per patient-day) and indirectly standardised O/E ratios (numerator
  observed, denominator expected, target 1, shown as 100 with ``multiplier=100``).

Scales: the ``target`` argument is on the numerator / denominator scale (a fraction, events
per unit of exposure, 1 for an O/E ratio), as in FunnelPlotR; everything returned (``value``,
the limits, ``Funnel.target``, the curve) is on the reported scale, x ``multiplier``.

Limits (95% and 99.8%, i.e. 0.025/0.975 and 0.001/0.999 tail points, Spiegelhalter's two
funnels), at each unit's own denominator:

* No over-dispersion adjustment: exact Binomial / Poisson limits with Spiegelhalter's
  interpolation between the discrete steps (2005, Appendix A.1.1): with r the smallest count
  whose cdf reaches the tail point q and a = (F(r) - q) / (F(r) - F(r-1)), the lower limit is
  (r - a) / n. The upper limit uses the same interpolation on the complementary tail
  (non-events for a proportion; equivalently (r + 1 - a) / n). Deviation, on purpose:
  Spiegelhalter's (r - a) / n used as an *upper* limit puts the count r itself above the
  limit although P(R >= r) exceeds 1 - q (Binomial(10, 0.02): one event out of ten has
  P = 0.18 yet would be flagged at 95%). With the complementary-tail form a unit is outside
  a limit exactly when its exact one-sided tail probability is below the nominal one, so an
  in-control unit falls outside each limit with probability at most the nominal (the
  property Manktelow & Seaton, PLoS One 2012;7:e45723, ask a funnel to state), and for
  proportions the same units are flagged whether events or non-events are counted.
  (FunnelPlotR 0.3.2's "Poisson limits" are instead Garwood confidence limits with the
  expected count treated as observed; at E = 15 its lower 95% limit 0.560 flags O = 8,
  whose P(O <= 8) = 0.037, so they are not used here.)
* Over-dispersion (Spiegelhalter, "Handling over-dispersion of performance indicators",
  Qual Saf Health Care 2005;14:347-351; as implemented by FunnelPlotR, C. Mainey): z-scores
  on a variance-stabilising scale, arcsine-square-root for proportions
  (y = asin(sqrt(p)), s = 1 / (2 sqrt(n))) and square root for ratios
  (y = sqrt(O / T), s = 1 / (2 sqrt(T)), so z = 2 (sqrt(O) - sqrt(target T)) as in the paper);
  z-scores are winsorised (default 10% at each end, R/numpy "type 7" quantiles) and
  phi = mean(winsorised z^2). Multiplicative: limits back-transformed from
  t +/- z_q sqrt(phi) s. Additive (random effects): tau^2 by the DerSimonian-Laird moment
  estimator used in the paper, tau^2 = (I phi - (I - 1)) / (sum w - sum w^2 / sum w),
  w = 1 / s^2, and limits from t +/- z_q sqrt(s^2 + tau^2). FunnelPlotR 0.3.2 leaves the
  square-root scale un-squared for standardised ratios; here both scales are properly
  back-transformed (sin^2, square), with the argument clipped to the scale's domain first.
* An adjustment is applied only when phi exceeds ``phi_threshold`` (default 1: only
  over-dispersion widens the funnel, under-dispersion never narrows it); otherwise
  ``Funnel.method`` is ``none`` and the exact limits are used. ``phi`` is always the
  estimate (a diagnostic, reported even when not applied); it is 1.0 when it cannot be
  estimated (fewer than two units with a value). ``tau2`` is 0.0 unless the additive
  adjustment was applied.

Outliers: ``high_998``/``low_998`` beyond the 99.8% limits, ``high_95``/``low_95`` beyond
only the 95% ones, strictly outside (a value on a limit is in control). ``z`` is the
(adjusted) z-score on the transformed scale, for ranking and display; the flag comes from
the limits, which for the unadjusted case are exact rather than normal.

Undefined units (denominator 0 or missing, numerator missing) get no value, z, limits or
flag and take no part in the pooled target or phi. Nothing here raises on zero counts;
malformed input (negative counts, more events than cases, fractional cases) raises
ValueError because a funnel of it would be wrong, not merely empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

KINDS = ("proportion", "ratio")
HIGH_998, HIGH_95, LOW_95, LOW_998, IN_CONTROL = "high_998", "high_95", "low_95", "low_998", ""
LIMIT_COLUMNS = ("lower_998", "lower_95", "upper_95", "upper_998")
# column -> (tail point q, is it an upper limit)
_TAILS: dict[str, tuple[float, bool]] = {
    "lower_998": (0.001, False),
    "lower_95": (0.025, False),
    "upper_95": (0.975, True),
    "upper_998": (0.999, True),
}


class Overdispersion(StrEnum):
    NONE = "none"
    MULTIPLICATIVE = "multiplicative"
    ADDITIVE = "additive"


@dataclass(frozen=True)
class Funnel:
    """A fitted funnel. ``target`` and every value and limit in ``units`` are on the reported
    scale (numerator / denominator x ``multiplier``); ``tau2`` is on the transformed scale."""

    kind: str
    target: float
    phi: float
    tau2: float
    method: Overdispersion
    units: pd.DataFrame
    multiplier: float = 1.0


def funnel(
    units: pd.DataFrame,
    *,
    kind: str,
    target: float | None = None,
    overdispersion: Overdispersion | str = "multiplicative",
    multiplier: float = 1.0,
    winsorise: float = 0.1,
    phi_threshold: float = 1.0,
) -> Funnel:
    """Funnel limits and outlier flags for one row per unit (columns unit, numerator, denominator).

    ``target`` is on the numerator / denominator scale (e.g. 1 for an O/E ratio even with
    ``multiplier=100``); None takes the pooled system value sum(numerator) / sum(denominator)
    over the units that have a value. The returned ``Funnel.target`` is target x multiplier.
    ``overdispersion`` is what to apply if phi exceeds ``phi_threshold``; ``winsorise`` is the
    fraction pulled in at each end before phi is estimated."""
    _check_kind(kind)
    requested = Overdispersion(overdispersion)
    if not (np.isfinite(multiplier) and multiplier > 0):
        raise ValueError(f"multiplier must be a positive number, got {multiplier!r}")
    if not 0.0 <= winsorise < 0.5:
        raise ValueError(f"winsorise must be in [0, 0.5), got {winsorise!r}")
    if not phi_threshold >= 1.0:
        raise ValueError(
            f"phi_threshold must be at least 1 (under-dispersion never narrows limits), got {phi_threshold!r}"
        )
    missing = {"unit", "numerator", "denominator"} - set(units.columns)
    if missing:
        raise ValueError(f"funnel needs columns unit, numerator, denominator; missing {sorted(missing)}")
    if units["unit"].duplicated().any():
        dup = sorted(map(str, units.loc[units["unit"].duplicated(), "unit"].unique()))
        raise ValueError(f"one row per unit expected (aggregate first); repeated: {dup}")

    num = pd.to_numeric(units["numerator"]).to_numpy(dtype=np.float64, na_value=np.nan)
    den = pd.to_numeric(units["denominator"]).to_numpy(dtype=np.float64, na_value=np.nan)
    _check_counts(kind, num, den, units["unit"])
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)

    if target is None:
        total = den[ok].sum()
        theta = float(num[ok].sum() / total) if total > 0 else float("nan")
    else:
        theta = float(target)
        if not (np.isfinite(theta) and theta >= 0 and (kind == "ratio" or theta <= 1)):
            raise ValueError(f"target {target!r} is not a valid {kind} (numerator / denominator scale)")

    y = np.full(num.shape, np.nan)
    s = np.full(num.shape, np.nan)
    z0 = np.full(num.shape, np.nan)
    if np.isfinite(theta):
        y[ok] = _transform(kind, num[ok] / den[ok])
        s[ok] = _scale_sd(den[ok])
        z0[ok] = (y[ok] - _transform(kind, np.float64(theta))) / s[ok]

    phi = _phi(z0[ok], winsorise)
    method, tau2 = Overdispersion.NONE, 0.0
    if requested is not Overdispersion.NONE and phi > phi_threshold:
        if requested is Overdispersion.MULTIPLICATIVE:
            method = requested
        else:
            tau2 = _tau2_dersimonian_laird(phi, s[ok])
            method = requested if tau2 > 0 else Overdispersion.NONE

    limits = _limits(kind, theta, den, ok, method, phi, tau2)
    if method is Overdispersion.MULTIPLICATIVE:
        z = z0 / np.sqrt(phi)
    elif method is Overdispersion.ADDITIVE:
        z = (y - _transform(kind, np.float64(theta))) / np.sqrt(s * s + tau2)
    else:
        z = z0

    value = np.full(num.shape, np.nan)
    value[ok] = num[ok] / den[ok] * multiplier
    scaled = {col: lim * multiplier for col, lim in limits.items()}
    out = pd.DataFrame(
        {
            "unit": units["unit"].to_numpy(),
            "numerator": num,
            "denominator": den,
            "value": value,
            "z": z,
            "lower_95": scaled["lower_95"],
            "upper_95": scaled["upper_95"],
            "lower_998": scaled["lower_998"],
            "upper_998": scaled["upper_998"],
            "outlier": _flags(value, scaled),
        }
    )
    return Funnel(
        kind=kind,
        target=theta * multiplier,
        phi=phi,
        tau2=tau2,
        method=method,
        units=out,
        multiplier=multiplier,
    )


def funnel_curve(f: Funnel, denominators: ArrayLike) -> pd.DataFrame:
    """The funnel's limits along a range of denominators, for drawing it.

    Same method, phi and tau2 as the units got. Exact Binomial limits exist only at whole
    numbers of cases, so for an unadjusted proportion funnel each denominator is rounded to
    the nearest whole number, at least 1 (the drawn limit is the step the data can take);
    denominators <= 0 or missing give NaN limits."""
    d = np.asarray(denominators, dtype=np.float64).ravel()
    theta = f.target / f.multiplier
    ok = np.isfinite(d) & (d > 0)
    use = d.copy()
    if f.kind == "proportion" and f.method is Overdispersion.NONE:
        use[ok] = np.maximum(np.rint(d[ok]), 1.0)
    limits = _limits(f.kind, theta, use, ok, f.method, f.phi, f.tau2)
    frame = {"denominator": d, "target": np.where(ok, f.target, np.nan)}
    frame.update({col: limits[col] * f.multiplier for col in LIMIT_COLUMNS})
    return pd.DataFrame(frame)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _check_counts(kind: str, num: np.ndarray, den: np.ndarray, unit: pd.Series) -> None:
    both = np.isfinite(num) & np.isfinite(den)
    bad = (np.isfinite(num) & (num < 0)) | (np.isfinite(den) & (den < 0))
    if kind == "proportion":
        bad |= both & (num > den)
        bad |= (np.isfinite(num) & (num != np.floor(num))) | (np.isfinite(den) & (den != np.floor(den)))
    if bad.any():
        names = sorted(map(str, unit.to_numpy()[bad]))[:10]
        rule = "whole counts with 0 <= numerator <= denominator" if kind == "proportion" else "non-negative"
        raise ValueError(f"{kind} funnel: numerator and denominator must be {rule}; check units {names}")


def _transform(kind: str, x: np.ndarray | np.float64) -> np.ndarray:
    """Variance-stabilising scale: asin(sqrt(p)) for proportions, sqrt for ratios."""
    root = np.sqrt(x)
    return np.asarray(np.arcsin(root) if kind == "proportion" else root)


def _back(kind: str, x: np.ndarray) -> np.ndarray:
    """Inverse of ``_transform``, first clipping to the scale's domain so that a limit
    that runs past 0 (or past 1 for a proportion) stops there instead of folding back."""
    if kind == "proportion":
        return np.asarray(np.sin(np.clip(x, 0.0, np.pi / 2)) ** 2)
    return np.asarray(np.clip(x, 0.0, None) ** 2)


def _scale_sd(den: np.ndarray) -> np.ndarray:
    """Standard error on the transformed scale: 1 / (2 sqrt(n)) for both scales."""
    return np.asarray(1.0 / (2.0 * np.sqrt(den)))


def _phi(z: np.ndarray, winsorise: float) -> float:
    """Spiegelhalter (2005b) over-dispersion factor: mean of the winsorised squared z-scores."""
    if z.size < 2:
        return 1.0
    low, high = np.quantile(z, [winsorise, 1.0 - winsorise])
    return float(np.mean(np.clip(z, low, high) ** 2))


def _tau2_dersimonian_laird(phi: float, s: np.ndarray) -> float:
    """Between-unit variance on the transformed scale (Spiegelhalter 2005b, eq. for tau^2),
    zero when I phi < I - 1."""
    n = s.size
    w = 1.0 / (s * s)
    denom = w.sum() - (w * w).sum() / w.sum()
    if n * phi < n - 1 or denom <= 0:
        return 0.0
    return float(max(0.0, (n * phi - (n - 1)) / denom))


def _limits(
    kind: str,
    theta: float,
    den: np.ndarray,
    ok: np.ndarray,
    method: Overdispersion,
    phi: float,
    tau2: float,
) -> dict[str, np.ndarray]:
    """Unscaled limits at each denominator where ``ok`` (NaN elsewhere)."""
    out = {col: np.full(den.shape, np.nan) for col in LIMIT_COLUMNS}
    if not np.isfinite(theta) or not ok.any():
        return out
    d = den[ok]
    if method is Overdispersion.NONE:
        for col, (q, upper) in _TAILS.items():
            out[col][ok] = _exact_limit(kind, theta, d, q, upper)
        return out
    t = _transform(kind, np.float64(theta))
    s = _scale_sd(d)
    sd = np.sqrt(phi) * s if method is Overdispersion.MULTIPLICATIVE else np.sqrt(s * s + tau2)
    for col, (q, _upper) in _TAILS.items():
        zq = float(stats.norm.ppf(q))
        out[col][ok] = _back(kind, t + zq * sd)
    return out


def _exact_limit(kind: str, theta: float, d: np.ndarray, q: float, upper: bool) -> np.ndarray:
    """Interpolated exact limit for tail point q (see the module docstring)."""
    dist = stats.binom(d, theta) if kind == "proportion" else stats.poisson(theta * d)
    r = np.asarray(dist.ppf(q), dtype=np.float64)
    f_r = np.asarray(dist.cdf(r), dtype=np.float64)
    f_prev = np.asarray(dist.cdf(r - 1), dtype=np.float64)
    a = np.clip((f_r - q) / (f_r - f_prev), 0.0, 1.0)
    count = r + 1.0 - a if upper else r - a
    limit = np.clip(count / d, 0.0, None)
    return np.asarray(np.minimum(limit, 1.0) if kind == "proportion" else limit)


def _flags(value: np.ndarray, limits: dict[str, np.ndarray]) -> np.ndarray:
    """Strictly outside a limit; NaN values or limits compare false and stay in control."""
    return np.select(
        [
            value > limits["upper_998"],
            value > limits["upper_95"],
            value < limits["lower_998"],
            value < limits["lower_95"],
        ],
        [HIGH_998, HIGH_95, LOW_998, LOW_95],
        default=IN_CONTROL,
    ).astype(object)


__all__ = ["KINDS", "LIMIT_COLUMNS", "Funnel", "Overdispersion", "funnel", "funnel_curve"]
