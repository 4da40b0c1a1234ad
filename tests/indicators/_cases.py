"""Read ``cases/<indicator_id>/<series>-<scenario>.yaml`` files (eCQM test-deck style).

A case names the reporting ``period``, gives the few input rows that matter per table
(``given``; missing columns become nulls through ``tables.conform``) and a partial map
of expected results per subject (``expect``). ``initial_population: false`` means the
subject must not appear in the output at all. ``data_end`` (optional, ISO date) is when
the data ends, for indicators whose deadline (``follow_up``) censors recent cases.
``timezone`` (optional, IANA name) is the facilities' clock: timestamps written with an
offset are converted to it, as extraction does. ``holidays`` (optional, ``CC-SUB`` or
``none``; default the shipped ``GB-ENG``) is the working-day calendar the case counts in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipelines.tables import TABLES, conform
from pipelines.workdays import DEFAULT_REGION, WorkingCalendars, check_region

CASES_DIR = Path(__file__).parent / "cases"
INDICATORS_DIR = Path(__file__).resolve().parents[2] / "indicators"
CASE_KEYS = {"description", "period", "data_end", "timezone", "holidays", "given", "expect"}
EXPECT_KEYS = {
    "initial_population",
    "denominator",
    "denominator_exclusion",
    "numerator",
    "numerator_exclusion",
    "measure_population",
    "measure_population_exclusion",
    "numerator_events",
    "denominator_value",
    "observation",
    "censored",
}


@dataclass(frozen=True)
class Case:
    indicator_id: str
    path: Path
    period: str
    given: dict[str, list[dict[str, Any]]]
    expect: dict[str, dict[str, Any]]
    data_end: pd.Timestamp | None = None
    timezone: str | None = None
    holidays: str = DEFAULT_REGION

    @property
    def name(self) -> str:
        return f"{self.indicator_id}/{self.path.stem}"

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {}
        for table, rows in self.given.items():
            df, failures = conform(pd.DataFrame(rows), TABLES[table], zones=self.timezone)
            bad = failures[failures != ""]
            assert bad.empty, f"{self.name}: unreadable values in {table}: {bad.tolist()}"
            out[table] = df
        return out

    @property
    def calendars(self) -> WorkingCalendars:
        return WorkingCalendars(default=check_region(self.holidays, f"{self.name}: holidays"))


def load_case(path: Path) -> Case:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict) and set(doc) <= CASE_KEYS, f"{path}: keys must be among {CASE_KEYS}"
    for table in doc.get("given", {}):
        assert table in TABLES, f"{path}: unknown table {table!r}"
    for subject, expected in doc["expect"].items():
        assert set(expected) <= EXPECT_KEYS, f"{path}: {subject}: unknown expectation {set(expected) - EXPECT_KEYS}"
    end = pd.Timestamp(str(doc["data_end"])) if doc.get("data_end") else None
    return Case(
        path.parent.name,
        path,
        str(doc["period"]),
        doc.get("given", {}),
        doc["expect"],
        end,
        doc.get("timezone"),
        str(doc.get("holidays", DEFAULT_REGION)),
    )


def all_cases() -> list[Case]:
    return [load_case(p) for p in sorted(CASES_DIR.glob("*/*.yaml"))]
