from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load import read_results, read_subjects, replace_results, retire_indicator, table_counts
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


def test_a_months_results_are_replaced_as_a_set(warehouse: Engine) -> None:
    """Recomputing January replaces every January result: an indicator absent from the
    new run (not computed this time) keeps no old figure. February is untouched."""
    jan_s, jan_r = frames("2026-01")
    feb_s, feb_r = frames("2026-02", seed=1)
    replace_results(warehouse, "2026-01", subjects=jan_s, results=jan_r)
    replace_results(warehouse, "2026-02", subjects=feb_s, results=feb_r)

    new_s, new_r = frames("2026-01", indicators=("vte",), n=3, seed=5)
    replace_results(warehouse, "2026-01", subjects=new_s, results=new_r)

    assert_frame_equal(read_results(warehouse, periods=["2026-01"]), sorted_by(new_r, RESULT_KEY))
    assert_frame_equal(read_subjects(warehouse, "2026-01"), sorted_by(new_s, SUBJECT_KEY))
    assert read_subjects(warehouse, "2026-01", "falls").empty
    assert_frame_equal(read_results(warehouse, periods=["2026-02"]), sorted_by(feb_r, RESULT_KEY))
    assert len(read_subjects(warehouse, "2026-02")) == 12


def test_retiring_an_indicator_archives_all_its_results(warehouse: Engine) -> None:
    jan_s, jan_r = frames("2026-01")
    feb_s, feb_r = frames("2026-02", seed=1)
    replace_results(warehouse, "2026-01", subjects=jan_s, results=jan_r)
    replace_results(warehouse, "2026-02", subjects=feb_s, results=feb_r)
    moved = retire_indicator(warehouse, "falls")
    assert moved == {"indicator_results": 12, "indicator_subjects": 12}
    assert set(read_results(warehouse)["indicator_id"]) == {"vte"}
    assert set(read_subjects(warehouse, "2026-01")["indicator_id"]) == {"vte"}
    counts = table_counts(warehouse)
    assert counts["retired_indicator_results"] == 12 and counts["retired_indicator_subjects"] == 12
    assert retire_indicator(warehouse, "falls") == {"indicator_results": 0, "indicator_subjects": 0}
    assert table_counts(warehouse)["retired_indicator_results"] == 12  # a second retire keeps the archive


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
