"""Risk adjustment against values known by construction or computed by another route:
a simulation's generating coefficients, a patient-level statsmodels Logit, scikit-learn's
roc_auc_score, the closed form of Firth's estimate in a 2x2 table, and gamma quantiles for
the exact Poisson interval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, stats
from sklearn.metrics import roc_auc_score

from pipelines.analyse.risk import (
    FIRTH_FLIC,
    MAXIMUM_LIKELIHOOD,
    RiskModelError,
    c_statistic,
    expected_risk,
    fit_risk_model,
    observed_expected,
    unseen_levels,
)

pytestmark = pytest.mark.filterwarnings("error")

TRUE = {  # generating log-odds of the simulation (reference levels: <50, F, elective)
    "intercept": -3.0,
    "age[50-69]": 0.5,
    "age[70-79]": 1.0,
    "age[80+]": 1.8,
    "sex[M]": 0.3,
    "adm[emergency]": 1.2,
}


def _simulate(n: int = 20_000, seed: int = 20240601) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.choice(["<50", "50-69", "70-79", "80+"], n, p=[0.4, 0.3, 0.2, 0.1])
    sex = rng.choice(["F", "M"], n, p=[0.55, 0.45])
    adm = rng.choice(["elective", "emergency"], n, p=[0.6, 0.4])
    eta = TRUE["intercept"] + np.select(
        [age == "50-69", age == "70-79", age == "80+"], [TRUE["age[50-69]"], TRUE["age[70-79]"], TRUE["age[80+]"]], 0.0
    )
    eta = eta + TRUE["sex[M]"] * (sex == "M") + TRUE["adm[emergency]"] * (adm == "emergency")
    died = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    unit = rng.choice(["A", "B", "C", "D"], n)
    return pd.DataFrame({"unit": unit, "age": age, "sex": sex, "adm": adm, "died": died})


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    return _simulate()


def test_fit_recovers_the_generating_coefficients(sim: pd.DataFrame) -> None:
    """Expected: the simulation's own log-odds (TRUE), within three standard errors and 0.15."""
    m = fit_risk_model(sim, "died", ["age", "sex", "adm"])
    assert m.method == MAXIMUM_LIKELIHOOD
    assert m.n == 20_000 and m.events == int(sim["died"].sum())
    coef = m.coefficients.set_index("term")
    assert list(coef.index) == list(TRUE)
    for term, value in TRUE.items():
        est, se = coef.loc[term, "estimate"], coef.loc[term, "std_error"]
        assert abs(est - value) < min(3 * se, 0.15), term
    assert coef.loc["age[80+]", "odds_ratio"] == pytest.approx(math.exp(coef.loc["age[80+]", "estimate"]))
    assert coef.loc["sex[M]", "or_low"] < math.exp(0.3) < coef.loc["sex[M]", "or_high"]
    assert list(m.coefficients.columns) == [
        "term",
        "estimate",
        "std_error",
        "odds_ratio",
        "or_low",
        "or_high",
        "p_value",
    ]


