"""The report's data-quality evidence: how far the committee can trust the figures.

Reconciliation (records read = accepted + quarantined, rechecked here rather than
trusted), the validation checks that failed, and the most common quarantine reasons.
Quarantine payloads are never shown: they are source records that may hold free text.

Check descriptions and quarantine reasons are stored in English (the expectation suites'
``meta.description``, the validator's messages); they are shown in the report's language
through the catalogue (``scripts/extract_messages.py`` collects the suites' descriptions),
a reason of an unknown form as stored. Table, check and stage names are identifiers.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from pipelines.errors import CareQIError
from pipelines.publish.formatting import format_count, integer, num, text
from pipelines.publish.i18n import N_, _, number

#: Quarantine reasons listed in the data-quality section.
QUARANTINE_REASON_LIMIT = 20

#: Kahn et al.'s data-quality categories (the checks' ``category``), as the report names them.
CATEGORY_LABELS: dict[str, str] = {
    "conformance": N_("conformance"),
    "completeness": N_("completeness"),
    "plausibility": N_("plausibility"),
    "uniqueness": N_("uniqueness"),
}
#: The pipeline stages that quarantine records.
STAGE_LABELS: dict[str, str] = {
    "extract": N_("extract"),
    "conform": N_("conform"),
    "validate": N_("validate"),
    "load": N_("load"),
}
#: Messages the validator writes with a value inside: (what it wrote, the catalogue's form).
_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^The delivery has the (?P<column>\S+) column; without it every row reads as empty there$"),
        N_("The delivery has the %(column)s column; without it every row reads as empty there"),
    ),
    (
        re.compile(r"^duplicate record id: first seen at row (?P<row>\d+) of the input$"),
        N_("duplicate record id: first seen at row %(row)s of the input"),
    ),
    (
        re.compile(r"^duplicate record id: first seen at (?P<where>.+)$"),
        N_("duplicate record id: first seen at %(where)s"),
    ),
)
#: A quarantine reason is ``<check>: <description>``; the check is ``type(columns)``
#: (optionally ``where <condition>``) or a relation's name (``duration(a, b) <= 365 days``).
_CHECK_PREFIX = re.compile(r"^(?P<check>[A-Za-z][A-Za-z0-9_]*\([^()]*\).*?): (?P<text>.+)$")


def message_text(message: str) -> str:
    """A stored check description or quarantine reason in the report's language."""
    message = message.strip()
    if not message:
        return message
    for pattern, msgid in _MESSAGES:
        m = pattern.match(message)
        if m:
            return _(msgid) % m.groupdict()
    return _(message)


def reason_parts(reason: str) -> tuple[str, str]:
    """A quarantine reason as (check identifier, description in the report's language); the
    check is "" for a reason that names none."""
    m = _CHECK_PREFIX.match(reason.strip())
    if m:
        return m.group("check"), message_text(m.group("text"))
    return "", message_text(reason)


def _pct(value: float, decimals: int) -> str:
    return number(value, decimals) + "%"


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
                "quarantined_pct": _pct((100 * quar / read) if read else 0.0, 1),
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
                "description": message_text(text(rec.get("description"))),
                "category": _(CATEGORY_LABELS.get(text(rec.get("category")), text(rec.get("category")))),
                "violated": violated,
                "violated_text": format_count(violated),
                "denominator_text": format_count(denom),
                "pct": pct,
                "pct_text": _pct(pct, 2),
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
            check, description = reason_parts(rec["reason"]) if rec["reason"] else ("", _("(no reason given)"))
            reasons.append(
                {
                    "table": rec["table_name"],
                    "stage": rec["stage"],
                    "stage_label": _(STAGE_LABELS.get(rec["stage"], rec["stage"])),
                    "check": check,
                    "description": description,
                    "reason": f"{check}: {description}" if check else description,
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


def publication_gate(checks: pd.DataFrame, feeding_tables: set[str], mode: str, max_pct: float = 5.0) -> dict[str, Any]:
    """Whether the report may be published. Failing rows are quarantined, so a check
    that fails on a few rows does not stop it; one that fails on more than ``max_pct``
    percent of a table an indicator reads (``feeding``; any table with ``any``) does:
    the figures then rest on a feed too broken to trust."""
    if mode not in GATE_MODES:
        from pipelines.errors import ConfigError

        raise ConfigError(f"CAREQI_PUBLICATION_GATE must be one of {', '.join(GATE_MODES)}, got {mode!r}")
    blocking = []
    if mode != "off" and len(checks):
        for rec in checks.to_dict("records"):
            if str(rec.get("status", "")).strip().lower() != "fail":
                continue
            table = str(rec["table_name"])
            violated, denom = integer(rec.get("violated")) or 0, integer(rec.get("denominator")) or 0
            pct = 100 * violated / denom if denom else 100.0
            if pct > max_pct and (mode == "any" or table in feeding_tables):
                blocking.append({"table": table, "check": str(rec["check"]), "pct_text": f"{pct:.2f}%"})
    blocking.sort(key=lambda b: (b["table"], b["check"]))
    return {"mode": mode, "max_pct": max_pct, "publishable": not blocking, "blocking": blocking}


__all__ = [
    "CATEGORY_LABELS",
    "GATE_MODES",
    "QUARANTINE_REASON_LIMIT",
    "check_changes",
    "data_quality",
    "message_text",
    "publication_gate",
    "reason_parts",
    "require_columns",
]
