"""Risk adjustment by indirect standardisation: observed / expected (HSMR / SHMI style).

Why: a unit that treats older, sicker, emergency patients will have more deaths for the
same quality of care. A patient-level logistic model fitted on a reference period gives
each patient an expected probability of the outcome from case-mix alone; a unit's
observed count over the sum of its patients' expected probabilities is its O/E ratio,
1 when it does as well as the reference population would with the same patients
(the construction of the Dr Foster / Imperial HSMR, Jarman et al. BMJ 1999;318:1515,
and of NHS Digital's SHMI specification).

Model (``fit_risk_model``):

* Factors are categorical (age band, sex, comorbidity band, admission type, service), in
  treatment coding with the most frequent level as reference (ties by name); a missing
  factor value is its own level ``"unknown"``. Rows with a missing outcome are left out.
  The outcome must be 0/1.
* Logistic regression by maximum likelihood with statsmodels (GLM, Binomial family, logit
  link), fitted on the covariate patterns (events out of patients per distinct combination
  of levels), which gives the same estimates and standard errors as the patient-level fit
  and stays fast for a year of admissions.
* Too few events or non-events (fewer than ``min_events``, default 10, the usual
  events-per-variable floor; Peduzzi et al. J Clin Epidemiol 1996;49:1373), a single
  outcome class, or factors so collinear that the model is not identifiable raise
  ``RiskModelError``: the caller shows "not risk-adjusted: <message>".
* Separation. When some combination of levels predicts the outcome perfectly (a service
  with no deaths), the maximum-likelihood estimate does not exist. statsmodels does not
  always say so: for a 2x2 table with an empty cell its GLM reports convergence with a
  coefficient near -23 and a standard error near 16,000 and no warning (Logit warns
  ConvergenceWarning). Separation is detected exactly before
  fitting, by the linear-programming test of Konis (2007, DPhil thesis, Oxford; the R
  packages safeBinaryRegression / detectseparation), and the model is then fitted by
  Firth's penalised likelihood (Firth, Biometrika 1993;80:27; Heinze & Schemper, Stat Med
  2002;21:2409), which always has finite estimates, with the intercept re-estimated by
  maximum likelihood given the Firth slopes (FLIC: Puhr et al., Stat Med 2017;36:2302) so
  that the expected total still equals the observed total on the fitting data. The same
  fallback is taken if the maximum-likelihood fit does not converge or warns. No warning
  escapes; ``RiskModel.method`` says which fit was used. Standard errors, intervals and
  p-values are Wald ones in both cases (for Firth slopes from the penalised information;
  logistf's profile-likelihood intervals are not reproduced; the FLIC intercept keeps
  the Firth intercept's standard error).

Prediction (``expected_risk``): a level not seen in fitting, including ``"unknown"`` when
no value was missing in fitting, is scored as the reference level, i.e. as the most
common kind of patient (a neutral choice that neither inflates nor deflates the
expected count; the level is counted in ``unseen_levels`` for the caller to report).

``observed_expected`` gives per-group O, E, O/E with the exact (Garwood) Poisson interval
on O divided by E, as in the SHMI and HSMR publications, and the risk-adjusted rate
O/E x overall crude rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from numpy.typing import ArrayLike
from scipy import optimize, special, stats
from statsmodels.tools import sm_exceptions

from pipelines.analyse.intervals import poisson_rate

UNKNOWN = "unknown"
INTERCEPT = "intercept"
MAXIMUM_LIKELIHOOD = "maximum likelihood"
FIRTH_FLIC = "firth (FLIC)"


class RiskModelError(ValueError):
    """The data cannot support a risk model; the message says why, for "not risk-adjusted: ..."."""


@dataclass(frozen=True)
class RiskModel:
    """A fitted case-mix model. ``terms`` names the design columns ("intercept", then
    "factor[level]" for each non-reference level) in the order of ``params``."""

    outcome: str
    factors: tuple[str, ...]
    coefficients: pd.DataFrame
    c_statistic: float
    n: int
    events: int
    levels: dict[str, list[str]]
    terms: tuple[str, ...]
    params: np.ndarray
    method: str


def fit_risk_model(frame: pd.DataFrame, outcome: str, factors: Sequence[str], *, min_events: int = 10) -> RiskModel:
    """Fit the patient-level logistic case-mix model (see the module docstring)."""
    factors = tuple(factors)
    _require_columns(frame, (outcome, *factors))
    y_all = pd.to_numeric(frame[outcome], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad_outcome = frame[outcome].notna().to_numpy() & ~np.isin(y_all, (0.0, 1.0))
    if bad_outcome.any():
        raise RiskModelError(f"outcome {outcome!r} must be 0/1; found other values in {int(bad_outcome.sum())} rows")
    keep = ~np.isnan(y_all)
    y = y_all[keep]
    n, events = int(y.size), int(y.sum())
    if n == 0:
        raise RiskModelError(f"no rows with a recorded {outcome!r}")
    if events == 0 or events == n:
        raise RiskModelError(f"every one of the {n} patients has {outcome!r} = {int(y[0])}: nothing to model")
    if min(events, n - events) < min_events:
        which = "events" if events < n - events else "non-events"
        raise RiskModelError(
            f"too few {which} to fit a risk model: {min(events, n - events)} of {n} patients (need {min_events})"
        )

    kept = frame.loc[keep]
    levels = {f: _levels(_factor_values(kept[f])) for f in factors}
    codes = np.column_stack([_codes(kept[f], levels[f]) for f in factors]) if factors else np.zeros((n, 0), np.int64)
    patterns, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    trials = np.bincount(inverse).astype(np.float64)
    successes = np.bincount(inverse, weights=y).astype(np.float64)
    terms = (INTERCEPT, *(f"{f}[{lv}]" for f in factors for lv in levels[f][1:]))
    x = _design(patterns, [len(levels[f]) for f in factors])
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise RiskModelError(
            f"the factors {list(factors)} are collinear (some levels always occur together), so the model is not "
            "identifiable; drop or merge a factor"
        )

    fit = None if _separated(x, successes, trials) else _fit_ml(x, successes, trials)
    if fit is None:
        params, se = _fit_flic(x, successes, trials)
        method = FIRTH_FLIC
    else:
        params, se = fit
        method = MAXIMUM_LIKELIHOOD

    zq = float(stats.norm.ppf(0.975))
    with np.errstate(over="ignore"):
        coefficients = pd.DataFrame(
            {
                "term": list(terms),
                "estimate": params,
                "std_error": se,
                "odds_ratio": np.exp(params),
                "or_low": np.exp(params - zq * se),
                "or_high": np.exp(params + zq * se),
                "p_value": 2.0 * stats.norm.sf(np.abs(params / se)),
            }
        )
    p_rows = special.expit(x @ params)[inverse]
    return RiskModel(
        outcome=outcome,
        factors=factors,
        coefficients=coefficients,
        c_statistic=c_statistic(y, p_rows),
        n=n,
        events=events,
        levels=levels,
        terms=terms,
        params=params,
        method=method,
    )


def expected_risk(model: RiskModel, frame: pd.DataFrame) -> np.ndarray:
    """Predicted probability of the outcome for every row of ``frame`` (outcome not needed).
    A level unseen in fitting is scored as the factor's reference level."""
    _require_columns(frame, model.factors)
    eta = np.full(len(frame), model.params[0], dtype=np.float64)
    start = 1
    for f in model.factors:
        lv = model.levels[f]
        effects = np.concatenate(([0.0], model.params[start : start + len(lv) - 1]))
        eta += effects[_codes(frame[f], lv)]
        start += len(lv) - 1
    return np.asarray(special.expit(eta))


