"""FHIR R4 ``MeasureReport`` (summary) per indicator and period, for regulators, in one
``Bundle`` (type ``collection``) with the reporting ``Organization``.

Shape (checked against ``fhir.resources.R4B`` before anything is written), after the
Da Vinci DEQM summary MeasureReport profile (``meta.profile``): type ``summary``,
``measure`` a canonical, ``reporter`` a reference to the Organization in the Bundle,
``period``, ``improvementNotation``, group populations and score:

* ``measure``: the canonical Measure the indicator's YAML declares (``measure.url``, with
  ``|version`` when it declares one: an eCQM's MADiE canonical), else
  ``https://careqi.example.org/fhir/Measure/<id>``.
* ``group[0]``: the whole system (facility ``ALL``, unstratified) with its population counts
  and ``measureScore``; facilities are reported as a ``facility`` stratifier of that group
  (one stratum per facility id) rather than as extra groups, because in FHIR a group is a
  part of the measure definition, not a place. Each indicator stratifier (e.g. ``ward``)
  follows twice: system-wide, and crossed with facility (a two-component stratum), so
  the JSON holds exactly the cells of the CSV.
* Population codes come from ``measure-population``; continuous-variable measures use
  ``measure-population`` / ``measure-population-exclusion`` for the denominator columns
  and report no numerator, as FHIR prescribes for that scoring.
* Proportion scores are fractions (0..1); ratio scores are in the indicator's unit
  (e.g. per 1,000 patient-days) and continuous scores in theirs. The 95% CI rides on an
  extension with a ``valueRange``; what the score is made of rides on a
  ``measure-score-components`` extension (``numerator`` and ``denominator``: a
  proportion's performance counts, a ratio's events and exposure), and a continuous
  measure reports its observation count as the ``measure-observation`` population.
* Suppressed cells (see :mod:`suppression`) carry no value and a data-absent-reason
  extension with code ``masked``.
* ``date`` is the last day of the period, not the run time, and the Bundle has no
  timestamp: re-running the export for a period gives byte-identical files.
* ``status`` follows the result's state: ``complete`` when final, ``pending`` while the
  month is open to revision (or cases are within their deadline), ``error`` for an
  indicator that could not be computed (its counts then carry the data-absent-reason
  ``not-performed``: there is no figure, and certainly not an old one).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.measurereport import MeasureReport
from pydantic import ValidationError

from pipelines import outputs
from pipelines.compute.model import Indicator, Scoring
from pipelines.errors import ExportError
from pipelines.export.csv_export import controlled_rows, format_decimal
from pipelines.export.period import indicator_index
from pipelines.export.suppression import COUNTS, flag_column
from pipelines.periods import MeasurementPeriod
from pipelines.tables import (
    ALL_FACILITIES,
    FINAL,
    NOT_COMPUTED,
    OVERALL,
    PROVISIONAL,
)

log = logging.getLogger(__name__)

CAREQI_MEASURE_BASE = "https://careqi.example.org/fhir/Measure/"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
IMPROVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
CI_EXTENSION = "https://careqi.example.org/fhir/StructureDefinition/measure-score-ci95"
COMPONENTS_EXTENSION = "https://careqi.example.org/fhir/StructureDefinition/measure-score-components"
DEQM_SUMMARY = "http://hl7.org/fhir/us/davinci-deqm/StructureDefinition/summary-measurereport-deqm"
CAREQI_BASE = "https://careqi.example.org/fhir/"
MASKED = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}]}
NOT_PERFORMED = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "not-performed"}]}
#: Result state -> MeasureReport.status (complete | pending | error).
REPORT_STATUS = {FINAL: "complete", PROVISIONAL: "pending", NOT_COMPUTED: "error"}


def measure_canonical(indicator: Indicator) -> str:
    """The Measure this report is about: the declared canonical (``url|version``), else
    CareQI's own Measure for the indicator."""
    if indicator.measure_url:
        version = f"|{indicator.measure_version}" if indicator.measure_version else ""
        return indicator.measure_url + version
    return CAREQI_MEASURE_BASE + indicator.id


