"""Data dictionary for the aggregate CSV: one row per column (name, type, unit, meaning).

A regulator's analyst reads the CSV with this file beside it, so it must describe every
column the CSV has and nothing else. The column list comes from
:data:`csv_export.COLUMNS`, and :data:`COLUMN_SPECS` is checked against it when this
module is imported: adding a CSV column without describing it here fails every import
of the export package (and its test), so the dictionary can never fall behind the CSV.

The ``type`` is also what the Parquet export stores (:mod:`parquet_export`), so the two
files agree on what a column holds. Byte-reproducible like the CSV: fixed row order,
``\\n`` line endings, UTF-8 without BOM, no timestamp.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines import outputs
from pipelines.compute.model import Indicator
from pipelines.errors import ExportError
from pipelines.export.csv_export import COLUMNS

FILENAME = "data_dictionary.csv"
DICTIONARY_COLUMNS = ["name", "type", "unit", "meaning"]
#: Column types, as both the dictionary names them and the Parquet schema stores them.
TYPES = ("string", "integer", "decimal", "date")


@dataclass(frozen=True)
class ColumnSpec:
    type: str
    unit: str
    meaning: str


_COUNT = "Blank when suppressed (see suppressed) or when the indicator was not computed."
_SCORE_UNIT = "fraction 0..1 (proportion) or the row's unit (ratio, continuous)"

#: Every column of the aggregate CSV. ``{threshold}`` in a meaning is filled in with the
#: export's small-number threshold.
COLUMN_SPECS: dict[str, ColumnSpec] = {
    "indicator_id": ColumnSpec("string", "", "CareQI indicator identifier (one indicator file)."),
    "cms_id": ColumnSpec("string", "", "CMS eCQM identifier when the indicator implements one; else blank."),
    "title": ColumnSpec("string", "", "Indicator title."),
    "period_start": ColumnSpec("date", "ISO 8601 date", "First day of the reporting period (month, quarter or year)."),
    "period_end": ColumnSpec("date", "ISO 8601 date", "Last day of the reporting period."),
    "facility_id": ColumnSpec("string", "", "Facility code; ALL is the whole system (the sum of the facilities)."),
    "stratifier": ColumnSpec(
        "string", "", "What the row is broken down by; overall is the unstratified row of the facility."
    ),
    "stratum": ColumnSpec(
        "string", "", "The stratifier's value (e.g. a ward code); all on overall rows. Strata add up to overall."
    ),
    "scoring": ColumnSpec(
        "string", "", "How the score is computed: proportion, ratio or continuous (FHIR continuous-variable)."
    ),
    "unit": ColumnSpec("string", "", "Unit in which the indicator is reported (e.g. %, per 1,000 bed days)."),
    "initial_population": ColumnSpec("integer", "count", "Cases in the initial population. " + _COUNT),
    "denominator": ColumnSpec(
        "integer", "count", "Cases in the denominator (measure population for continuous measures). " + _COUNT
    ),
    "denominator_exclusion": ColumnSpec("integer", "count", "Cases excluded from the denominator. " + _COUNT),
    "numerator": ColumnSpec("integer", "count", "Cases in the numerator (blank for continuous measures). " + _COUNT),
    "numerator_exclusion": ColumnSpec(
        "integer", "count", "Cases excluded from the numerator (blank for continuous measures). " + _COUNT
    ),
    "performance_numerator": ColumnSpec(
        "integer", "count", "Proportions: numerator minus numerator exclusions, what the score counts. " + _COUNT
    ),
    "performance_denominator": ColumnSpec(
        "integer",
        "count",
        "Proportions: denominator minus denominator exclusions, what the score divides by. " + _COUNT,
    ),
    "events": ColumnSpec(
        "integer", "count", "Ratios: events counted (e.g. falls with injury), the score's numerator. " + _COUNT
    ),
    "exposure": ColumnSpec(
        "decimal",
        "the unit the indicator is per (e.g. patient-days)",
        "Ratios: summed exposure of the denominator; score = events / exposure x the unit's multiplier.",
    ),
    "observations": ColumnSpec(
        "integer",
        "count",
        "Continuous measures: observations the statistic (measure_score) is taken over, i.e. the measure population "
        "minus its exclusions. " + _COUNT,
    ),
    "measure_score": ColumnSpec(
        "decimal",
        _SCORE_UNIT,
        "The indicator's score, six decimal places, from the exact counts. Blank when a count it is computed from "
        "(performance numerator or denominator, events, observations) is suppressed.",
    ),
    "ci_low": ColumnSpec("decimal", _SCORE_UNIT, "Lower bound of the 95% confidence interval of measure_score."),
    "ci_high": ColumnSpec("decimal", _SCORE_UNIT, "Upper bound of the 95% confidence interval of measure_score."),
    "target": ColumnSpec("decimal", _SCORE_UNIT, "The indicator's target, on the scale of measure_score."),
    "status": ColumnSpec(
        "string", "", "green, amber or red against the target; blank when the score is suppressed or not final."
    ),
    "suppressed": ColumnSpec(
        "string",
        "",
        "Fields of the row blanked by small-number suppression, ;-separated (empty when none). Counts of 1 to "
        "{threshold_minus_one} are suppressed, and further cells so that no suppressed cell can be recovered from "
        "totals, other strata or the row's own parts; published counts are then rounded when the manifest's "
        "rounding is above 1.",
    ),
    "state": ColumnSpec(
        "string", "", "final, provisional (the period is still open to revision) or not_computed (no figures)."
    ),
    "state_reason": ColumnSpec("string", "", "Why the row is provisional or not computed; blank when final."),
}


def check_specs(columns: Sequence[str], specs: dict[str, ColumnSpec]) -> None:
    """Raise unless ``specs`` describes exactly ``columns`` with known types: called at
    import, so an undescribed CSV column is caught before anything is written."""
    missing = [c for c in columns if c not in specs]
    extra = sorted(set(specs) - set(columns))
    bad = sorted(name for name, spec in specs.items() if spec.type not in TYPES or not spec.meaning)
    if missing or extra or bad:
        raise ExportError(
            "the data dictionary does not match the CSV columns: "
            f"undescribed {missing}, not in the CSV {extra}, bad type or empty meaning {bad}"
        )


check_specs(COLUMNS, COLUMN_SPECS)


def dictionary_rows(small_number_threshold: int = 11) -> list[dict[str, str]]:
    """One row per CSV column, in the CSV's column order."""
    rows = []
    for name in COLUMNS:
        spec = COLUMN_SPECS[name]
        meaning = spec.meaning.format(threshold_minus_one=small_number_threshold - 1)
        rows.append({"name": name, "type": spec.type, "unit": spec.unit, "meaning": meaning})
    return rows


def export_dictionary(
    results: pd.DataFrame,
    indicators: Sequence[Indicator],
    period: str,
    out_dir: Path,
    *,
    small_number_threshold: int = 11,
    rounding: int = 0,
    controlled: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ``out_dir/data_dictionary.csv`` (the results are not needed: the columns are
    the same every month) and return ``[its path]``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=DICTIONARY_COLUMNS, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerows(dictionary_rows(small_number_threshold))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [outputs.write_file(out_dir / FILENAME, buf.getvalue().encode("utf-8"))]


__all__ = ["COLUMN_SPECS", "FILENAME", "TYPES", "ColumnSpec", "check_specs", "dictionary_rows", "export_dictionary"]