def unseen_levels(model: RiskModel, frame: pd.DataFrame) -> dict[str, int]:
    """Rows per factor whose level the model never saw (scored as the reference level)."""
    out: dict[str, int] = {}
    for f in model.factors:
        values = _factor_values(frame[f])
        count = int((~np.isin(values, model.levels[f])).sum())
        if count:
            out[f] = count
    return out


def c_statistic(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve as the Mann-Whitney probability P(p_event > p_non-event),
    ties counted one half (mid-ranks; Hanley & McNeil, Radiology 1982;143:29). Pairs with a
    missing y or p are ignored; NaN when only one outcome class is present."""
    yy = np.asarray(y, dtype=np.float64).ravel()
    pp = np.asarray(p, dtype=np.float64).ravel()
    ok = ~(np.isnan(yy) | np.isnan(pp))
    yy, pp = yy[ok], pp[ok]
    pos = yy == 1
    n1 = int(pos.sum())
    n0 = int(yy.size - n1)
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(pp)
    u = ranks[pos].sum() - n1 * (n1 + 1) / 2.0
    return float(u / (n1 * n0))


def observed_expected(
    frame: pd.DataFrame, group: str, outcome: str, expected: str, confidence: float = 0.95
) -> pd.DataFrame:
    """Per ``group``: n, observed, expected, crude_rate, oe_ratio with its exact Poisson
    interval (Garwood limits for O divided by E; E is treated as fixed, as SHMI does),
    and risk_adjusted_rate = O/E x the overall crude rate.

    Rows with a missing outcome or expected value are left out (they were not scored);
    a missing group is kept as its own row. Expected 0 gives NaN ratio and interval."""
    _require_columns(frame, (group, outcome, expected))
    y = pd.to_numeric(frame[outcome], errors="coerce")
    e = pd.to_numeric(frame[expected], errors="coerce")
    keep = (y.notna() & e.notna()).to_numpy()
    data = pd.DataFrame({"group": frame[group].to_numpy()[keep], "y": y[keep].to_numpy(), "e": e[keep].to_numpy()})
    agg = data.groupby("group", sort=True, dropna=False).agg(
        n=("y", "size"), observed=("y", "sum"), expected=("e", "sum")
    )
    obs = agg["observed"].to_numpy(dtype=np.float64)
    exp_ = agg["expected"].to_numpy(dtype=np.float64)
    cnt = agg["n"].to_numpy(dtype=np.float64)
    total_n = cnt.sum()
    overall = obs.sum() / total_n if total_n > 0 else float("nan")
    low, high = poisson_rate(obs, exp_, confidence=confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(exp_ > 0, obs / exp_, np.nan)
        crude = np.where(cnt > 0, obs / cnt, np.nan)
    out = pd.DataFrame(
        {
            group: agg.index.to_numpy(),
            "n": agg["n"].to_numpy(dtype=np.int64),
            "observed": obs,
            "expected": exp_,
            "crude_rate": crude,
            "oe_ratio": ratio,
            "oe_low": low,
            "oe_high": high,
            "risk_adjusted_rate": ratio * overall,
        }
    )
    return out


def _require_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns: {missing}")


def _factor_values(series: pd.Series) -> np.ndarray:
    """Levels as strings, a missing value being the level "unknown"."""
    values = series.astype(object).to_numpy()
    missing = pd.isna(values)
    return np.where(missing, UNKNOWN, values.astype(str)).astype(str)


def _levels(values: np.ndarray) -> list[str]:
    """Levels by descending frequency, ties by name: the first is the reference."""
    names, counts = np.unique(values, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-int(counts[i]), str(names[i])))
    return [str(names[i]) for i in order]


def _codes(series: pd.Series, levels: list[str]) -> np.ndarray:
    """Index of each value's level; an unseen level maps to 0, the reference."""
    codes = pd.Index(levels).get_indexer(_factor_values(series)).astype(np.int64)
    return np.where(codes < 0, 0, codes)


def _design(patterns: np.ndarray, n_levels: list[int]) -> np.ndarray:
    """Intercept plus treatment-coded dummies for each factor (reference = code 0)."""
    cols = [np.ones((patterns.shape[0], 1))]
    for j, k in enumerate(n_levels):
        cols.append((patterns[:, j][:, None] == np.arange(1, k)[None, :]).astype(np.float64))
    return np.hstack(cols)


def _separated(x: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> bool:
    """Konis's linear program: is there a direction b != 0 with x'b >= 0 wherever an event
    occurred and x'b <= 0 wherever a non-event did? With x of full rank, such a b exists
    exactly when the maximum-likelihood estimate does not (complete or quasi-complete
    separation, Albert & Anderson, Biometrika 1984;71:1)."""
    has1 = successes > 0
    has0 = successes < trials
    c = x[has1].sum(axis=0) - x[has0].sum(axis=0)
    a_ub = np.vstack([-x[has1], x[has0]])
    res = optimize.linprog(-c, A_ub=a_ub, b_ub=np.zeros(a_ub.shape[0]), bounds=(-1.0, 1.0), method="highs")
    return bool(res.status == 0 and -res.fun > 1e-7)


def _fit_ml(x: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Maximum likelihood with statsmodels; None if it warns, fails to converge or gives
    non-finite standard errors (the caller then fits Firth/FLIC instead)."""
    numerical = (
        RuntimeWarning,
        sm_exceptions.ConvergenceWarning,
        sm_exceptions.PerfectSeparationWarning,
        sm_exceptions.HessianInversionWarning,
        sm_exceptions.EstimationWarning,
    )
    endog = np.column_stack([successes, trials - successes])
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
        warnings.simplefilter("always")
        try:
            res = sm.GLM(endog, x, family=sm.families.Binomial()).fit()
        except (np.linalg.LinAlgError, ValueError):
            return None
    other = [w for w in caught if not issubclass(w.category, numerical)]
    for w in other:  # not about this fit's numerics: let the caller's filters decide
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    params = np.asarray(res.params, dtype=np.float64)
    se = np.asarray(res.bse, dtype=np.float64)
    if len(other) < len(caught) or not res.converged or not (np.isfinite(params).all() and np.isfinite(se).all()):
        return None
    return params, se


def _loglik(eta: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> float:
    # log p = -log(1 + e^-eta), log(1-p) = -log(1 + e^eta), without overflow
    return float(-(successes * np.logaddexp(0.0, -eta) + (trials - successes) * np.logaddexp(0.0, eta)).sum())


def _fit_flic(
    x: np.ndarray, successes: np.ndarray, trials: np.ndarray, max_iter: int = 200, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Firth's penalised likelihood (Newton-Raphson with step halving on
    l(b) + 1/2 log|X'WX|; modified score X'(k - m p + h (1/2 - p)), h the hat values of the
    grouped design, Heinze & Schemper 2002), then FLIC's intercept correction."""
    beta = np.zeros(x.shape[1])

    def penalised(b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        eta = x @ b
        p = special.expit(eta)
        w = trials * p * (1.0 - p)
        info = x.T @ (w[:, None] * x)
        sign, logdet = np.linalg.slogdet(info)
        value = _loglik(eta, successes, trials) + 0.5 * logdet if sign > 0 else -np.inf
        return value, p, info

    current, p, info = penalised(beta)
    for _ in range(max_iter):
        pq = p * (1.0 - p)
        h = trials * pq * np.einsum("ij,jk,ik->i", x, np.linalg.inv(info), x)
        score = x.T @ (successes - trials * p + h * (0.5 - p))
        # Newton step on the augmented data (k + h/2 events of m + h trials, whose ML score is
        # the modified score): with weights (m + h) p (1 - p) the step does not overshoot where
        # a pattern is its own parameter (h = 1; with weights m p (1 - p) it overshoots twofold).
        step = np.linalg.solve(x.T @ (((trials + h) * pq)[:, None] * x), score)
        scale = 1.0
        while True:
            candidate = beta + scale * step
            value, p_new, info_new = penalised(candidate)
            if value >= current - 1e-9 * max(1.0, abs(current)) or scale < 1e-6:
                break
            scale /= 2.0
        beta, current, p, info = candidate, value, p_new, info_new
        if np.max(np.abs(scale * step)) < tol:
            break
    else:
        raise RiskModelError("the penalised (Firth) fit used for separated data did not converge")
    se = np.sqrt(np.diag(np.linalg.inv(info)))

    # FLIC: intercept by maximum likelihood with the Firth linear predictor as offset, so that
    # sum of expected = sum of observed (the intercept's score equation). Standard errors stay
    # the Firth ones (for the intercept too: the refit's own, conditional on the slopes,
    # would ignore their uncertainty).
    offset = x[:, 1:] @ beta[1:]
    b0 = float(beta[0])
    for _ in range(max_iter):
        pr = special.expit(b0 + offset)
        grad = float((successes - trials * pr).sum())
        hess = float((trials * pr * (1.0 - pr)).sum())
        move = grad / hess
        b0 += move
        if abs(move) < tol:
            break
    beta = beta.copy()
    beta[0] = b0
    return beta, se


__all__ = [
    "FIRTH_FLIC",
    "MAXIMUM_LIKELIHOOD",
    "UNKNOWN",
    "RiskModel",
    "RiskModelError",
    "c_statistic",
    "expected_risk",
    "fit_risk_model",
    "observed_expected",
    "unseen_levels",
]
