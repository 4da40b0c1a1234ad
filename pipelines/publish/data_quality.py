"""The report's data-quality evidence: how far the committee can trust the figures.

Reconciliation (records read = accepted + quarantined, rechecked here rather than
trusted), the validation checks that failed, and the most common quarantine reasons.
Quarantine payloads are never shown: they are source records that may hold free text.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.errors import CareQIError
from pipelines.publish.formatting import format_count, integer, num, text

#: Quarantine reasons listed in the data-quality section.
QUARANTINE_REASON_LIMIT = 20


def require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    """Fail with the missing columns named when an input does not follow the contract."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CareQIError(f"{what} is missing column(s) {', '.join(missing)}; expected the pipelines.tables contract")


def reconciliation_rows(reconciliation: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not len(reconciliation):
        return rows
    require_columns(reconciliation, ["table_name", "rows_read", "rows_accepted", "rows_quarantined"], "reconciliation")
    sort_cols = ["batch", "table_name"] if "batch" in reconciliation.columns else ["table_name"]
    for rec in reconciliation.sort_values(sort_cols, kind="mergesort").to_dict("records"):
        read, acc, quar = (integer(rec.get(c)) or 0 for c in ("rows_read", "rows_accepted", "rows_quarantined"))
        # Recheck the arithmetic rather than trusting the flag alone.
        balanced = bool(rec.get("balanced")) if text(rec.get("balanced")) != "" else True
        balanced = balanced and read == acc + quar
        rows.append(
            {
                "batch": text(rec.get("batch")),
                "table": text(rec.get("table_name")),
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
    return rows


def failed_checks(checks: pd.DataFrame) -> list[dict[str, Any]]:
    """Failed checks, worst first per table. Percentages are recomputed from
    ``violated / denominator`` so the report does not depend on whether the validator
    stored a fraction or a percentage."""
    failed: list[dict[str, Any]] = []
    if not len(checks):
        return failed
    require_columns(checks, ["table_name", "check", "violated", "denominator", "status"], "validation checks")
    bad = checks[checks["status"].astype("string").str.strip().str.lower().eq("fail").fillna(False)]
    for rec in bad.to_dict("records"):
        violated, denom = integer(rec.get("violated")) or 0, integer(rec.get("denominator")) or 0
        pct = 100 * violated / denom if denom else (num(rec.get("pct")) or 0.0)
        failed.append(
            {
                "table": text(rec.get("table_name")),
                "check": text(rec.get("check")),
                "description": text(rec.get("description")),
                "category": text(rec.get("category")),
                "violated": violated,
                "violated_text": format_count(violated),
                "denominator_text": format_count(denom),
                "pct": pct,
                "pct_text": f"{pct:.2f}%",
            }
        )
    failed.sort(key=lambda r: (r["table"], -r["violated"], r["check"]))
    return failed


def quarantine_summary(quarantine: pd.DataFrame) -> dict[str, Any]:
    """Quarantined rows by table and stage, and the most common reasons."""
    reasons: list[dict[str, Any]] = []
    reasons_more = 0
    by_table: list[dict[str, Any]] = []
    total = int(len(quarantine))
    if total:
        require_columns(quarantine, ["table_name", "stage", "reasons"], "quarantine")
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
        "quarantine_total": total,
        "quarantine_by_table": by_table,
        "quarantine_reasons": reasons,
        "quarantine_reasons_more": reasons_more,
    }


def data_quality(reconciliation: pd.DataFrame, checks: pd.DataFrame, quarantine: pd.DataFrame) -> dict[str, Any]:
    """The data-quality section: reconciliation, failed checks and quarantine reasons."""
    recon = reconciliation_rows(reconciliation)
    return {
        "reconciliation": recon,
        "unbalanced": [r["table"] for r in recon if not r["balanced"]],
        "failed_checks": failed_checks(checks),
        "checks_run": int(len(checks)),
        **quarantine_summary(quarantine),
    }


def _failing(checks: pd.DataFrame | None) -> set[tuple[str, str]]:
    if checks is None or not len(checks):
        return set()
    bad = checks[checks["status"].astype("string").str.strip().str.lower().eq("fail").fillna(False)]
    return {(str(t), str(c)) for t, c in zip(bad["table_name"], bad["check"], strict=True)}


def check_changes(current: pd.DataFrame, earlier: pd.DataFrame | None) -> dict[str, Any] | None:
    """Failed checks compared with an earlier set (the last run of this period, or the
    previous month): newly failing, resolved and persisting, each as (table, check).
    None when there is nothing to compare with."""
    if earlier is None or not len(earlier):
        return None
    now, before = _failing(current), _failing(earlier)
    fmt = lambda keys: [{"table": t, "check": c} for t, c in sorted(keys)]  # noqa: E731
    return {"new": fmt(now - before), "resolved": fmt(before - now), "persisting": fmt(now & before)}


#: Publication gate modes (``CAREQI_PUBLICATION_GATE``): ``feeding`` gates on a failed
#: check of a table an indicator reads, ``any`` on any failed check, ``off`` never.
GATE_MODES = ("feeding", "any", "off")


def publication_gate(checks: pd.DataFrame, feeding_tables: set[str], mode: str) -> dict[str, Any]:
    """Whether the report may be published: a check that failed beyond its own threshold
    (its status is ``fail``) on a table feeding an indicator stops it."""
    if mode not in GATE_MODES:
        from pipelines.errors import ConfigError

        raise ConfigError(f"CAREQI_PUBLICATION_GATE must be one of {', '.join(GATE_MODES)}, got {mode!r}")
    failing = sorted(_failing(checks))
    blocking = [] if mode == "off" else [(t, c) for t, c in failing if mode == "any" or t in feeding_tables]
    return {
        "mode": mode,
        "publishable": not blocking,
        "blocking": [{"table": t, "check": c} for t, c in blocking],
    }


__all__ = [
    "GATE_MODES",
    "QUARANTINE_REASON_LIMIT",
    "check_changes",
    "data_quality",
    "publication_gate",
    "require_columns",
]
