"""A conformance run as text (for people), JSON (for CI) and FHIR MeasureReports (for diffing).

The text shows totals per population first (does the measure add up?), then each
mismatching case with every compared population as ``expected/computed``, so the
population that went wrong is visible without opening the Bundle. Case folders are
MADiE test-patient ids (synthetic), which is why they may be shown here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.conformance.runner import CaseResult, ConformanceRun
from pipelines.errors import ExportError


def _populations(result: CaseResult) -> dict[str, dict[str, int]]:
    return {
        code: {"expected": int(e), "computed": int(result.computed.get(code, 0))} for code, e in result.expected.items()
    }


def _case_json(result: CaseResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "case": result.case,
        "title": result.title,
        "series": result.series,
        "populations": _populations(result),
        "differing": result.differing,
    }
    if result.quarantined:
        out["quarantined_records"] = result.quarantined
    if result.possible_cause:
        out["possible_cause"] = result.possible_cause
    return out


def to_json(run: ConformanceRun) -> dict[str, Any]:
    """One JSON-able object: the contract of ``careqi conformance --json``."""
    return {
        "measure": run.deck.measure_name,
        "measure_url": run.deck.measure_url,
        "cms_id": run.deck.cms_id,
        "indicator": run.indicator.id,
        "periods": sorted(set(_periods(run))),
        "cases": run.cases,
        "matched": len(run.matched),
        "mismatches": [_case_json(r) for r in run.mismatches],
        "totals": run.totals(),
        "unmatchable": [
            {"case": r.case, "title": r.title, "missing_valuesets": run.referenced_missing} for r in run.unmatchable
        ],
        "invalid": [{"case": p.case, "title": p.title, "reason": p.reason} for p in run.problems],
        "missing_valuesets": run.missing_valuesets,
        "notes": run.notes,
        "rounds": run.rounds,
        "seconds": round(run.seconds, 3),
    }


def _periods(run: ConformanceRun) -> list[str]:
    return [c.period for c in run.deck.cases]


def render_text(run: ConformanceRun) -> str:
    deck = run.deck
    lines = [
        f"{deck.measure_name} ({deck.measure_title} {deck.measure_version or ''}".rstrip()
        + f") via indicator {run.indicator.id}, period {', '.join(sorted(set(_periods(run)))) or '-'}",
        f"{run.cases} cases: {len(run.matched)} match, {len(run.mismatches)} mismatch"
        + (f", {len(run.problems)} unreadable" if run.problems else "")
        + f" ({run.rounds} evaluation round(s), {run.seconds:.2f}s)",
        "",
    ]
    totals = run.totals()
    width = max([len(c) for c in totals] + [len("population")])
    lines.append(f"  {'population':<{width}}  {'expected':>8}  {'computed':>8}")
    for code, t in totals.items():
        flag = "" if t["expected"] == t["computed"] else "  <-"
        lines.append(f"  {code:<{width}}  {t['expected']:>8}  {t['computed']:>8}{flag}")
    if run.missing_valuesets:
        used = set(run.referenced_missing)
        lines += [
            "",
            "value sets not supplied (treated as empty): "
            + ", ".join(f"{oid}{' (used by the indicator)' if oid in used else ''}" for oid in run.missing_valuesets),
        ]
    for note in run.notes:
        lines.append(f"note: {note}")
    if run.mismatches:
        lines += ["", "mismatching cases (expected/computed):"]
        for r in run.mismatches:
            lines.append(f"  {r.case.split('/', 1)[0]}  {r.title}")
            pops = "  ".join(
                f"{code} {v['expected']}/{v['computed']}{'*' if code in r.differing else ''}"
                for code, v in _populations(r).items()
            )
            lines.append(f"      {pops}")
            if r.quarantined:
                lines.append(f"      {r.quarantined} record(s) quarantined at extract")
            if r.possible_cause:
                lines.append(f"      {r.possible_cause}")
    if run.problems:
        lines += ["", "unreadable cases:"]
        lines += [f"  {p.case}: {p.reason}" for p in run.problems]
    lines += ["", "PASS: every case matches" if run.ok else "FAIL"]
    return "\n".join(lines)


def write_measure_reports(run: ConformanceRun, out_dir: Path) -> list[Path]:
    """The computed individual MeasureReports (one per case) and the summary, under ``out_dir``."""
    from pipelines.export.individual import SubjectCounts, export_individual_reports

    folders = [r.case.split("/", 1)[0] for r in run.results]
    unique = len(set(folders)) == len(folders)
    subjects = [
        SubjectCounts(
            name=folder if unique else r.case.removesuffix(".json").replace("/", "__"),
            subject_reference=f"Patient/{r.patient_id}" if r.patient_id else None,
            counts={code: r.computed.get(code, 0) for code in r.expected},
        )
        for folder, r in zip(folders, run.results, strict=True)
    ]
    spans = sorted({(c.period_start, c.period_end) for c in run.deck.cases})
    if len(spans) != 1:
        raise ExportError(f"cases of {run.deck.measure_name} span {len(spans)} measurement periods; expected one")
    ((start, end),) = spans
    return export_individual_reports(
        run.indicator,
        subjects,
        Path(out_dir),
        period_start=start,
        period_end=end,
        measure_url=run.deck.measure_url,
    )


__all__ = ["render_text", "to_json", "write_measure_reports"]
