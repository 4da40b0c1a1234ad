from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.tables import TABLES, conform


def frames(**tables: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Tiny typed tables from row dicts (missing columns null), as the warehouse would return them."""
    out = {}
    for name, rows in tables.items():
        df, failures = conform(pd.DataFrame(rows), TABLES[name])
        assert (failures == "").all(), failures.tolist()
        out[name] = df
    return out