def test_grouped_fit_equals_a_patient_level_logit(sim: pd.DataFrame) -> None:
    """Expected: statsmodels Logit on one row per patient with pandas dummies (a different
    route to the same likelihood) gives the same estimates, standard errors and p-values."""
    m = fit_risk_model(sim, "died", ["age", "sex", "adm"])
    x = pd.DataFrame(
        {
            "const": 1.0,
            "a1": (sim["age"] == "50-69") * 1.0,
            "a2": (sim["age"] == "70-79") * 1.0,
            "a3": (sim["age"] == "80+") * 1.0,
            "m": (sim["sex"] == "M") * 1.0,
            "e": (sim["adm"] == "emergency") * 1.0,
        }
    )
    ref = sm.Logit(sim["died"].to_numpy(), x).fit(disp=0)
    np.testing.assert_allclose(m.coefficients["estimate"], ref.params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(m.coefficients["std_error"], ref.bse.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(m.coefficients["p_value"], ref.pvalues.to_numpy(), rtol=1e-5, atol=1e-300)


def test_observed_over_expected_is_one_on_the_fitting_data(sim: pd.DataFrame) -> None:
    """Expected: 1 exactly (to rounding), since the logistic MLE's intercept score equation is
    sum(fitted) = sum(observed); per unit O/E varies around 1."""
    m = fit_risk_model(sim, "died", ["age", "sex", "adm"])
    frame = sim.assign(p=expected_risk(m, sim), all="all")
    assert frame["p"].sum() == pytest.approx(frame["died"].sum(), rel=1e-9)
    overall = observed_expected(frame, "all", "died", "p")
    assert overall.loc[0, "oe_ratio"] == pytest.approx(1.0, rel=1e-9)
    assert overall.loc[0, "risk_adjusted_rate"] == pytest.approx(overall.loc[0, "crude_rate"], rel=1e-9)
    by_unit = observed_expected(frame, "unit", "died", "p")
    assert list(by_unit["unit"]) == ["A", "B", "C", "D"]
    assert by_unit["observed"].sum() == frame["died"].sum()
    assert ((by_unit["oe_low"] < 1) & (1 < by_unit["oe_high"])).all()


def test_c_statistic_matches_sklearn_including_ties(sim: pd.DataFrame) -> None:
    """Expected: sklearn.metrics.roc_auc_score; the scikit-learn documentation's example
    y = [0, 0, 1, 1], p = [0.1, 0.4, 0.35, 0.8] gives 0.75; a tie between classes counts 1/2."""
    assert c_statistic([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert c_statistic([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500) * 0.6 + 0.3 * y, 1)  # coarse: many ties within and across classes
    assert c_statistic(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    m = fit_risk_model(sim, "died", ["age", "sex", "adm"])  # 32 covariate patterns: heavily tied
    assert m.c_statistic == pytest.approx(roc_auc_score(sim["died"], expected_risk(m, sim)), abs=1e-12)
    assert math.isnan(c_statistic([1, 1, 1], [0.2, 0.3, 0.4]))
    assert c_statistic([0, 1, np.nan, 1], [0.1, 0.9, 0.5, np.nan]) == pytest.approx(1.0)


def test_reference_is_the_most_frequent_level_ties_by_name_missing_is_unknown() -> None:
    """Expected: levels by descending count then name (b and c tie at 30: b first); missing
    values form the level "unknown"."""
    rng = np.random.default_rng(3)
    svc = np.array(["c"] * 30 + ["a"] * 40 + ["b"] * 30 + [None] * 20, dtype=object)
    frame = pd.DataFrame({"svc": svc, "y": rng.integers(0, 2, 120)})
    frame.loc[:11, "y"] = 1
    m = fit_risk_model(frame, "y", ["svc"])
    assert m.levels == {"svc": ["a", "b", "c", "unknown"]}
    assert list(m.coefficients["term"]) == ["intercept", "svc[b]", "svc[c]", "svc[unknown]"]


def test_unseen_level_is_scored_as_the_reference_level(sim: pd.DataFrame) -> None:
    """Expected: a new age band "100+" and a missing sex (never missing in fitting, so
    "unknown" is unseen too) get the reference level's prediction exactly."""
    m = fit_risk_model(sim, "died", ["age", "sex", "adm"])
    new = pd.DataFrame({"age": ["100+", "<50", "80+"], "sex": [None, "F", "M"], "adm": ["emergency"] * 3})
    ref = pd.DataFrame({"age": ["<50", "<50", "80+"], "sex": ["F", "F", "M"], "adm": ["emergency"] * 3})
    np.testing.assert_array_equal(expected_risk(m, new), expected_risk(m, ref))
    assert unseen_levels(m, new) == {"age": 1, "sex": 1}
    coef = m.coefficients.set_index("term")["estimate"]
    assert expected_risk(m, new)[0] == pytest.approx(1 / (1 + math.exp(-(coef["intercept"] + coef["adm[emergency]"]))))


def test_rows_with_missing_outcome_are_left_out(sim: pd.DataFrame) -> None:
    """Expected: n and events count only the rows with a recorded outcome (here 20,000 of 20,500),
    and the fit is the same as without the extra rows."""
    extra = sim.head(500).assign(died=np.nan)
    m = fit_risk_model(pd.concat([sim, extra], ignore_index=True), "died", ["age", "sex", "adm"])
    base = fit_risk_model(sim, "died", ["age", "sex", "adm"])
    assert m.n == 20_000
    np.testing.assert_allclose(m.params, base.params, rtol=1e-12)


def test_too_few_events_or_one_class_raises_risk_model_error() -> None:
    """Expected: 9 events of 200 is below the 10-event floor; all-zero outcomes cannot be
    modelled; neither returns a model."""
    frame = pd.DataFrame({"sex": ["F", "M"] * 100, "died": [1] * 9 + [0] * 191})
    with pytest.raises(RiskModelError, match="too few events.*9 of 200"):
        fit_risk_model(frame, "died", ["sex"])
    with pytest.raises(RiskModelError, match="nothing to model"):
        fit_risk_model(frame.assign(died=0), "died", ["sex"])
    with pytest.raises(RiskModelError, match="too few non-events"):
        fit_risk_model(frame.assign(died=1 - frame["died"]), "died", ["sex"])
    assert fit_risk_model(frame, "died", ["sex"], min_events=5).events == 9
    assert issubclass(RiskModelError, ValueError)


def test_bad_outcome_values_and_collinear_factors_raise_risk_model_error() -> None:
    """Expected: an outcome of 2 is not 0/1; a factor that duplicates another is not identifiable."""
    frame = pd.DataFrame({"sex": ["F", "M"] * 50, "died": [0, 1, 2, 0] * 25})
    with pytest.raises(RiskModelError, match="must be 0/1"):
        fit_risk_model(frame, "died", ["sex"])
    twin = pd.DataFrame({"a": ["x", "y"] * 50, "died": [0, 0, 1, 1] * 25})
    twin["b"] = twin["a"].map({"x": "p", "y": "q"})
    with pytest.raises(RiskModelError, match="collinear"):
        fit_risk_model(twin, "died", ["a", "b"])


def test_separation_in_a_2x2_table_gives_firth_haldane_estimate_without_warnings() -> None:
    """Expected: level B has no deaths (quasi-complete separation, no MLE). In a saturated 2x2
    model Firth's estimate is the log odds ratio with 1/2 added to every cell (the hat values
    are all 1; Firth 1993): log((0.5/25.5) / (12.5/28.5)) = -3.1076. FLIC then refits the
    intercept so that 40 expit(b0) + 25 expit(b0 + slope) = 12 (solved here with brentq).
    The module's filterwarnings=error shows nothing leaked from statsmodels."""
    frame = pd.DataFrame({"svc": ["A"] * 40 + ["B"] * 25, "died": [1] * 12 + [0] * 28 + [0] * 25})
    m = fit_risk_model(frame, "died", ["svc"])
    assert m.method == FIRTH_FLIC
    coef = m.coefficients.set_index("term")
    slope = math.log((0.5 / 25.5) / (12.5 / 28.5))
    assert slope == pytest.approx(-3.1076, abs=1e-4)
    assert coef.loc["svc[B]", "estimate"] == pytest.approx(slope, abs=1e-8)
    expit = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    b0 = optimize.brentq(lambda b: 40 * expit(b) + 25 * expit(b + slope) - 12, -10, 10, xtol=1e-14)
    assert coef.loc["intercept", "estimate"] == pytest.approx(b0, abs=1e-8)
    assert np.isfinite(m.coefficients[["std_error", "or_low", "or_high", "p_value"]].to_numpy()).all()
    assert expected_risk(m, frame).sum() == pytest.approx(12.0, rel=1e-9)


def test_separation_among_several_factors_keeps_oe_one_and_other_estimates(sim: pd.DataFrame) -> None:
    """Expected: a service with no deaths makes the model fall back to Firth/FLIC; the other
    coefficients stay near the generating values (TRUE, within 0.2) and overall O/E is 1."""
    rng = np.random.default_rng(11)
    frame = sim.assign(svc=rng.choice(["gen", "surg", "derm"], len(sim), p=[0.5, 0.4, 0.1]))
    frame.loc[frame["svc"] == "derm", "died"] = 0
    m = fit_risk_model(frame, "died", ["age", "sex", "adm", "svc"])
    assert m.method == FIRTH_FLIC
    coef = m.coefficients.set_index("term")["estimate"]
    for term in ("age[80+]", "sex[M]", "adm[emergency]"):
        assert abs(coef[term] - TRUE[term]) < 0.2, term
    assert coef["svc[derm]"] < -4 and np.isfinite(coef["svc[derm]"])
    assert expected_risk(m, frame).sum() == pytest.approx(frame["died"].sum(), rel=1e-9)


def test_oe_interval_is_garwood_on_observed_divided_by_expected() -> None:
    """Expected: exact Poisson limits from gamma quantiles (Gamma(k) lower, Gamma(k+1) upper,
    scipy.stats.gamma, the same limits as chi-square/2) divided by E; for O = 5 the published
    limits 1.6235 and 11.6683 (Garwood 1936; Ulm 1990). E = 0 gives NaN, and the
    risk-adjusted rate is O/E x the overall crude rate 7/30."""
    frame = pd.DataFrame(
        {
            "ward": ["a"] * 10 + ["b"] * 10 + ["c"] * 10,
            "died": [1] * 5 + [0] * 5 + [1] * 2 + [0] * 8 + [0] * 10,
            "p": [0.32] * 10 + [0.1] * 10 + [0.0] * 10,
        }
    )
    oe = observed_expected(frame, "ward", "died", "p").set_index("ward")
    a = oe.loc["a"]
    assert (a["n"], a["observed"], a["expected"]) == (10, 5.0, pytest.approx(3.2))
    assert a["oe_ratio"] == pytest.approx(5 / 3.2)
    assert a["oe_low"] == pytest.approx(stats.gamma.ppf(0.025, 5) / 3.2, rel=1e-10)
    assert a["oe_high"] == pytest.approx(stats.gamma.ppf(0.975, 6) / 3.2, rel=1e-10)
    assert a["oe_low"] * 3.2 == pytest.approx(1.6235, abs=1e-4)
    assert a["oe_high"] * 3.2 == pytest.approx(11.6683, abs=1e-4)
    assert a["crude_rate"] == 0.5
    assert a["risk_adjusted_rate"] == pytest.approx(5 / 3.2 * 7 / 30)
    c = oe.loc["c"]
    assert np.isnan(c["oe_ratio"]) and np.isnan(c["oe_low"]) and np.isnan(c["oe_high"])
    b99 = observed_expected(frame, "ward", "died", "p", confidence=0.99).set_index("ward").loc["b"]
    assert b99["oe_high"] == pytest.approx(stats.gamma.ppf(0.995, 3) / 1.0, rel=1e-10)


def test_observed_expected_skips_unscored_rows_and_keeps_a_missing_group() -> None:
    """Expected: the row with a missing outcome and the row with no expected value are not
    counted; patients with no ward stay visible as their own row."""
    frame = pd.DataFrame(
        {
            "ward": ["a", "a", "a", None, "a"],
            "died": [1, 0, np.nan, 1, 0],
            "p": [0.5, 0.5, 0.5, 0.4, np.nan],
        }
    )
    oe = observed_expected(frame, "ward", "died", "p")
    assert len(oe) == 2
    assert oe.loc[0, "ward"] == "a" and oe.loc[0, "n"] == 2 and oe.loc[0, "expected"] == 1.0
    assert pd.isna(oe.loc[1, "ward"]) and oe.loc[1, "observed"] == 1.0


def test_a_warning_from_the_likelihood_fit_means_the_penalised_fit_is_used(
    sim: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expected: if statsmodels warns (here a ConvergenceWarning injected into its fit), the
    warning does not escape and the model is the Firth/FLIC one, still with O/E 1."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    import pipelines.analyse.risk as risk

    real_glm = sm.GLM

    class WarningGLM(real_glm):  # type: ignore[misc, valid-type]
        def fit(self, *args: object, **kwargs: object) -> object:
            import warnings

            warnings.warn("injected", ConvergenceWarning, stacklevel=1)
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(risk.sm, "GLM", WarningGLM)
    m = fit_risk_model(sim, "died", ["age", "sex", "adm"])
    assert m.method == FIRTH_FLIC
    assert expected_risk(m, sim).sum() == pytest.approx(sim["died"].sum(), rel=1e-9)
    assert abs(m.coefficients.set_index("term").loc["age[80+]", "estimate"] - TRUE["age[80+]"]) < 0.15


def test_a_level_with_a_single_patient_converges_without_warnings() -> None:
    """Expected: one patient with a missing band forms the level "unknown" with no event, which
    separates; Firth gives that pattern (0 + 1/2) / (1 + 1) = 0.25 before FLIC (its hat value is
    1), a finite estimate with a wide interval, and FLIC keeps O/E = 1 (hand arithmetic)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "y": rng.integers(0, 2, 200),
            "sex": rng.choice(["F", "M"], 200),
            "band": pd.array(rng.choice([1, 2, 3], 200), dtype="Int64"),
        }
    )
    frame.loc[3, "band"] = pd.NA
    frame.loc[3, "y"] = 0
    m = fit_risk_model(frame, "y", ["sex", "band"])
    assert m.method == FIRTH_FLIC and m.levels["band"][-1] == "unknown"
    row = m.coefficients.set_index("term").loc["band[unknown]"]
    assert np.isfinite(row["estimate"]) and row["or_low"] < 1 < row["or_high"]
    assert expected_risk(m, frame).sum() == pytest.approx(frame["y"].sum(), rel=1e-9)