def fhir_id(text: str) -> str:
    """FHIR ids allow only ``[A-Za-z0-9-.]`` (max 64): indicator ids use underscores."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:64]


def _decimal(value: Any) -> float | None:
    text = format_decimal(value)
    return float(text) if text else None


def _populations(
    counts: Mapping[str, Any], indicator: Indicator, suppressed: Iterable[str], computed: bool = True
) -> list[dict[str, Any]]:
    """The group's populations, as the indicator's scoring reports them (continuous
    measures: measure population and its exclusion, stored in the denominator columns,
    and the observation count when the row carries one)."""
    hidden = set(suppressed)
    out = []
    reported = [(pop.code, pop.column) for pop in indicator.reported_populations]
    if indicator.scoring is Scoring.CONTINUOUS and "observations" in counts:
        reported.append(("measure-observation", "observations"))
    for code, col in reported:
        entry: dict[str, Any] = {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}}
        value = counts.get(col)
        if not computed:
            entry["_count"] = NOT_PERFORMED
        elif col in hidden:
            entry["_count"] = MASKED
        elif value is not None and value is not pd.NA:
            entry["count"] = int(value)
        out.append(entry)
    return out


def _score(
    score: Any, ci: tuple[Any, Any] | None, indicator: Indicator, masked: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(measureScore, extensions for the owning group/stratum)."""
    if masked:
        return dict(MASKED), []
    value = _decimal(score)
    if value is None:
        return None, []
    quantity: dict[str, Any] = {"value": value}
    unit = indicator.unit
    if indicator.scoring is not Scoring.PROPORTION and unit:
        quantity["unit"] = unit
    ext = []
    if ci is not None:
        low, high = _decimal(ci[0]), _decimal(ci[1])
        if low is not None and high is not None:
            ext.append({"url": CI_EXTENSION, "valueRange": {"low": {"value": low}, "high": {"value": high}}})
    return quantity, ext


def _components(counts: Mapping[str, Any], indicator: Indicator, hidden: set[str]) -> list[dict[str, Any]]:
    """The score-components extension (proportion: performance numerator and
    denominator; ratio: events and exposure); masked parts carry data-absent-reason."""
    parts: tuple[tuple[str, str, str | None], ...]
    if indicator.scoring is Scoring.PROPORTION:
        parts = (("numerator", "performance_numerator", None), ("denominator", "performance_denominator", None))
    elif indicator.scoring is Scoring.RATIO:
        per = re.search(r"per [\d,.]+ (.+)$", indicator.unit or "")
        parts = (("numerator", "events", None), ("denominator", "exposure", per.group(1) if per else "exposure"))
    else:
        return []
    if not all(col in counts for _, col, _ in parts):
        return []
    inner: list[dict[str, Any]] = []
    for name, col, unit in parts:
        value = counts.get(col)
        if col in hidden or (col == "exposure" and hidden & {"events", "denominator"}):
            inner.append({"url": name, **MASKED})
        elif value is not None and value is not pd.NA and not pd.isna(value):
            quantity: dict[str, Any] = {"value": _decimal(value) if unit else int(value)}
            if unit:
                quantity["unit"] = unit
            inner.append({"url": name, "valueQuantity": quantity})
    return [{"url": COMPONENTS_EXTENSION, "extension": inner}] if inner else []


def validate_measure_report(resource: Mapping[str, Any]) -> MeasureReport:
    """Parse with the FHIR R4 model; any structural error becomes an ExportError."""
    try:
        return MeasureReport.model_validate(dict(resource))
    except (ValidationError, ValueError, TypeError) as exc:
        raise ExportError(f"MeasureReport {resource.get('id')!r} is not valid FHIR R4: {exc}") from exc


def measure_report_from_counts(
    indicator: Indicator,
    period: str,
    counts: Mapping[str, Any],
    *,
    score: Any = None,
    ci: tuple[Any, Any] | None = None,
    suppressed: Iterable[str] = (),
    report_type: str = "summary",
    subject_reference: str | None = None,
    reporter: str = "CareQI",
    stratifiers: list[dict[str, Any]] | None = None,
    state: str = FINAL,
    reporter_reference: str | None = None,
) -> dict[str, Any]:
    """One validated MeasureReport dict for a single set of population counts.

    ``suppressed`` names counts (and/or ``measure_score``) to mask. ``report_type``
    ``individual`` with ``subject_reference`` gives a per-patient report (internal use;
    never for regulator export). ``state`` sets the report's status.
    """
    reporting = MeasurementPeriod.parse(period)
    start, end = reporting.start.isoformat(), reporting.last_day.isoformat()
    iid = indicator.id
    hidden = set(suppressed)
    computed = state != NOT_COMPUTED
    group: dict[str, Any] = {"population": _populations(counts, indicator, hidden, computed=computed)}
    measure_score, ext = _score(score, ci, indicator, "measure_score" in hidden)
    if computed:
        ext = ext + _components(counts, indicator, hidden)
    if ext:
        group["extension"] = ext
    if measure_score is not None:
        group["measureScore"] = measure_score
    if stratifiers:
        group["stratifier"] = stratifiers
    return report_envelope(
        indicator,
        report_id=f"{iid}-{period}",
        report_type=report_type,
        measure=measure_canonical(indicator),
        start=start,
        end=end,
        reporter=reporter,
        group=group,
        subject_reference=subject_reference,
        status=REPORT_STATUS[state],
        reporter_reference=reporter_reference,
        profile=DEQM_SUMMARY if report_type == "summary" and reporter_reference else None,
    )


