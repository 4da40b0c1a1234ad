from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import read_results, read_subjects, replace_results, table_counts
from tests.load.conftest import make_frame

RESULT_KEY = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
SUBJECT_KEY = ["indicator_id", "period", "subject_id"]


def frames(period: str, indicators: tuple[str, ...] = ("vte", "falls"), n: int = 12, seed: int = 0):  # type: ignore[no-untyped-def]
    """(subjects, results) for ``period``, rows split between ``indicators``."""
    ids = pd.array(np.array(indicators)[np.arange(n) % len(indicators)], dtype="string")
    subjects = make_frame(T.INDICATOR_SUBJECTS, n, seed=seed, prefix="enc", fixed={"period": period})
    subjects["indicator_id"] = ids
    results = make_frame(T.INDICATOR_RESULTS, n, seed=seed, fixed={"period": period})
    results["indicator_id"] = ids
    results["stratum"] = pd.array([f"s{i}" for i in range(n)], dtype="string")
    return subjects, results


def sorted_by(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return df.sort_values(key).reset_index(drop=True)


def test_results_and_subjects_round_trip_typed(warehouse: Engine) -> None:
    subjects, results = frames("2026-01")
    replace_results(warehouse, "2026-01", subjects=subjects, results=results)
    assert_frame_equal(read_results(warehouse), sorted_by(results, RESULT_KEY), check_exact=True)
    assert_frame_equal(read_subjects(warehouse, "2026-01"), sorted_by(subjects, SUBJECT_KEY), check_exact=True)
    assert read_subjects(warehouse, "2026-01")["numerator"].dtype == "boolean"


def test_replace_results_twice_is_idempotent(warehouse: Engine) -> None:
    subjects, results = frames("2026-01")
    replace_results(warehouse, "2026-01", subjects=subjects, results=results)
    counts = table_counts(warehouse)
    replace_results(warehouse, "2026-01", subjects=subjects, results=results)
    assert table_counts(warehouse) == counts
    assert_frame_equal(read_results(warehouse), sorted_by(results, RESULT_KEY))


def test_replacement_is_scoped_to_period_and_indicators(warehouse: Engine) -> None:
    jan_s, jan_r = frames("2026-01")
    feb_s, feb_r = frames("2026-02", seed=1)
    replace_results(warehouse, "2026-01", subjects=jan_s, results=jan_r)
    replace_results(warehouse, "2026-02", subjects=feb_s, results=feb_r)

    # recompute only 'vte' for January, with fewer rows
    new_s, new_r = frames("2026-01", indicators=("vte",), n=3, seed=5)
    replace_results(warehouse, "2026-01", subjects=new_s, results=new_r)

    jan = read_results(warehouse, periods=["2026-01"])
    assert_frame_equal(
        jan[jan["indicator_id"] == "falls"].reset_index(drop=True),
        sorted_by(jan_r[jan_r["indicator_id"] == "falls"], RESULT_KEY),
    )
    assert_frame_equal(
        read_results(warehouse, periods=["2026-01"], indicator_ids=["vte"]), sorted_by(new_r, RESULT_KEY)
    )
    assert_frame_equal(read_results(warehouse, periods=["2026-02"]), sorted_by(feb_r, RESULT_KEY))
    assert_frame_equal(read_subjects(warehouse, "2026-01", "vte"), sorted_by(new_s, SUBJECT_KEY))
    assert len(read_subjects(warehouse, "2026-01", "falls")) == 6
    assert len(read_subjects(warehouse, "2026-02")) == 12


def test_subjects_only_recompute_also_clears_that_indicators_results(warehouse: Engine) -> None:
    """An indicator present in either frame is replaced in both tables, so stale
    aggregates never sit next to fresh subject lists."""
    subjects, results = frames("2026-01")
    replace_results(warehouse, "2026-01", subjects=subjects, results=results)
    only_vte = subjects[subjects["indicator_id"] == "vte"].reset_index(drop=True)
    replace_results(warehouse, "2026-01", subjects=only_vte, results=T.empty_frame(T.INDICATOR_RESULTS))
    assert set(read_results(warehouse)["indicator_id"]) == {"falls"}
    assert len(read_subjects(warehouse, "2026-01", "vte")) == 6


def test_filters_accept_empty_selections(warehouse: Engine) -> None:
    subjects, results = frames("2026-01")
    replace_results(warehouse, "2026-01", subjects=subjects, results=results)
    assert read_results(warehouse, periods=[]).empty
    assert read_results(warehouse, indicator_ids=["nope"]).columns.tolist() == T.INDICATOR_RESULTS.column_names


def test_rows_of_another_period_are_refused(warehouse: Engine) -> None:
    subjects, results = frames("2026-01")
    with pytest.raises(WarehouseError, match="period other than '2026-02'"):
        replace_results(warehouse, "2026-02", subjects=subjects, results=results)
    assert table_counts(warehouse)["indicator_results"] == 0


def test_duplicate_result_rows_are_refused(warehouse: Engine) -> None:
    subjects, results = frames("2026-01")
    results = pd.concat([results, results.iloc[:1]], ignore_index=True)
    with pytest.raises(WarehouseError, match="indicator_results: 1 duplicate row"):
        replace_results(warehouse, "2026-01", subjects=subjects, results=results)
