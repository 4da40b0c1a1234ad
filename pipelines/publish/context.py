"""Everything the monthly committee report shows, as a plain JSON-able dict.

The report is read by a hospital quality committee, so the context is organised the way
an NHS integrated performance report is: a scorecard first (every indicator, grouped by
domain, with value, uncertainty, target, RAG status and direction of travel), then one
section per indicator (definitions, trend, counts, breakdowns and, for indicators off
target, the cases behind the number), then the data-quality evidence that tells the
committee how far to trust the figures.

Nothing here produces HTML: values are pre-formatted strings and numbers, so the same
context can feed a template, a JSON API or a test. Charts are drawn later from the
``trend`` series kept in each indicator section.

Display rules (one place, so the scorecard, tables and charts agree):

* proportion scores are fractions 0..1 and are shown multiplied by the indicator's
  ``multiplier`` (default 100, i.e. as a percentage);
* ratio scores are already "events per multiplier units" and continuous scores are in
  the indicator's unit, so both are shown as they are;
* "change vs previous month" is in display units (percentage points for percentages)
  and is called better/worse using the indicator's improvement notation.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipelines.errors import CareQIError
from pipelines.periods import Month
from pipelines.tables import ALL_FACILITIES, INDICATOR_RESULTS, OVERALL, POPULATIONS

log = logging.getLogger(__name__)

DOMAIN_LABELS: dict[str, str] = {
    "patient_safety": "Patient safety",
    "guideline_adherence": "Guideline adherence",
    "patient_experience": "Patient experience",
    "responsiveness": "Responsiveness",
}
STATUS_LABELS: dict[str, str] = {
    "green": "On target",
    "amber": "Near target",
    "red": "Off target",
    "grey": "No data",
    "provisional": "Provisional",
    "not_computed": "Not computed",
}
#: Statuses that grade a month against its target (only final results are graded).
GRADED = ("green", "amber", "red", "grey")
POPULATION_LABELS: dict[str, str] = {
    "initial_population": "Initial population",
    "denominator": "Denominator",
    "denominator_exclusion": "Denominator exclusions",
    "numerator": "Numerator",
    "numerator_exclusion": "Numerator exclusions",
}
#: Drill-down lists stop here; the rest is counted ("and N more").
CASE_LIMIT = 50
#: Quarantine reasons listed in the data-quality section.
QUARANTINE_REASON_LIMIT = 20


# --------------------------------------------------------------------------- helpers


def _num(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _int(value: Any) -> int | None:
    f = _num(value)
    return None if f is None else int(round(f))


def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def display_scale(indicator: Mapping[str, Any]) -> float:
    """Factor from ``measure_score`` to the number a reader sees."""
    if indicator.get("scoring") == "proportion":
        return float(indicator.get("multiplier") or 100)
    return 1.0


def is_percent(indicator: Mapping[str, Any]) -> bool:
    return indicator.get("scoring") == "proportion" and display_scale(indicator) == 100


def _decimals(indicator: Mapping[str, Any], shown: float) -> int:
    if indicator.get("decimals") is not None:
        return int(indicator["decimals"])
    if is_percent(indicator):
        return 1
    size = abs(shown)
    return 2 if size < 10 else 1 if size < 100 else 0


def format_number(value: float | None, indicator: Mapping[str, Any]) -> str:
    """A score in display units without its unit (``"87.5"``, ``"3.21"``); ``"–"`` if absent."""
    if value is None:
        return "–"
    shown = value * display_scale(indicator)
    return f"{shown:,.{_decimals(indicator, shown)}f}"


def format_value(value: float | None, indicator: Mapping[str, Any]) -> str:
    """A score with its unit: ``"87.5%"``, ``"3.21 per 1,000 patient-days"``, ``"4.2 days"``."""
    if value is None:
        return "–"
    number = format_number(value, indicator)
    unit = _text(indicator.get("unit")).strip()
    if not unit:
        return number
    return f"{number}{unit}" if unit.startswith("%") else f"{number} {unit}"


def format_ci(low: float | None, high: float | None, indicator: Mapping[str, Any]) -> str:
    if low is None or high is None:
        return "–"
    text = f"{format_number(low, indicator)}–{format_number(high, indicator)}"
    return text + "%" if is_percent(indicator) else text


def format_count(value: float | int | None, decimals: int = 0) -> str:
    return "–" if value is None else f"{value:,.{decimals}f}"


def change_vs_previous(current: float | None, previous: float | None, indicator: Mapping[str, Any]) -> dict[str, Any]:
    """Direction of travel: the month-on-month change in display units, judged
    against the indicator's improvement notation (a fall is good when lower is better).
    A change that rounds to zero at the displayed precision is "no change"."""
    if current is None or previous is None:
        return {"delta": None, "text": "–", "direction": "none", "label": "no comparison"}
    scale = display_scale(indicator)
    delta = (current - previous) * scale
    decimals = _decimals(indicator, current * scale)
    if round(delta, decimals) == 0:
        return {"delta": 0.0, "text": "no change", "direction": "same", "label": "no change"}
    better = (delta > 0) == (indicator.get("improvement", "increase") == "increase")
    suffix = " pp" if is_percent(indicator) else ""
    arrow = "▲" if delta > 0 else "▼"
    return {
        "delta": delta,
        "text": f"{arrow} {delta:+,.{decimals}f}{suffix}",
        "direction": "better" if better else "worse",
        "label": "better" if better else "worse",
    }


def _status(value: Any, state: Any = "final") -> str:
    """The badge a result gets: its red/amber/green status when final; ``provisional``
    (shown, not graded) or ``not_computed`` otherwise."""
    st = _text(state).strip().lower() or "final"
    if st in ("provisional", "not_computed"):
        return st
    s = _text(value).strip().lower()
    return s if s in GRADED else "grey"


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CareQIError(f"{what} is missing column(s) {', '.join(missing)}; expected the tables.py contract")


# --------------------------------------------------------------------------- sections


def _row_summary(row: Mapping[str, Any] | None, indicator: Mapping[str, Any]) -> dict[str, Any]:
    """One results row as display values (a missing row reads as "no data")."""
    if row is None:
        row = {}
    score, low, high = _num(row.get("measure_score")), _num(row.get("ci_low")), _num(row.get("ci_high"))
    counts = {p: _int(row.get(p)) for p in POPULATIONS}
    out: dict[str, Any] = {
        "value": score,
        "value_text": format_value(score, indicator),
        "number_text": format_number(score, indicator),
        "ci_low": low,
        "ci_high": high,
        "ci_text": format_ci(low, high, indicator),
        "status": _status(row.get("status"), row.get("state")),
        "state": _text(row.get("state")) or ("final" if row else ""),
        "state_reason": _text(row.get("state_reason")),
        "counts": counts,
        "numerator_events": _int(row.get("numerator_events")),
        "denominator_value": _num(row.get("denominator_value")),
    }
    out["status_label"] = STATUS_LABELS[out["status"]]
    scoring = indicator.get("scoring")
    if scoring == "ratio":
        out["numerator_text"] = format_count(out["numerator_events"])
        dv = out["denominator_value"]
        out["denominator_text"] = format_count(dv, 0 if dv is None or float(dv).is_integer() else 1)
    else:
        out["numerator_text"] = format_count(counts["numerator"])
        out["denominator_text"] = format_count(counts["denominator"])
    return out


def _lookup(frame: pd.DataFrame) -> dict[tuple[str, str, str, str, str], dict[str, Any]]:
    keys = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
    out: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
    for rec in frame.to_dict("records"):
        key = tuple(_text(rec[k]) for k in keys)
        if key in out:
            raise CareQIError(f"indicator results hold more than one row for {key}")
        out[key] = rec  # type: ignore[index]
    return out


def _numerator_labels(indicator: Mapping[str, Any]) -> tuple[str, str]:
    scoring = indicator.get("scoring")
    if scoring == "ratio":
        return "Events", "Exposure"
    if scoring == "continuous":
        return "", "Subjects"
    return "Numerator", "Denominator"


def _case_selection(
    subjects: pd.DataFrame, indicator: Mapping[str, Any], period: str, target: float | None
) -> tuple[pd.DataFrame, str]:
    """The subjects "behind" an off-target number, and a sentence saying which.

    * lower is better (falls, pressure injuries, complaints): the numerator cases,
      i.e. the events themselves (for ratios, subjects with at least one event);
    * higher is better (prophylaxis given, BP controlled): eligible subjects who did
      NOT meet the numerator, i.e. the missed opportunities; exclusions are left out
      because they were never expected to meet it;
    * continuous measures: eligible subjects whose own value is worse than the target
      (all eligible subjects when there is no target), worst first.
    """
    s = subjects[
        (subjects["indicator_id"].astype("string") == str(indicator["id"]))
        & (subjects["period"].astype("string") == period)
    ]

    def flag(col: str) -> pd.Series:
        if col not in s.columns:
            return pd.Series(False, index=s.index)
        return s[col].astype("boolean").fillna(False).astype(bool)

    eligible = flag("denominator") & ~flag("denominator_exclusion")
    decrease = indicator.get("improvement") == "decrease"
    if indicator.get("scoring") == "continuous":
        obs = pd.to_numeric(s.get("observation", pd.Series(index=s.index, dtype="Float64")), errors="coerce")
        mask = eligible & obs.notna()
        if target is not None:
            mask &= (obs > target) if decrease else (obs < target)
        chosen = s[mask].assign(_sort=(-obs if decrease else obs)[mask].astype(float))
        chosen = chosen.sort_values(["_sort", "subject_id"], kind="mergesort").drop(columns="_sort")
        if target is None:
            rule = "Eligible cases, worst value first."
        else:
            rule = "Eligible cases whose own value is worse than the target, worst first."
        return chosen, rule
    if decrease:
        in_num = flag("numerator") & ~flag("numerator_exclusion")
        if "numerator_events" in s.columns:
            in_num |= pd.to_numeric(s["numerator_events"], errors="coerce").fillna(0).gt(0) & ~flag(
                "numerator_exclusion"
            )
        mask = in_num & ~flag("denominator_exclusion")
        rule = "Cases counted in the numerator (the events behind the rate)."
    else:
        mask = eligible & ~flag("numerator") & ~flag("numerator_exclusion")
        rule = "Eligible cases that did not meet the numerator (missed opportunities); exclusions left out."
    chosen = s[mask]
    sort_cols = [c for c in ("facility_id", "ward_id", "service", "subject_id") if c in chosen.columns]
    chosen = chosen.sort_values(sort_cols, kind="mergesort", na_position="last")
    return chosen, rule


def _cases(
    subjects: pd.DataFrame,
    indicator: Mapping[str, Any],
    period: str,
    target: float | None,
    facilities: Mapping[str, str],
    wards: Mapping[str, str],
) -> dict[str, Any]:
    chosen, rule = _case_selection(subjects, indicator, period, target)
    rows = []
    for rec in chosen.head(CASE_LIMIT).to_dict("records"):
        fac, ward = _text(rec.get("facility_id")), _text(rec.get("ward_id"))
        row = {
            "subject_id": _text(rec.get("subject_id")),
            "facility": facilities.get(fac, fac),
            "ward": wards.get(ward, ward),
            "service": _text(rec.get("service")),
        }
        if indicator.get("scoring") == "ratio":
            row["detail"] = format_count(_int(rec.get("numerator_events")))
        elif indicator.get("scoring") == "continuous":
            obs = _num(rec.get("observation"))
            row["detail"] = "–" if obs is None else f"{obs:,.1f}"
        rows.append(row)
    detail_label = {"ratio": "Events", "continuous": _text(indicator.get("unit")).capitalize() or "Value"}
    return {
        "rule": rule,
        "rows": rows,
        "total": int(len(chosen)),
        "more": max(0, int(len(chosen)) - CASE_LIMIT),
        "detail_label": detail_label.get(_text(indicator.get("scoring")), ""),
    }


def _stratifier_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _stratum_label(stratifier: str, stratum: str, facilities: Mapping[str, str], wards: Mapping[str, str]) -> str:
    if stratifier in ("ward", "ward_id"):
        return wards.get(stratum, stratum)
    if stratifier in ("facility", "facility_id"):
        return facilities.get(stratum, stratum)
    return stratum


def _indicator_section(
    indicator: Mapping[str, Any],
    period: str,
    window: list[str],
    results: pd.DataFrame,
    lookup: Mapping[tuple[str, str, str, str, str], dict[str, Any]],
    subjects: pd.DataFrame,
    facilities: Mapping[str, str],
    wards: Mapping[str, str],
) -> dict[str, Any]:
    iid = str(indicator["id"])
    trend = []
    for p in window:
        row = lookup.get((iid, p, ALL_FACILITIES, *OVERALL))
        s = _row_summary(row, indicator)
        trend.append(
            {
                "period": p,
                "label": Month.parse(p).short_label,
                "value": s["value"],
                "ci_low": s["ci_low"],
                "ci_high": s["ci_high"],
                "status": s["status"] if row is not None else "grey",
                "state": s["state"],
                "target": _num(row.get("target")) if row is not None else None,
            }
        )
    current_row = lookup.get((iid, period, ALL_FACILITIES, *OVERALL))
    current = _row_summary(current_row, indicator)
    target = _num(current_row.get("target")) if current_row is not None else None
    if target is None:
        target = _num(indicator.get("target"))
    # Month-on-month change only between two final months: a provisional figure is not
    # comparable with a final one (it may still grow as later batches arrive).
    comparable = len(trend) > 1 and trend[-1]["state"] == "final" and trend[-2]["state"] == "final"
    previous = trend[-2]["value"] if comparable else None
    last_final = next((t for t in reversed(trend) if t["state"] == "final"), None)

    now = results[(results["indicator_id"].astype("string") == iid) & (results["period"].astype("string") == period)]
    fac_rows = []
    overall_now = now[
        (now["stratifier"].astype("string") == OVERALL[0]) & (now["stratum"].astype("string") == OVERALL[1])
    ]
    for rec in overall_now.to_dict("records"):
        fid = _text(rec["facility_id"])
        if fid == ALL_FACILITIES:
            continue
        fac_rows.append({"facility_id": fid, "facility": facilities.get(fid, fid), **_row_summary(rec, indicator)})
    fac_rows.sort(key=lambda r: (r["facility"].casefold(), r["facility_id"]))

    strat_groups: dict[str, list[dict[str, Any]]] = {}
    strat_now = now[
        (now["facility_id"].astype("string") == ALL_FACILITIES) & (now["stratifier"].astype("string") != OVERALL[0])
    ]
    for rec in strat_now.to_dict("records"):
        name, stratum = _text(rec["stratifier"]), _text(rec["stratum"])
        strat_groups.setdefault(name, []).append(
            {
                "stratum": stratum,
                "label": _stratum_label(name, stratum, facilities, wards),
                **_row_summary(rec, indicator),
            }
        )
    stratifiers = [
        {
            "name": name,
            "label": _stratifier_label(name),
            "rows": sorted(rows, key=lambda r: (r["label"].casefold(), r["stratum"])),
        }
        for name, rows in sorted(strat_groups.items())
    ]

    populations_text = indicator.get("populations") or {}
    populations = [
        {
            "name": p,
            "label": POPULATION_LABELS[p],
            "definition": _text(populations_text.get(p)),
            "count": current["counts"][p],
            "count_text": format_count(current["counts"][p]),
        }
        for p in POPULATIONS
        if p in populations_text or (current["counts"][p] or 0) > 0
    ]
    extra_counts = []
    if indicator.get("scoring") == "ratio":
        extra_counts = [
            {"label": "Events (ratio numerator)", "text": current["numerator_text"]},
            {"label": "Exposure (ratio denominator)", "text": current["denominator_text"]},
        ]

    status = current["status"] if current_row is not None else "grey"
    num_label, den_label = _numerator_labels(indicator)
    section: dict[str, Any] = {
        "id": iid,
        "anchor": "ind-" + re.sub(r"[^A-Za-z0-9_-]", "-", iid),
        "title": _text(indicator.get("title")) or iid,
        "description": _text(indicator.get("description")),
        "domain": _text(indicator.get("domain")),
        "domain_label": DOMAIN_LABELS.get(
            _text(indicator.get("domain")), _stratifier_label(_text(indicator.get("domain")))
        ),
        "owner": _text(indicator.get("owner")),
        "scoring": _text(indicator.get("scoring")),
        "basis": _text(indicator.get("basis")),
        "aggregate": _text(indicator.get("aggregate")),
        "improvement": _text(indicator.get("improvement")),
        "improvement_text": "Lower is better" if indicator.get("improvement") == "decrease" else "Higher is better",
        "unit": _text(indicator.get("unit")),
        "cms_id": _text(indicator.get("cms_id")),
        "scale": display_scale(indicator),
        "percent": is_percent(indicator),
        "target": target,
        "target_text": format_value(target, indicator),
        "target_short": format_number(target, indicator)
        + ("%" if is_percent(indicator) and target is not None else ""),
        "current": {**current, "status": status, "status_label": STATUS_LABELS[status]},
        "previous_value": previous,
        "change": change_vs_previous(current["value"] if comparable else None, previous, indicator),
        "last_final": (
            None
            if last_final is None
            else {
                "period": last_final["period"],
                "label": last_final["label"],
                "status": last_final["status"],
                "status_label": STATUS_LABELS[last_final["status"]],
                "value_text": format_value(last_final["value"], indicator),
            }
        ),
        "trend": trend,
        "populations": populations,
        "extra_counts": extra_counts,
        "numerator_label": num_label,
        "denominator_label": den_label,
        "facilities": fac_rows,
        "stratifiers": stratifiers,
        "stratifiers_defined": [str(s) for s in indicator.get("stratifiers") or []],
        "cases": None,
        "follow_up": _text((indicator.get("follow_up") or {}).get("sentence")),
    }
    if status in ("red", "amber"):
        section["cases"] = _cases(subjects, indicator, period, target, facilities, wards)
    return section


def _data_quality(reconciliation: pd.DataFrame, checks: pd.DataFrame, quarantine: pd.DataFrame) -> dict[str, Any]:
    """Reconciliation, failed checks and top quarantine reasons.

    Percentages of failed checks are recomputed from ``violated / denominator`` so the
    report does not depend on whether the validator stored a fraction or a percentage.
    Quarantine payloads are never shown: they are raw records that may hold free text.
    """
    recon_rows = []
    if len(reconciliation):
        _require_columns(
            reconciliation, ["table_name", "rows_read", "rows_accepted", "rows_quarantined"], "reconciliation"
        )
        sort_cols = ["batch", "table_name"] if "batch" in reconciliation.columns else ["table_name"]
        for rec in reconciliation.sort_values(sort_cols, kind="mergesort").to_dict("records"):
            read, acc, quar = (_int(rec.get(c)) or 0 for c in ("rows_read", "rows_accepted", "rows_quarantined"))
            # Recheck the arithmetic rather than trusting the flag alone.
            balanced = bool(rec.get("balanced")) if _text(rec.get("balanced")) != "" else True
            balanced = balanced and read == acc + quar
            recon_rows.append(
                {
                    "batch": _text(rec.get("batch")),
                    "table": _text(rec.get("table_name")),
                    "read": read,
                    "accepted": acc,
                    "quarantined": quar,
                    "read_text": format_count(read),
                    "accepted_text": format_count(acc),
                    "quarantined_text": format_count(quar),
                    "quarantined_pct": f"{(100 * quar / read) if read else 0:.1f}%",
                    "balanced": balanced,
                    "difference": read - acc - quar,
                }
            )
    unbalanced = [r["table"] for r in recon_rows if not r["balanced"]]

    failed = []
    if len(checks):
        _require_columns(checks, ["table_name", "check", "violated", "denominator", "status"], "validation checks")
        bad = checks[checks["status"].astype("string").str.strip().str.lower().eq("fail").fillna(False)]
        for rec in bad.to_dict("records"):
            violated, denom = _int(rec.get("violated")) or 0, _int(rec.get("denominator")) or 0
            pct = 100 * violated / denom if denom else (_num(rec.get("pct")) or 0.0)
            failed.append(
                {
                    "table": _text(rec.get("table_name")),
                    "check": _text(rec.get("check")),
                    "description": _text(rec.get("description")),
                    "category": _text(rec.get("category")),
                    "violated": violated,
                    "violated_text": format_count(violated),
                    "denominator_text": format_count(denom),
                    "pct": pct,
                    "pct_text": f"{pct:.2f}%",
                }
            )
        failed.sort(key=lambda r: (r["table"], -r["violated"], r["check"]))

    reasons: list[dict[str, Any]] = []
    reasons_more = 0
    by_table: list[dict[str, Any]] = []
    total = int(len(quarantine))
    if total:
        _require_columns(quarantine, ["table_name", "stage", "reasons"], "quarantine")
        q = quarantine[["table_name", "stage", "reasons"]].astype("string").fillna("")
        exploded = q.assign(reason=q["reasons"].str.split("; ")).explode("reason")
        exploded["reason"] = exploded["reason"].fillna("").str.strip()
        counts = (
            exploded.groupby(["table_name", "stage", "reason"], sort=True)
            .size()
            .reset_index(name="n")
            .sort_values(["n", "table_name", "stage", "reason"], ascending=[False, True, True, True], kind="mergesort")
        )
        reasons_more = max(0, len(counts) - QUARANTINE_REASON_LIMIT)
        for rec in counts.head(QUARANTINE_REASON_LIMIT).to_dict("records"):
            reasons.append(
                {
                    "table": rec["table_name"],
                    "stage": rec["stage"],
                    "reason": rec["reason"] or "(no reason given)",
                    "count": int(rec["n"]),
                    "count_text": format_count(int(rec["n"])),
                }
            )
        per_table = q.groupby(["table_name", "stage"], sort=True).size().reset_index(name="n")
        by_table = [
            {"table": r["table_name"], "stage": r["stage"], "count": int(r["n"])} for r in per_table.to_dict("records")
        ]
    return {
        "reconciliation": recon_rows,
        "unbalanced": unbalanced,
        "failed_checks": failed,
        "checks_run": int(len(checks)),
        "quarantine_total": total,
        "quarantine_by_table": by_table,
        "quarantine_reasons": reasons,
        "quarantine_reasons_more": reasons_more,
    }


# --------------------------------------------------------------------------- public


def _split_reasons(sections: list[dict[str, Any]]) -> str:
    """A reason every provisional indicator of the month shares (the month is open to
    revision) is said once for the whole report; each section keeps only its own part
    (cases within their follow-up) as ``state_note``. Returns the shared reason."""
    parts = {
        s["id"]: [p.strip() for p in s["current"]["state_reason"].split(";") if p.strip()]
        for s in sections
        if s["current"]["state"] == "provisional"
    }
    shared = set.intersection(*(set(p) for p in parts.values())) if parts else set()
    for s in sections:
        mine = [p for p in parts.get(s["id"], []) if p not in shared]
        s["current"]["state_note"] = "; ".join(mine)
    return "; ".join(p for p in next(iter(parts.values()), []) if p in shared)


def _provisional_summary(sections: list[dict[str, Any]], shared: str) -> dict[str, Any] | None:
    """When the month is provisional, what the committee can still act on: each
    indicator's latest final (graded) month, counted by status, and those off target."""
    if not any(s["current"]["state"] == "provisional" for s in sections):
        return None
    finals = [s for s in sections if s["last_final"] is not None]
    counts = {k: 0 for k in GRADED}
    for s in finals:
        counts[s["last_final"]["status"]] += 1
    months = sorted({s["last_final"]["period"] for s in finals})
    return {
        "reason": shared,
        "final_counts": counts,
        "final_months": [Month.parse(m).long_label for m in months],
        "final_attention": _attention(finals, "last_final"),
    }


