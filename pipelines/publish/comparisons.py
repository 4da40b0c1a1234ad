"""Fair comparisons between units: funnel plots and the organisation drill-down.

A league table of crude ward rates ranks noise: a 12-bed ward with one fall tops it.
The funnel plot (Spiegelhalter 2005) sets each unit against the system value with limits
that widen as the unit gets smaller, allowing for over-dispersion, and calls a unit an
outlier only outside them. The drill-down rolls results up the organisation tree
(:mod:`pipelines.organisation`) with the one scoring rule
(:func:`pipelines.compute.scoring.aggregate`), so a department's figure is computed like
the system's, never averaged from its wards' rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from pipelines.analyse.funnel import funnel, funnel_curve
from pipelines.compute.model import Indicator, Scoring
from pipelines.compute.scoring import aggregate, scored_counts
from pipelines.organisation import NO_DEPARTMENT, Organisation
from pipelines.publish.formatting import display_scale, format_value, num, text
from pipelines.publish.i18n import N_, _
from pipelines.tables import ALL_FACILITIES, OVERALL

OUTLIER_LABELS = {
    "high_998": N_("Above the 99.8% limit"),
    "high_95": N_("Above the 95% limit"),
    "low_95": N_("Below the 95% limit"),
    "low_998": N_("Below the 99.8% limit"),
    "": N_("Within the limits"),
}
LEVEL_LABELS = {"system": N_("System"), "facility": N_("Facility"), "department": N_("Department"), "ward": N_("Ward")}


def funnel_view(
    indicator: Indicator, now: pd.DataFrame, names: Mapping[str, str], *, level: str
) -> dict[str, Any] | None:
    """Funnel of the month's facilities (``level="facility"``) or wards (``"ward"``,
    from the system-wide ``ward_id`` stratum) against the system value. Continuous
    measures (a median) have no binomial or Poisson funnel: None."""
    if indicator.scoring is Scoring.CONTINUOUS:
        return None
    if level == "facility":
        rows = now[(now["facility_id"] != ALL_FACILITIES) & (now["stratifier"] == OVERALL[0])]
        ids = rows["facility_id"].astype("string")
    else:
        rows = now[(now["facility_id"] == ALL_FACILITIES) & (now["stratifier"] == "ward_id")]
        ids = rows["stratum"].astype("string")
    system = now[(now["facility_id"] == ALL_FACILITIES) & (now["stratifier"] == OVERALL[0])]
    if len(rows) < 2 or not len(system):
        return None
    counts = [scored_counts(indicator, r) for r in rows.to_dict("records")]
    units = pd.DataFrame({"unit": ids.to_numpy(), "numerator": [c[0] for c in counts],
                          "denominator": [c[1] for c in counts]})  # fmt: skip
    sys_n, sys_d = scored_counts(indicator, system.iloc[0].to_dict())
    if sys_d <= 0:
        return None
    kind = "ratio" if indicator.scoring is Scoring.RATIO else "proportion"
    mult = indicator.multiplier if kind == "ratio" else 1.0
    f = funnel(units, kind=kind, target=sys_n / sys_d, multiplier=mult)
    scale = display_scale(indicator) if kind == "proportion" else 1.0
    dens = units["denominator"].to_numpy(dtype=np.float64)
    positive = dens[dens > 0]
    curve = funnel_curve(f, np.linspace(max(1.0, float(positive.min()) * 0.5), float(positive.max()) * 1.1, 60)) \
        if len(positive) else pd.DataFrame()  # fmt: skip
    out_units = []
    for rec in f.units.to_dict("records"):
        value = num(rec.get("value"))
        out_units.append(
            {
                "unit": text(rec["unit"]),
                "name": names.get(text(rec["unit"]), text(rec["unit"])),
                "denominator": num(rec.get("denominator")) or 0.0,
                "value": None if value is None else value * scale,
                "value_text": format_value(value, indicator) if value is not None else "–",
                "outlier": text(rec.get("outlier")),
                "outlier_label": _(OUTLIER_LABELS.get(text(rec.get("outlier")), "")),
            }
        )
    out_units.sort(key=lambda u: (u["outlier"] == "", str(u["name"]).casefold()))
    return {
        "level": level,
        "level_label": _(LEVEL_LABELS[level]),
        "target": f.target * scale,
        "target_text": format_value(f.target, indicator),
        "phi": f.phi,
        "tau2": f.tau2,
        "method": f.method.value,
        "units": out_units,
        "outliers": [u for u in out_units if u["outlier"]],
        "curve": [
            {
                k: (None if not np.isfinite(v) else float(v) * (scale if k != "denominator" else 1.0))
                for k, v in rec.items()
            }
            for rec in curve.to_dict("records")
        ],  # fmt: skip
        "denominator_label": _("Patient-days") if kind == "ratio" else _("Denominator"),
    }


def hierarchy_rows(
    indicator: Indicator, subjects: pd.DataFrame, period: str, org: Organisation
) -> list[dict[str, Any]]:
    """System -> facility -> department -> ward rows of the month, each scored by the one
    scoring rule on the subjects below it (empty when no subjects were kept)."""
    s = subjects[subjects["indicator_id"] == indicator.id] if len(subjects) else subjects
    if not len(s):
        return []
    s = s.assign(department=org.departments(s["ward_id"]).to_numpy())
    res = aggregate(replace(indicator, stratifiers=("department", "ward_id")), s, period)
    ward_dept = dict(zip(s["ward_id"].astype("string"), s["department"], strict=False))
    rows: list[dict[str, Any]] = []

    def row(rec: Mapping[str, Any], level: str, unit: str, name: str) -> dict[str, Any]:
        n, d = scored_counts(indicator, rec)
        score = num(rec.get("measure_score"))
        return {
            "level": level,
            "level_label": _(LEVEL_LABELS[level]),
            "unit": unit,
            "name": name,
            "value_text": format_value(score, indicator),
            "numerator": n,
            "denominator": d,
            "status": text(rec.get("status")) or "grey",
        }

    recs = res.to_dict("records")
    system = next(r for r in recs if r["facility_id"] == ALL_FACILITIES and r["stratifier"] == OVERALL[0])
    rows.append(row(system, "system", ALL_FACILITIES, org.system_name))
    facilities = sorted({str(r["facility_id"]) for r in recs if r["facility_id"] != ALL_FACILITIES},
                        key=lambda f: org.name(f).casefold())  # fmt: skip
    for fac in facilities:
        mine = [r for r in recs if r["facility_id"] == fac]
        top = next(r for r in mine if r["stratifier"] == OVERALL[0])
        rows.append(row(top, "facility", fac, org.name(fac)))
        depts = sorted((r for r in mine if r["stratifier"] == "department"), key=lambda r: org.name(str(r["stratum"])))
        for dept in depts:
            did = str(dept["stratum"])
            rows.append(row(dept, "department", did, org.name(did) if did != NO_DEPARTMENT else _("No department")))
            wards = [r for r in mine if r["stratifier"] == "ward_id" and ward_dept.get(str(r["stratum"])) == did]
            for w in sorted(wards, key=lambda r: org.name(str(r["stratum"])).casefold()):
                rows.append(row(w, "ward", str(w["stratum"]), org.name(str(w["stratum"]))))
    return rows


def risk_rows(indicator: Indicator, oe: pd.DataFrame, names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Observed/expected per facility beside the crude rate (``oe`` from
    :func:`pipelines.analyse.risk.observed_expected`)."""
    out = []
    for rec in oe.to_dict("records"):
        unit = text(rec["group"]) if "group" in rec else text(rec.get("facility_id"))
        oer, low, high = num(rec.get("oe_ratio")), num(rec.get("oe_low")), num(rec.get("oe_high"))
        flag = ""
        if low is not None and low > 1:
            flag = "high"
        elif high is not None and high < 1:
            flag = "low"
        out.append(
            {
                "unit": unit,
                "name": names.get(unit, unit),
                "n": int(num(rec.get("n")) or 0),
                "observed": int(num(rec.get("observed")) or 0),
                "expected": num(rec.get("expected")) or 0.0,
                "crude_text": format_value(num(rec.get("crude_rate")), indicator),
                "oe_text": "–" if oer is None else f"{oer:.2f}",
                "ci_text": "–" if low is None or high is None else f"{low:.2f}–{high:.2f}",
                "adjusted_text": format_value(num(rec.get("risk_adjusted_rate")), indicator),
                "flag": flag,
            }
        )
    return out


def levels_present(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [lv for lv in ("system", "facility", "department", "ward") if any(r["level"] == lv for r in rows)]


__all__ = ["LEVEL_LABELS", "OUTLIER_LABELS", "funnel_view", "hierarchy_rows", "levels_present", "risk_rows"]
