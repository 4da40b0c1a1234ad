"""Risk-adjusted outcome indicators: observed/expected beside the crude rate.

The model is fitted on the reference months before the reporting month (indirect
standardisation: the system's own recent case-mix-specific risk is the standard), then
applied to this month's patients; a facility's O/E above 1 means more outcomes than its
patients' factors predict. The coefficients and the c-statistic go to the appendix, so
a committee can judge how much the adjustment explains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipelines.analyse.risk import RiskModelError, expected_risk, fit_risk_model, observed_expected
from pipelines.compute.model import Indicator
from pipelines.publish.comparisons import risk_rows
from pipelines.publish.i18n import N_, _
from pipelines.tables import ALL_FACILITIES

OUTCOME = "outcome"
FACTOR_LABELS = {
    "age_band": N_("age band"),
    "sex": N_("sex"),
    "comorbidity_band": N_("number of comorbidities"),
    "admission_type": N_("admission type"),
    "service": N_("service"),
}


def scored(subjects: pd.DataFrame) -> pd.DataFrame:
    """The subjects a proportion counts (denominator, not excluded, not censored) with
    ``outcome`` = in the numerator and not excluded from it."""
    flag = lambda c: subjects[c].fillna(False).astype(bool)  # noqa: E731
    counted = flag("denominator") & ~flag("denominator_exclusion")
    if "censored" in subjects.columns:
        counted &= ~flag("censored")
    s = subjects[counted.to_numpy()].copy()
    s[OUTCOME] = (flag("numerator") & ~flag("numerator_exclusion"))[counted.to_numpy()].astype(np.int64).to_numpy()
    return s


def risk_view(
    indicator: Indicator,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    names: Mapping[str, str],
    reference_months: list[str],
) -> dict[str, Any]:
    """``reference`` and ``current``: scored subjects (see :func:`scored`) joined with
    their case-mix factors (:func:`pipelines.analyse.case_mix.case_mix`)."""
    spec = indicator.risk_adjustment
    assert spec is not None
    span = f"{reference_months[0]} – {reference_months[-1]}" if reference_months else "–"
    base: dict[str, Any] = {
        "factors": list(spec.factors),
        "factors_text": ", ".join(_(FACTOR_LABELS[f]) for f in spec.factors),
        "reference": reference_months,
        "reference_text": span,
        "error": "",
    }
    try:
        model = fit_risk_model(reference, OUTCOME, list(spec.factors))
    except RiskModelError as exc:
        return {**base, "error": _("Not risk-adjusted: %(reason)s") % {"reason": str(exc)}}
    if not len(current):
        return {**base, "error": _("No patients this month.")}
    cur = current.assign(expected=expected_risk(model, current))
    cur = cur.assign(facility_id=cur["facility_id"].astype("string").fillna("unknown"))
    by_facility = observed_expected(cur, "facility_id", OUTCOME, "expected")
    system = observed_expected(cur.assign(facility_id=ALL_FACILITIES), "facility_id", OUTCOME, "expected")
    coefficients = [
        {
            "term": str(r["term"]),
            "estimate": f"{float(r['estimate']):.3f}",
            "odds_ratio": f"{float(r['odds_ratio']):.2f}",
            "ci": f"{float(r['or_low']):.2f}–{float(r['or_high']):.2f}",
            "p_value": "<0.001" if float(r["p_value"]) < 0.001 else f"{float(r['p_value']):.3f}",
        }
        for r in model.coefficients.to_dict("records")
    ]
    return {
        **base,
        "system": risk_rows(indicator, system, {ALL_FACILITIES: _("Whole system")})[0],
        "rows": risk_rows(indicator, by_facility, names),
        "c_statistic": f"{model.c_statistic:.3f}",
        "n": model.n,
        "events": model.events,
        "coefficients": coefficients,
    }


__all__ = ["OUTCOME", "risk_view", "scored"]