def _attention(sections: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
    """Indicators off or near target in ``which`` result of their section (``current``,
    or ``last_final`` when the month is provisional), red first."""
    out = [
        {
            "id": s["id"],
            "anchor": s["anchor"],
            "title": s["title"],
            "status": s[which]["status"],
            "status_label": s[which]["status_label"],
            "value_text": s[which]["value_text"],
            "target_text": s["target_text"],
            "month": s[which].get("label", ""),
        }
        for s in sections
        if s[which]["status"] in ("red", "amber")
    ]
    return sorted(out, key=lambda a: 0 if a["status"] == "red" else 1)


def build_report_context(
    *,
    period: str,
    indicators: list[dict],
    results: pd.DataFrame,
    subjects: pd.DataFrame,
    reconciliation: pd.DataFrame,
    checks: pd.DataFrame,
    quarantine: pd.DataFrame,
    facilities: Mapping[str, str],
    wards: Mapping[str, str],
    generated_at: str,
    months: int = 12,
    data_as_of: str | None = None,
) -> dict:
    """Assemble the monthly committee report's content (pure; JSON-able; no HTML).

    ``data_as_of`` defaults to the last day of the reporting month: the report covers
    encounters that ended (and feedback received) up to then.
    """
    month = Month.parse(period)
    _require_columns(
        results,
        [c.name for c in INDICATOR_RESULTS.columns if c.name != "numerator_events" and c.name != "denominator_value"],
        "indicator results",
    )
    window = [m.label for m in month.window(months)]
    in_window = results[results["period"].astype("string").isin(window)]
    lookup = _lookup(in_window)
    known = {str(i["id"]) for i in indicators}
    unknown = sorted(set(in_window["indicator_id"].astype("string").dropna()) - known)
    if unknown:
        log.warning("results hold indicators without a definition, left out of the report: %s", unknown)

    domain_order = list(DOMAIN_LABELS) + sorted({str(i.get("domain")) for i in indicators} - set(DOMAIN_LABELS))
    ordered = sorted(indicators, key=lambda i: domain_order.index(str(i.get("domain"))))
    sections = [
        _indicator_section(ind, period, window, in_window, lookup, subjects, facilities, wards) for ind in ordered
    ]
    shared = _split_reasons(sections)

    domains = []
    for d in domain_order:
        rows = [
            {
                "id": s["id"],
                "anchor": s["anchor"],
                "title": s["title"],
                "owner": s["owner"],
                "unit": s["unit"],
                "value_text": (
                    s["current"]["number_text"] + ("%" if s["percent"] else "")
                    if s["current"]["value"] is not None
                    else "–"
                ),
                "unit_note": s["unit"].removeprefix("%").strip() if s["percent"] else s["unit"],
                "value_full": s["current"]["value_text"],
                "ci_text": s["current"]["ci_text"],
                "target_text": s["target_text"],
                "target_short": s["target_short"],
                "status": s["current"]["status"],
                "status_label": s["current"]["status_label"],
                "state_note": s["current"]["state_note"],
                "last_final": s["last_final"],
                "change": s["change"],
                "improvement_text": s["improvement_text"],
                "spark": [t["value"] for t in s["trend"]],
                "spark_status": [t["status"] for t in s["trend"]],
                "target": s["target"],
            }
            for s in sections
            if s["domain"] == d
        ]
        if rows:
            domains.append({"id": d, "label": DOMAIN_LABELS.get(d, _stratifier_label(d)), "rows": rows})

    rag = {k: 0 for k in STATUS_LABELS}
    for s in sections:
        rag[s["current"]["status"]] += 1
    start, end = month.start.isoformat(), month.last_day.isoformat()
    dq = _data_quality(reconciliation, checks, quarantine)
    attention = _attention(sections, "current")
    provisional = _provisional_summary(sections, shared)
    return {
        "title": "Monthly quality and safety report",
        "period": period,
        "period_label": month.long_label,
        "period_start": start,
        "period_end": end,
        "months": window,
        "month_labels": [Month.parse(p).short_label for p in window],
        "generated_at": generated_at,
        "data_as_of": data_as_of or end,
        "rag_counts": rag,
        "status_labels": dict(STATUS_LABELS),
        "indicator_count": len(sections),
        "attention": attention,
        "provisional": provisional,
        "domains": domains,
        "indicators": sections,
        "data_quality": dq,
        "facility_count": len({f for f in in_window["facility_id"].astype("string").dropna() if f != ALL_FACILITIES}),
    }


__all__ = [
    "CASE_LIMIT",
    "build_report_context",
    "change_vs_previous",
    "display_scale",
    "format_ci",
    "format_number",
    "format_value",
]
