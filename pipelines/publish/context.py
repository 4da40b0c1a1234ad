"""Everything the monthly committee report shows, as a plain JSON-able dict.

The report is read by a hospital quality committee, so the context is organised the way
an NHS integrated performance report is: a scorecard first (every indicator, grouped by
domain, with value, uncertainty, target, RAG status and direction of travel), then one
section per indicator (:mod:`.sections`), then the data-quality evidence that tells the
committee how far to trust the figures (:mod:`.data_quality`).

Nothing here produces HTML: values are pre-formatted strings and numbers
(:mod:`.formatting`), so the same context can feed a template, a JSON API or a test.
Charts are drawn later from the ``trend`` series kept in each indicator section.

The report is a sequence of parts (``ctx["parts"]``), each rendered by
``reports/partials/<part>.html.j2``. A new part is a pure function of
:class:`ReportData` registered in :data:`EXTRA_PARTS` (its content lands in
``ctx[<part>]``) and its template; it appears after the indicator sections, before the
data-quality appendix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from pipelines.compute.model import Domain, Indicator
from pipelines.organisation import Organisation
from pipelines.periods import Month
from pipelines.publish.accountability import executive_summary, register_rows
from pipelines.publish.comparisons import funnel_view, hierarchy_rows, levels_present
from pipelines.publish.data_quality import check_changes, data_quality, publication_gate, require_columns
from pipelines.publish.experience import FeedbackData, build_patient_experience
from pipelines.publish.formatting import GRADED, STATUS_LABELS, format_short, format_value, status_label
from pipelines.publish.i18n import N_, _, current, month_long, month_short
from pipelines.publish.risk_view import risk_view
from pipelines.publish.sections import indicator_section, result_lookup, row_summary
from pipelines.publish.spc_view import spc_view
from pipelines.tables import ALL_FACILITIES, INDICATOR_RESULTS, OVERALL

log = logging.getLogger(__name__)

#: How the scorecard names the two sides of quality its domains fall in (Domain.quality).
QUALITY_LABELS = {
    "technical": N_("Technical quality: what care achieved"),
    "functional": N_("Functional quality: how care was delivered"),
}


@dataclass(frozen=True)
class RiskInputs:
    """An outcome indicator's patients with their case-mix factors: the reference months
    the model is fitted on and the reporting month it is applied to (scored subjects,
    :func:`pipelines.publish.risk_view.scored`)."""

    reference: pd.DataFrame
    current: pd.DataFrame
    months: list[str]


@dataclass(frozen=True)
class CommitteeInputs:
    """What the committee's own records and the run add to the figures: approved SPC
    change points, the action register, the organisation tree, the risk models' data,
    earlier check results (the last run of this period, the previous month), the tables
    the indicators read (the publication gate's scope) and the run's provenance."""

    phases: pd.DataFrame = field(default_factory=pd.DataFrame)
    actions: pd.DataFrame = field(default_factory=pd.DataFrame)
    organisation: Organisation = field(default_factory=Organisation)
    risk: Mapping[str, RiskInputs] = field(default_factory=dict)
    checks_last_run: pd.DataFrame | None = None
    checks_previous_month: pd.DataFrame | None = None
    feeding_tables: frozenset[str] = frozenset()
    gate_mode: str = "feeding"
    gate_max_pct: float = 5.0
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportData:
    """What the report is built from: the month, its trend window, the indicators shown
    and what the report stage read for them (results of the whole window)."""

    period: str
    window: list[str]
    indicators: Sequence[Indicator]
    results: pd.DataFrame
    subjects: pd.DataFrame
    reconciliation: pd.DataFrame
    checks: pd.DataFrame
    quarantine: pd.DataFrame
    facilities: Mapping[str, str]
    wards: Mapping[str, str]
    #: Survey returns, the complaints register, patient-days and comment labels (None: the
    #: patient-experience part says there is nothing to show).
    feedback: FeedbackData | None = None


def patient_experience(data: ReportData) -> dict[str, Any]:
    """The patient-experience part (:mod:`.experience`), with the responsiveness
    indicators' figures beside the register."""
    if data.feedback is None:
        return {"has_data": False}
    lookup = result_lookup(data.results)
    feedback = data.feedback
    if not len(feedback.patient_days):
        feedback = replace(feedback, patient_days=occupied_bed_days(data))
    rows = []
    for ind in data.indicators:
        if ind.domain is not Domain.RESPONSIVENESS:
            continue
        now = row_summary(lookup.get((ind.id, data.period, ALL_FACILITIES, *OVERALL)), ind)
        rows.append(
            {
                "title": ind.title,
                "value_text": now["value_text"],
                "ci_text": now["ci_text"],
                "target": format_value(ind.target, ind),
                "status": now["status"],
                "status_label": now["status_label"],
            }
        )
    return build_patient_experience(
        data.period, data.window, feedback, data.facilities, data.wards, rows, backlog_counts(data, lookup)
    )


def backlog_counts(data: ReportData, lookup: Mapping[Any, dict[str, Any]]) -> tuple[int, int] | None:
    """(open, overdue) at month end from the backlog indicator: the complaint indicator whose
    initial population is the complaints open when the period ended."""
    from pipelines.compute.model import Basis, OpenAtPeriodEnd, Population, criterion_parts

    for ind in data.indicators:
        ip = ind.populations.get(Population.INITIAL_POPULATION)
        if (
            ind.basis is Basis.COMPLAINT
            and ip is not None
            and any(isinstance(c, OpenAtPeriodEnd) for c in criterion_parts(ip.criteria))
        ):
            row = lookup.get((ind.id, data.period, ALL_FACILITIES, *OVERALL))
            if row is None or pd.isna(row.get("denominator")):
                return None
            return int(row["denominator"]), int(row["numerator"])
    return None


def occupied_bed_days(data: ReportData) -> pd.DataFrame:
    """The month's occupied bed days per facility, as the bed-day indicators count them:
    the exposure (``denominator_value``) of a ratio indicator on encounters whose exposure
    is ``days_in_period``. Counted once, by that indicator, never again here."""
    from pipelines.compute.model import Basis, DeriveDaysInPeriod, Scoring

    for ind in data.indicators:
        derived = ind.derive.get(ind.denominator_value or "")
        if ind.scoring is Scoring.RATIO and ind.basis is Basis.ENCOUNTER and isinstance(derived, DeriveDaysInPeriod):
            r = data.results
            rows = r[(r["indicator_id"] == ind.id) & (r["period"] == data.period) & (r["stratifier"] == OVERALL[0])
                     & (r["facility_id"] != ALL_FACILITIES)]  # fmt: skip
            return pd.DataFrame(
                {
                    "facility_id": rows["facility_id"].astype("string"),
                    "patient_days": rows["denominator_value"].astype("float64").fillna(0.0),
                }  # fmt: skip
            )
    return pd.DataFrame({"facility_id": pd.Series(dtype="string"), "patient_days": pd.Series(dtype="float64")})


#: A part beyond the built-in ones: its name (context key and template) and its builder.
Part = tuple[str, Callable[[ReportData], dict[str, Any]]]
#: Extra parts, in reading order.
EXTRA_PARTS: list[Part] = [("patient_experience", patient_experience)]
#: The built-in parts: before the extra ones, and the data-quality appendix after them.
OPENING_PARTS = ("executive", "scorecard", "indicators")
CLOSING_PARTS = ("actions", "data_quality", "risk_appendix")


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
        "final_months": [month_long(Month.parse(m).start) for m in months],
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


def unit_names(facilities: Mapping[str, str], wards: Mapping[str, str], org: Organisation) -> dict[str, str]:
    """Every unit's display name: the organisation tree's, overridden by the warehouse's
    facility and ward names (the source systems')."""
    return {**org.names, **wards, **facilities}


def _committee_views(
    sections: list[dict[str, Any]],
    by_id: Mapping[str, Indicator],
    period: str,
    window: list[str],
    in_window: pd.DataFrame,
    lookup: Mapping[Any, dict[str, Any]],
    subjects: pd.DataFrame,
    names: Mapping[str, str],
    committee: CommitteeInputs,
    actions: list[dict[str, Any]],
) -> None:
    """Add to each section its SPC chart and icons, funnels, drill-down, risk-adjusted
    O/E and actions (in place: the sections are this function's own)."""
    now = in_window[in_window["period"].astype("string") == period]
    for s in sections:
        ind = by_id[s["id"]]
        s["spc"] = spc_view(ind, window, lookup, committee.phases, s["target"])
        mine = now[now["indicator_id"].astype("string") == ind.id]
        s["funnels"] = [f for f in (funnel_view(ind, mine, names, level=lv) for lv in ("facility", "ward")) if f]
        s["hierarchy"] = hierarchy_rows(ind, subjects, period, committee.organisation)
        s["hierarchy_levels"] = levels_present(s["hierarchy"])
        risk = committee.risk.get(ind.id)
        s["risk"] = risk_view(ind, risk.reference, risk.current, names, risk.months) if risk is not None else None
        s["actions"] = [a for a in actions if a["indicator_id"] == ind.id]
        # The final month before the latest graded one (the current month when final, else
        # its last final month): "back on target" compares graded months only.
        finals = [t for t in s["trend"] if t["state"] == "final"]
        s["previous_status"] = finals[-2]["status"] if len(finals) > 1 else None


def build_report_context(
    *,
    period: str,
    indicators: Sequence[Indicator],
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
    feedback: FeedbackData | None = None,
    committee: CommitteeInputs | None = None,
) -> dict:
    """Assemble the monthly committee report's content (pure; JSON-able; no HTML), in
    the active report language (:func:`pipelines.publish.i18n.using`).

    ``data_as_of`` defaults to the last day of the reporting month: the report covers
    encounters that ended (and feedback received) up to then.
    """
    committee = committee or CommitteeInputs()
    month = Month.parse(period)
    require_columns(
        results,
        [c.name for c in INDICATOR_RESULTS.columns if c.name != "numerator_events" and c.name != "denominator_value"],
        "indicator results",
    )
    window = [m.label for m in month.window(months)]
    in_window = results[results["period"].astype("string").isin(window)]
    lookup = result_lookup(in_window)
    known = {i.id for i in indicators}
    unknown = sorted(set(in_window["indicator_id"].astype("string").dropna()) - known)
    if unknown:
        log.warning("results hold indicators without a definition, left out of the report: %s", unknown)

    domain_order = list(Domain)
    ordered = sorted(indicators, key=lambda i: domain_order.index(i.domain))
    sections = [
        indicator_section(ind, period, window, in_window, lookup, subjects, facilities, wards) for ind in ordered
    ]
    shared = _split_reasons(sections)
    by_id = {i.id: i for i in indicators}
    names = unit_names(facilities, wards, committee.organisation)
    start, end = month.start.isoformat(), month.last_day.isoformat()
    as_of = data_as_of or end
    actions = register_rows(committee.actions, pd.Timestamp(as_of).date(), names)
    _committee_views(sections, by_id, period, window, in_window, lookup, subjects, names, committee, actions)

    domains = []
    for d in domain_order:
        rows = [
            {
                "id": s["id"],
                "anchor": s["anchor"],
                "title": s["title"],
                "owner": s["owner"],
                "unit": s["unit"],
                "value_text": format_short(s["current"]["value"], by_id[s["id"]]),
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
                "variation": s["spc"]["variation"],
                "variation_label": s["spc"]["variation_label"],
                "assurance": s["spc"]["assurance"],
                "assurance_label": s["spc"]["assurance_label"],
                "open_actions": sum(1 for a in s["actions"] if not a["closed"]),
                "overdue_actions": sum(1 for a in s["actions"] if a["overdue"]),
            }
            for s in sections
            if s["domain"] == d.value
        ]
        if rows:
            domains.append({"id": d.value, "label": _(d.label), "quality": d.quality,
                            "quality_label": _(QUALITY_LABELS[d.quality]), "rows": rows,
                            "sections": [r["id"] for r in rows]})  # fmt: skip

    rag = {k: 0 for k in STATUS_LABELS}
    for s in sections:
        rag[s["current"]["status"]] += 1
    dq = data_quality(reconciliation, checks, quarantine)
    dq["changes_last_run"] = check_changes(checks, committee.checks_last_run)
    dq["changes_previous_month"] = check_changes(checks, committee.checks_previous_month)
    dq["previous_month"] = month_long(Month.parse(month.shift(-1).label).start)
    gate = publication_gate(checks, set(committee.feeding_tables), committee.gate_mode, committee.gate_max_pct)
    attention = _attention(sections, "current")
    provisional = _provisional_summary(sections, shared)
    data = ReportData(
        period, window, ordered, in_window, subjects, reconciliation, checks, quarantine, facilities, wards, feedback
    )
    extra = {name: build(data) for name, build in EXTRA_PARTS}
    lang = current()
    return {
        "title": _("Monthly quality and safety report"),
        "language": lang.code,
        "html_lang": lang.html_lang,
        "period": period,
        "period_label": month_long(month.start),
        "period_start": start,
        "period_end": end,
        "months": window,
        "month_labels": [month_short(Month.parse(p).start) for p in window],
        "generated_at": generated_at,
        "data_as_of": as_of,
        "rag_counts": rag,
        "status_labels": {k: status_label(k) for k in STATUS_LABELS},
        "indicator_count": len(sections),
        "attention": attention,
        "provisional": provisional,
        "domains": domains,
        "indicators": sections,
        "sections_by_id": {s["id"]: s for s in sections},
        "executive": executive_summary(sections, actions),
        "actions": actions,
        "gate": gate,
        "organisation": {"system": committee.organisation.system_name},
        "risk_models": [s for s in sections if s["risk"] and not s["risk"]["error"]],
        "provenance": {
            "run_id": "",
            "code_version": "",
            "valuesets": [],
            "checks_run": int(len(checks)),
            "checks_passed": int((checks["status"].astype("string") == "pass").sum()) if len(checks) else 0,
            **committee.provenance,
        },
        "data_quality": dq,
        "facility_count": len({f for f in in_window["facility_id"].astype("string").dropna() if f != ALL_FACILITIES}),
        "parts": [*OPENING_PARTS, *extra, *CLOSING_PARTS],
        **extra,
    }


__all__ = [
    "CLOSING_PARTS",
    "CommitteeInputs",
    "RiskInputs",
    "EXTRA_PARTS",
    "OPENING_PARTS",
    "Part",
    "ReportData",
    "build_report_context",
]
