"""The restricted case appendix: why each case of a failing indicator counts.

The committee report is circulated, so it names no record. The cases behind an off- or
near-target indicator go to a separate file, for the people who review them, under
pseudonyms: an HMAC-SHA-256 of the subject id with a secret kept only in the warehouse
(:func:`pipelines.load.governance.pseudonym_key`). The data team re-identifies a
pseudonym with that key (``careqi appendix reidentify``); the appendix alone does not.

For each case it says, population by population, whether the case is in or out, in the
indicator's own sentences, so a reviewer can check the rule against the record.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from pipelines.compute.cases import case_selection
from pipelines.compute.model import Indicator, Scoring
from pipelines.publish.formatting import num, text
from pipelines.publish.i18n import _

PREFIX = "S-"
#: Hex digits kept: 64 bits, so a collision among a million subjects has odds of about 1 in 36 million.
DIGITS = 16


def pseudonym(secret: bytes, subject_id: str) -> str:
    return PREFIX + hmac.new(secret, subject_id.encode("utf-8"), hashlib.sha256).hexdigest()[:DIGITS]


def reidentify(secret: bytes, pseudonyms: Iterable[str], subject_ids: Iterable[str]) -> dict[str, list[str]]:
    """Which of ``subject_ids`` each pseudonym stands for (the data team's look-up)."""
    wanted = {p.strip() for p in pseudonyms}
    found: dict[str, list[str]] = {p: [] for p in wanted}
    for sid in dict.fromkeys(subject_ids):
        p = pseudonym(secret, sid)
        if p in found:
            found[p].append(sid)
    return found


def _reasons(indicator: Indicator, rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for pop in indicator.reported_populations:
        if pop not in indicator.populations:
            continue
        flag = rec.get(pop.column)
        member = bool(flag) if flag is not None and flag is not pd.NA else False
        out.append({"population": _(pop.label), "member": member, "sentence": _(indicator.definition(pop))})
    return out


def appendix_sections(
    sections: Sequence[Mapping[str, Any]],
    indicators: Mapping[str, Indicator],
    subjects: pd.DataFrame,
    period: str,
    secret: bytes,
    names: Mapping[str, str],
) -> list[dict[str, Any]]:
    """One part per indicator whose cases the committee report counts (off or near
    target, or a provisional month already worse than it: :func:`.sections.needs_review`):
    its cases under pseudonyms, with why."""
    out = []
    for s in sections:
        if s.get("cases") is None:
            continue
        ind = indicators[s["id"]]
        cases = case_selection(subjects, ind, period, s["target"])
        rows = []
        for rec in cases.rows.to_dict("records"):
            detail = ""
            if ind.scoring is Scoring.RATIO:
                detail = f"{int(num(rec.get('numerator_events')) or 0):,}"
            elif ind.scoring is Scoring.CONTINUOUS:
                obs = num(rec.get("observation"))
                detail = "–" if obs is None else f"{obs:,.1f}"
            rows.append(
                {
                    "pseudonym": pseudonym(secret, text(rec.get("subject_id"))),
                    "facility": names.get(text(rec.get("facility_id")), text(rec.get("facility_id"))),
                    "ward": names.get(text(rec.get("ward_id")), text(rec.get("ward_id"))),
                    "service": text(rec.get("service")),
                    "detail": detail,
                    "reasons": _reasons(ind, rec),
                }
            )
        rows.sort(key=lambda r: (r["facility"], r["ward"], r["pseudonym"]))
        out.append(
            {
                "id": s["id"],
                "title": s["title"],
                "status_label": s["current"]["status_label"],
                "value_text": s["current"]["value_text"],
                "rule": cases.rule,
                "cases": rows,
            }
        )
    return out


__all__ = ["DIGITS", "PREFIX", "appendix_sections", "pseudonym", "reidentify"]
