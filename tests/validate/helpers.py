"""Hand-built frames for the validation tests."""

from __future__ import annotations

import pandas as pd

from pipelines.config import PROJECT_ROOT
from pipelines.tables import TABLES, conform

SUITES_DIR = PROJECT_ROOT / "expectations"


def frame(table: str, rows: list[dict], source_file: str | None = None) -> pd.DataFrame:
    """Rows as extract hands them over: conformed to the contract, provenance lines 1..n."""
    rows = [{"source_file": source_file or f"{table}.ndjson", "source_line": i + 1, **r} for i, r in enumerate(rows)]
    typed, failures = conform(pd.DataFrame(rows), TABLES[table])
    assert (failures == "").all(), failures.tolist()
    return typed
