"""Regulator CSV: one row per indicator x facility x stratifier x stratum for a period
(a month, a quarter or a year).

Complete rows: every row carries what its score is made of, so the score can be
recomputed from the file: a proportion's performance numerator and denominator, a
ratio's events and exposure (e.g. patient-days, not stays), a continuous measure's
observation count (its statistic is ``measure_score``). Counts that do not apply to a
scoring (a continuous measure has no numerator) are blank, not 0. With ``rounding``
(e.g. 5) published counts are rounded after suppression; scores are computed from the
exact counts.

Byte-reproducible by construction, so a re-run can be diffed against what was sent:
rows in a fixed order (see :func:`period.sort_rows`), decimals always written with six
places, ``\\n`` line endings, UTF-8 without BOM, and no run timestamp anywhere (the
period columns say what the file is about). Only aggregates are written, after
small-number suppression (:mod:`suppression`); the ``suppressed`` column lists the
blanked fields of the row (``;``-separated, empty when none).

``state`` says whether a row is ``final``, ``provisional`` (the month is still open to
revision, or cases are within their deadline: no status is given) or
``not_computed`` (counts and score blank, never an old figure), with the reason.

Text cells come from source systems (a ward id, a stratum), so a cell a spreadsheet
would read as a formula - starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return - is written with a leading apostrophe, as OWASP's CSV-injection guidance says.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import outputs
from pipelines.compute.model import Indicator
from pipelines.export.period import indicator_index, period_results
from pipelines.export.suppression import (
    APPLICABLE,
    COUNTS,
    Published,
    disclosure_controlled,
    flag_column,
    suppressed_fields,
)
from pipelines.periods import MeasurementPeriod
from pipelines.tables import FINAL, NOT_COMPUTED, POPULATIONS

log = logging.getLogger(__name__)

COLUMNS = [
    "indicator_id", "cms_id", "title", "period_start", "period_end", "facility_id", "stratifier", "stratum",
    "scoring", "unit", *POPULATIONS, "performance_numerator", "performance_denominator", "events", "exposure",
    "observations", "measure_score", "ci_low", "ci_high", "target", "status", "suppressed",
    "state", "state_reason",
]  # fmt: skip
#: First characters that make a spreadsheet evaluate a cell (OWASP CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """Text that no spreadsheet evaluates: a leading apostrophe where it would start a
    formula. Line breaks inside a cell become spaces: with ``\\n`` line endings Python's
    csv module does not quote a lone carriage return, which splits the row for readers."""
    risky = value.startswith(FORMULA_TRIGGERS)
    value = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return "'" + value if risky or value.startswith(FORMULA_TRIGGERS) else value


#: "3 cases within their 30 calendar-day follow-up": a count of people in free text.
_CASE_COUNT = re.compile(r"\b\d[\d,]* (cases?)\b")


def export_reason(reason: str) -> str:
    """A state reason fit to publish: case counts dropped ("cases within their 30
    calendar-day follow-up"), since the row's own counts are what suppression governs."""
    return _CASE_COUNT.sub("cases", reason)


def format_decimal(value: Any) -> str:
    """Fixed six decimal places; blank for missing; never ``-0.000000``."""
    if value is None or value is pd.NA:
        return ""
    f = float(value)
    if math.isnan(f) or math.isinf(f):
        return ""
    text = f"{f:.6f}"
    return "0.000000" if text == "-0.000000" else text


def controlled_rows(
    results: pd.DataFrame,
    indicators: Sequence[Indicator],
    period: str,
    threshold: int,
    rounding: int = 0,
    published: Published | None = None,
) -> pd.DataFrame:
    """The period's rows under disclosure control: what every format of a package
    publishes (the package writer makes it once and hands it to each format)."""
    return disclosure_controlled(period_results(results, indicators, period), threshold, rounding, published)


def csv_rows(
    results: pd.DataFrame,
    indicators: Sequence[Indicator],
    period: str,
    threshold: int,
    rounding: int = 0,
    controlled: pd.DataFrame | None = None,
) -> list[dict[str, str]]:
    """The export's rows as strings, suppression (then rounding) applied: shared with
    the other writers, so every format holds the same values. ``controlled`` is that
    frame when the caller made it already (:func:`controlled_rows`), once per package."""
    reporting = MeasurementPeriod.parse(period)
    start, end = reporting.start.isoformat(), reporting.last_day.isoformat()
    index = indicator_index(indicators)
    frame = controlled if controlled is not None else controlled_rows(results, indicators, period, threshold, rounding)
    rows: list[dict[str, str]] = []
    for rec in frame.to_dict("records"):
        ind = index[rec["indicator_id"]]
        computed = rec["state"] != NOT_COMPUTED
        row = {
            "indicator_id": rec["indicator_id"],
            "cms_id": ind.cms_id or "",
            "title": ind.title,
            "period_start": start,
            "period_end": end,
            "facility_id": rec["facility_id"],
            "stratifier": rec["stratifier"],
            "stratum": rec["stratum"],
            "scoring": ind.scoring.value,
            "unit": ind.unit,
        }
        applicable = APPLICABLE[ind.scoring.value]
        for c in COUNTS:
            shown = computed and c in applicable and not rec[flag_column(c)] and not pd.isna(rec[c])
            row[c] = str(int(rec[c])) if shown else ""
        # one small group's patient-days go with its suppressed counts
        hidden = rec[flag_column("events")] or rec[flag_column("denominator")]
        row["exposure"] = format_decimal(rec["exposure"]) if computed and not hidden else ""
        for c in ("measure_score", "ci_low", "ci_high"):
            row[c] = "" if rec[flag_column(c)] else format_decimal(rec[c])
        row["target"] = format_decimal(rec["target"])
        graded = rec["state"] == FINAL and not rec[flag_column("status")]
        row["status"] = str(rec["status"]) if graded and rec["status"] is not pd.NA else ""
        row["suppressed"] = ";".join(suppressed_fields(rec))
        row["state"] = str(rec["state"])
        row["state_reason"] = "" if pd.isna(rec["state_reason"]) else export_reason(str(rec["state_reason"]))
        rows.append({k: safe_cell(v) if isinstance(v, str) else v for k, v in row.items()})
    return rows


def export_csv(
    results: pd.DataFrame,
    indicators: Sequence[Indicator],
    period: str,
    out_dir: Path,
    *,
    small_number_threshold: int = 11,
    rounding: int = 0,
    controlled: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ``out_dir/careqi-indicators-<period>.csv`` and return ``[its path]``."""
    rows = csv_rows(results, indicators, period, small_number_threshold, rounding, controlled)
    if not rows:
        log.warning("no indicator results for %s: writing a header-only CSV", period)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerows(rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"careqi-indicators-{period}.csv"
    outputs.write_file(path, buf.getvalue().encode("utf-8"))
    n_supp = sum(1 for r in rows if r["suppressed"])
    log.info("wrote %d rows (%d with suppressed cells) to %s", len(rows), n_supp, path)
    return [path]


__all__ = [
    "COLUMNS",
    "FORMULA_TRIGGERS",
    "controlled_rows",
    "csv_rows",
    "export_csv",
    "export_reason",
    "format_decimal",
    "safe_cell",
]