def report_envelope(
    indicator: Indicator,
    *,
    report_id: str,
    report_type: str,
    measure: str,
    start: str,
    end: str,
    reporter: str,
    group: dict[str, Any],
    subject_reference: str | None = None,
    status: str = "complete",
    reporter_reference: str | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """The MeasureReport around one group, validated: shared by the regulator summaries and
    the individual/summary reports of the conformance runner. ``date`` is the period end,
    so re-runs give identical bytes."""
    who: dict[str, Any] = {"display": reporter}
    if reporter_reference:
        who = {"reference": reporter_reference, "display": reporter}
    resource: dict[str, Any] = {
        "resourceType": "MeasureReport",
        "id": fhir_id(report_id),
        **({"meta": {"profile": [profile]}} if profile else {}),
        "status": status,
        "type": report_type,
        "measure": measure,
        "date": end,
        "reporter": who,
        "period": {"start": start, "end": end},
        "improvementNotation": {"coding": [{"system": IMPROVEMENT_SYSTEM, "code": indicator.improvement.value}]},
        "group": [group],
    }
    if subject_reference:
        resource["subject"] = {"reference": subject_reference}
    validate_measure_report(resource)
    return resource


def _row_hidden(rec: Mapping[str, Any]) -> set[str]:
    hidden = {c for c in COUNTS if rec[flag_column(c)]}
    if rec[flag_column("measure_score")]:
        hidden.add("measure_score")
    return hidden


def _stratum(rec: Mapping[str, Any], indicator: Indicator, components: list[tuple[str, str]]) -> dict:
    hidden = _row_hidden(rec)
    stratum: dict[str, Any] = {}
    if len(components) == 1:
        stratum["value"] = {"text": components[0][1]}
    else:
        stratum["component"] = [{"code": {"text": k}, "value": {"text": v}} for k, v in components]
    stratum["population"] = _populations(rec, indicator, hidden)
    score, ext = _score(rec["measure_score"], (rec["ci_low"], rec["ci_high"]), indicator, "measure_score" in hidden)
    ext = ext + _components(rec, indicator, hidden)
    if ext:
        stratum["extension"] = ext
    if score is not None:
        stratum["measureScore"] = score
    return stratum


def _stratifiers(rows: pd.DataFrame, indicator: Indicator) -> list[dict[str, Any]]:
    recs = rows.to_dict("records")
    overall = [r for r in recs if (r["stratifier"], r["stratum"]) == OVERALL]
    out: list[dict[str, Any]] = []
    by_facility = [r for r in overall if r["facility_id"] != ALL_FACILITIES]
    if by_facility:
        out.append(
            {
                "code": [{"text": "facility"}],
                "stratum": [_stratum(r, indicator, [("facility", r["facility_id"])]) for r in by_facility],
            }
        )
    names = sorted({r["stratifier"] for r in recs if r["stratifier"] != OVERALL[0]})
    for name in names:
        system = [r for r in recs if r["stratifier"] == name and r["facility_id"] == ALL_FACILITIES]
        if system:
            out.append(
                {
                    "code": [{"text": name}],
                    "stratum": [_stratum(r, indicator, [(name, r["stratum"])]) for r in system],
                }
            )
        local = [r for r in recs if r["stratifier"] == name and r["facility_id"] != ALL_FACILITIES]
        if local:
            out.append(
                {
                    "code": [{"text": "facility"}, {"text": name}],
                    "stratum": [
                        _stratum(r, indicator, [("facility", r["facility_id"]), (name, r["stratum"])]) for r in local
                    ],
                }
            )
    return out


def summary_measure_report(
    indicator: Indicator,
    period: str,
    rows: pd.DataFrame,
    *,
    reporter: str = "CareQI",
    reporter_reference: str | None = None,
) -> dict[str, Any]:
    """The summary report for one indicator from its suppressed period rows."""
    system = rows[(rows["facility_id"] == ALL_FACILITIES) & (rows["stratifier"] == OVERALL[0])
                  & (rows["stratum"] == OVERALL[1])]  # fmt: skip
    if len(system) != 1:
        raise ExportError(
            f"indicator {indicator.id}: no system-wide (facility ALL, overall) result for {period}; "
            "the compute stage must emit one row per indicator and month, with zero counts if need be"
        )
    rec = system.iloc[0].to_dict()
    state = str(rec.get("state") or FINAL) if rec.get("state") is not pd.NA else FINAL
    return measure_report_from_counts(
        indicator,
        period,
        rec,
        score=rec["measure_score"],
        ci=(rec["ci_low"], rec["ci_high"]),
        suppressed=_row_hidden(rec),
        reporter=reporter,
        stratifiers=_stratifiers(rows, indicator),
        state=state,
        reporter_reference=reporter_reference,
    )


def organisation_resource(reporter: str) -> dict[str, Any]:
    """The reporting Organization the MeasureReports reference (name only: no address,
    no contact, nothing about a person)."""
    return {"resourceType": "Organization", "id": fhir_id(reporter.lower()) or "reporter", "active": True,
            "name": reporter}  # fmt: skip


def bundle_filename(period: str) -> str:
    return f"careqi-measurereports-{MeasurementPeriod.parse(period).label}.bundle.json"


def measure_report_bundle(
    results: pd.DataFrame,
    indicators: Sequence[Indicator],
    period: str,
    *,
    small_number_threshold: int = 11,
    rounding: int = 0,
    reporter: str = "CareQI",
    controlled: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The period's Bundle: the reporting Organization, then one summary MeasureReport
    per indicator (sorted by id), every one validated, the Bundle too."""
    index = indicator_index(indicators)
    label = MeasurementPeriod.parse(period).label
    frame = (
        controlled
        if controlled is not None
        else controlled_rows(results, indicators, label, small_number_threshold, rounding)
    )
    org = organisation_resource(reporter)
    ref = f"Organization/{org['id']}"
    entries: list[dict[str, Any]] = [{"fullUrl": CAREQI_BASE + ref, "resource": org}]
    for iid in sorted(index):
        rows = frame[frame["indicator_id"] == iid]
        resource = summary_measure_report(index[iid], label, rows, reporter=reporter, reporter_reference=ref)
        entries.append({"fullUrl": f"{CAREQI_BASE}MeasureReport/{resource['id']}", "resource": resource})
    bundle = {
        "resourceType": "Bundle",
        "id": fhir_id(f"careqi-{label}"),
        "identifier": {"system": CAREQI_BASE + "export-package", "value": label},
        "type": "collection",
        "entry": entries,
    }
    try:
        Bundle.model_validate(bundle)
    except (ValidationError, ValueError, TypeError) as exc:
        raise ExportError(f"the MeasureReport Bundle for {label} is not valid FHIR R4: {exc}") from exc
    return bundle


def export_measure_reports(
    results: pd.DataFrame,
    indicators: Sequence[Indicator],
    period: str,
    out_dir: Path,
    *,
    small_number_threshold: int = 11,
    rounding: int = 0,
    reporter: str = "CareQI",
    controlled: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ``careqi-measurereports-<period>.bundle.json``: validated first, so a failure
    leaves nothing behind. Counts are suppressed and rounded exactly as in the CSV."""
    bundle = measure_report_bundle(
        results,
        indicators,
        period,
        small_number_threshold=small_number_threshold,
        rounding=rounding,
        reporter=reporter,
        controlled=controlled,
    )
    text = Bundle.model_validate(bundle).model_dump_json(indent=2, exclude_none=True, by_alias=True) + "\n"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = outputs.write_file(out_dir / bundle_filename(period), text.encode("utf-8"))
    log.info("wrote %d MeasureReports for %s to %s", len(bundle["entry"]) - 1, period, path)
    return [path]


__all__ = [
    "DEQM_SUMMARY",
    "bundle_filename",
    "export_measure_reports",
    "measure_report_bundle",
    "organisation_resource",
    "measure_canonical",
    "measure_report_from_counts",
    "summary_measure_report",
    "validate_measure_report",
]
