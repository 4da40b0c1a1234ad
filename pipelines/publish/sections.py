"""One report section per indicator: its definition, trend, counts, breakdowns by
facility and stratifier, and, when off target, the cases behind the number.

Values are display-ready (:mod:`pipelines.publish.formatting`); which cases to list is
decided in :mod:`pipelines.compute.cases`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipelines.compute.cases import case_selection
from pipelines.compute.model import Improvement, Indicator, Scoring
from pipelines.errors import CareQIError
from pipelines.periods import Month
from pipelines.publish.formatting import (
    change_vs_previous,
    display_scale,
    format_ci,
    format_count,
    format_number,
    format_short,
    format_value,
    improvement_text,
    integer,
    is_percent,
    label_of,
    num,
    reason_text,
    status_label,
    status_of,
    text,
)
from pipelines.publish.i18n import _, month_short
from pipelines.tables import ALL_FACILITIES, OVERALL, POPULATIONS

#: Drill-down lists stop here; the rest is counted ("and N more").
CASE_LIMIT = 50
#: (indicator, period, facility, stratifier, stratum) -> one results row.
ResultKey = tuple[str, str, str, str, str]


def result_lookup(frame: pd.DataFrame) -> dict[ResultKey, dict[str, Any]]:
    """Results rows by key; a key held twice is an inconsistent results table."""
    keys = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
    out: dict[ResultKey, dict[str, Any]] = {}
    for rec in frame.to_dict("records"):
        key: ResultKey = (text(rec[keys[0]]), text(rec[keys[1]]), text(rec[keys[2]]), text(rec[keys[3]]),
                          text(rec[keys[4]]))  # fmt: skip
        if key in out:
            raise CareQIError(f"indicator results hold more than one row for {key}")
        out[key] = rec
    return out


def row_summary(row: Mapping[str, Any] | None, indicator: Indicator) -> dict[str, Any]:
    """One results row as display values (a missing row reads as "no data")."""
    if row is None:
        row = {}
    score, low, high = num(row.get("measure_score")), num(row.get("ci_low")), num(row.get("ci_high"))
    counts = {p: integer(row.get(p)) for p in POPULATIONS}
    out: dict[str, Any] = {
        "value": score,
        "value_text": format_value(score, indicator),
        "number_text": format_number(score, indicator),
        "ci_low": low,
        "ci_high": high,
        "ci_text": format_ci(low, high, indicator),
        "status": status_of(row.get("status"), row.get("state")),
        "state": text(row.get("state")) or ("final" if row else ""),
        "state_reason": reason_text(text(row.get("state_reason"))),
        "counts": counts,
        "numerator_events": integer(row.get("numerator_events")),
        "denominator_value": num(row.get("denominator_value")),
    }
    out["status_label"] = status_label(out["status"])
    if indicator.scoring is Scoring.RATIO:
        out["numerator_text"] = format_count(out["numerator_events"])
        dv = out["denominator_value"]
        out["denominator_text"] = format_count(dv, 0 if dv is None or float(dv).is_integer() else 1)
    else:
        out["numerator_text"] = format_count(counts["numerator"])
        out["denominator_text"] = format_count(counts["denominator"])
    return out


def _numerator_labels(indicator: Indicator) -> tuple[str, str]:
    if indicator.scoring is Scoring.RATIO:
        return _("Events"), _("Exposure")
    if indicator.scoring is Scoring.CONTINUOUS:
        return "", _("Subjects")
    return _("Numerator"), _("Denominator")


def _cases(
    subjects: pd.DataFrame,
    indicator: Indicator,
    period: str,
    target: float | None,
    facilities: Mapping[str, str],
    wards: Mapping[str, str],
) -> dict[str, Any]:
    """Where the cases behind the status are, counted by facility and ward. No record is
    named: the report is circulated; the cases themselves, under pseudonyms, are in the
    restricted appendix (:mod:`.appendix`)."""
    cases = case_selection(subjects, indicator, period, target)
    rows: list[dict[str, Any]] = []
    if len(cases.rows):
        keys = cases.rows.assign(
            facility_id=cases.rows["facility_id"].astype("string").fillna(""),
            ward_id=cases.rows["ward_id"].astype("string").fillna(""),
        )
        counts = keys.groupby(["facility_id", "ward_id"], sort=False).size().reset_index(name="n")
        for rec in counts.to_dict("records"):
            fac, ward = text(rec["facility_id"]), text(rec["ward_id"])
            rows.append({"facility": facilities.get(fac, fac), "ward": wards.get(ward, ward) or "–",
                         "count": int(rec["n"]), "count_text": format_count(int(rec["n"]))})  # fmt: skip
        rows.sort(key=lambda r: (-r["count"], r["facility"].casefold(), r["ward"].casefold()))
    total = int(len(cases.rows))
    return {
        "rule": _(cases.rule),
        "rows": rows[:CASE_LIMIT],
        "total": total,
        "more": max(0, len(rows) - CASE_LIMIT),
    }


def _stratum_label(stratifier: str, stratum: str, facilities: Mapping[str, str], wards: Mapping[str, str]) -> str:
    if stratifier in ("ward", "ward_id"):
        return wards.get(stratum, stratum)
    if stratifier in ("facility", "facility_id"):
        return facilities.get(stratum, stratum)
    return stratum


def _trend(indicator: Indicator, window: list[str], lookup: Mapping[ResultKey, dict[str, Any]]) -> list[dict[str, Any]]:
    trend = []
    for p in window:
        row = lookup.get((indicator.id, p, ALL_FACILITIES, *OVERALL))
        s = row_summary(row, indicator)
        trend.append(
            {
                "period": p,
                "label": month_short(Month.parse(p).start),
                "value": s["value"],
                "ci_low": s["ci_low"],
                "ci_high": s["ci_high"],
                "status": s["status"] if row is not None else "grey",
                "state": s["state"],
                "target": num(row.get("target")) if row is not None else None,
            }
        )
    return trend


def _facility_rows(indicator: Indicator, now: pd.DataFrame, facilities: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    overall = now[(now["stratifier"].astype("string") == OVERALL[0]) & (now["stratum"].astype("string") == OVERALL[1])]
    for rec in overall.to_dict("records"):
        fid = text(rec["facility_id"])
        if fid != ALL_FACILITIES:
            rows.append({"facility_id": fid, "facility": facilities.get(fid, fid), **row_summary(rec, indicator)})
    return sorted(rows, key=lambda r: (r["facility"].casefold(), r["facility_id"]))


def _stratifier_groups(
    indicator: Indicator, now: pd.DataFrame, facilities: Mapping[str, str], wards: Mapping[str, str]
) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    strat = now[
        (now["facility_id"].astype("string") == ALL_FACILITIES) & (now["stratifier"].astype("string") != OVERALL[0])
    ]
    for rec in strat.to_dict("records"):
        name, stratum = text(rec["stratifier"]), text(rec["stratum"])
        groups.setdefault(name, []).append(
            {
                "stratum": stratum,
                "label": _stratum_label(name, stratum, facilities, wards),
                **row_summary(rec, indicator),
            }
        )
    return [
        {
            "name": name,
            "label": label_of(name),
            "rows": sorted(rows, key=lambda r: (r["label"].casefold(), r["stratum"])),
        }
        for name, rows in sorted(groups.items())
    ]


def indicator_section(
    indicator: Indicator,
    period: str,
    window: list[str],
    results: pd.DataFrame,
    lookup: Mapping[ResultKey, dict[str, Any]],
    subjects: pd.DataFrame,
    facilities: Mapping[str, str],
    wards: Mapping[str, str],
) -> dict[str, Any]:
    """The section of one indicator for ``period`` (``window``: the months of its trend)."""
    iid = indicator.id
    trend = _trend(indicator, window, lookup)
    current_row = lookup.get((iid, period, ALL_FACILITIES, *OVERALL))
    current = row_summary(current_row, indicator)
    target = num(current_row.get("target")) if current_row is not None else None
    if target is None:
        target = indicator.target
    # Month-on-month change only between two final months: a provisional figure is not
    # comparable with a final one (it may still grow as later batches arrive).
    comparable = len(trend) > 1 and trend[-1]["state"] == "final" and trend[-2]["state"] == "final"
    previous = trend[-2]["value"] if comparable else None
    last_final = next((t for t in reversed(trend) if t["state"] == "final"), None)

    now = results[(results["indicator_id"].astype("string") == iid) & (results["period"].astype("string") == period)]
    populations = [
        {
            "name": p.value,
            "label": _(p.label),
            "definition": _(indicator.definition(p)),
            "count": current["counts"][p.column],
            "count_text": format_count(current["counts"][p.column]),
        }
        for p in indicator.reported_populations
        if p in indicator.populations or (current["counts"][p.column] or 0) > 0
    ]
    extra_counts = []
    if indicator.scoring is Scoring.RATIO:
        extra_counts = [
            {"label": _("Events (ratio numerator)"), "text": current["numerator_text"]},
            {"label": _("Exposure (ratio denominator)"), "text": current["denominator_text"]},
        ]

    status = current["status"] if current_row is not None else "grey"
    num_label, den_label = _numerator_labels(indicator)
    section: dict[str, Any] = {
        "id": iid,
        "anchor": "ind-" + re.sub(r"[^A-Za-z0-9_-]", "-", iid),
        "title": _(indicator.title) or iid,
        "description": _(indicator.description),
        "domain": indicator.domain.value,
        "domain_label": _(indicator.domain.label),
        "owner": _(indicator.owner),
        "scoring": indicator.scoring.value,
        "basis": indicator.basis.value,
        "aggregate": indicator.aggregate.value if indicator.aggregate else "",
        "improvement": indicator.improvement.value,
        "improvement_text": improvement_text(indicator),
        "unit": _(indicator.unit),
        "cms_id": indicator.cms_id or "",
        "scale": display_scale(indicator),
        "percent": is_percent(indicator),
        "target": target,
        "target_text": format_value(target, indicator),
        "target_short": format_short(target, indicator),
        "current": {**current, "status": status, "status_label": status_label(status)},
        "previous_value": previous,
        "change": change_vs_previous(current["value"] if comparable else None, previous, indicator),
        "last_final": (
            None
            if last_final is None
            else {
                "period": last_final["period"],
                "label": last_final["label"],
                "status": last_final["status"],
                "status_label": status_label(last_final["status"]),
                "value_text": format_value(last_final["value"], indicator),
            }
        ),
        "trend": trend,
        "populations": populations,
        "extra_counts": extra_counts,
        "numerator_label": num_label,
        "denominator_label": den_label,
        "facilities": _facility_rows(indicator, now, facilities),
        "stratifiers": _stratifier_groups(indicator, now, facilities, wards),
        "stratifiers_defined": list(indicator.stratifiers),
        "cases": None,
        "follow_up": _(indicator.follow_up.sentence) if indicator.follow_up else "",
    }
    if needs_review(status, current["value"], target, indicator):
        section["cases"] = _cases(subjects, indicator, period, target, facilities, wards)
    return section


def needs_review(status: str, value: float | None, target: float | None, indicator: Indicator) -> bool:
    """Whether the month's cases go before reviewers: off or near target, or, in a month
    still provisional (not graded; with a revision window the newest month always is),
    a value already on the wrong side of the target."""
    if status in ("red", "amber"):
        return True
    if status != "provisional" or value is None or target is None:
        return False
    return value > target if indicator.improvement is Improvement.DECREASE else value < target


__all__ = ["CASE_LIMIT", "ResultKey", "indicator_section", "needs_review", "result_lookup", "row_summary"]
