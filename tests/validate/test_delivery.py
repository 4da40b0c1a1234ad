"""The delivery guard judges a batch as a whole against its neighbours (issue 11, defects 1
and 6): empty, missing, short, a column emptied or dropped, and the operator's way out."""

from __future__ import annotations

import pandas as pd

from pipelines.validate.delivery import check_delivery, reference_batches

BATCHES = ["2026-07", "2026-08", "2026-09"]


def history(table_rows: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"batch": b, "table_name": t, "rows_accepted": n} for b in BATCHES for t, n in table_rows.items()]
    )


def profiles(rows: dict[tuple[str, str], tuple[int, int]], batch: str | None = None) -> pd.DataFrame:
    out = pd.DataFrame(
        [{"table_name": t, "column_name": c, "rows": r, "filled": f} for (t, c), (r, f) in rows.items()],
        columns=["table_name", "column_name", "rows", "filled"],
    )
    if batch is not None:
        out = pd.concat([out.assign(batch=b) for b in BATCHES], ignore_index=True)
    return out


NORMAL = {"encounters": 4800, "patients": 3000, "complaints": 40, "adverse_events": 6}
PROFILE = {("patients", "birth_date"): (3000, 2990), ("complaints", "acknowledged_at"): (40, 24)}


def check(accepted: dict[str, int], now: dict | None = None, **kw):  # type: ignore[no-untyped-def]
    return check_delivery(
        accepted,
        profiles(now if now is not None else PROFILE),
        history(NORMAL),
        profiles(PROFILE, batch="all"),
        **kw,
    )


def test_a_normal_delivery_passes() -> None:
    assert check({"encounters": 4700, "patients": 2950, "complaints": 31, "adverse_events": 0}) == []


def test_an_empty_folder_is_refused() -> None:
    problems = check(dict.fromkeys(NORMAL, 0))
    assert [p.kind for p in problems] == ["empty"]


def test_a_batch_without_its_encounters_is_refused() -> None:
    problems = check({"encounters": 0, "patients": 2950, "complaints": 31, "adverse_events": 5})
    assert [(p.table, p.kind) for p in problems] == [("encounters", "missing")]
    assert "2026-07, 2026-08, 2026-09" in problems[0].message


def test_a_short_delivery_is_refused_but_small_tables_may_vary() -> None:
    problems = check({"encounters": 1100, "patients": 2950, "complaints": 31, "adverse_events": 0})
    assert [(p.table, p.kind) for p in problems] == [("encounters", "short")]
    assert "below 25% of the fewest (4,800)" in problems[0].message
    assert check({"encounters": 2000, "patients": 2950, "complaints": 31, "adverse_events": 0}) == []
    assert [p.table for p in check({"encounters": 2000, "patients": 2950, "complaints": 31}, min_share=0.5)] == [
        "encounters"
    ]


def test_an_emptied_column_is_refused() -> None:
    """Regression (defect 6): a Patient feed without birth dates greyed VTE silently."""
    now = {**PROFILE, ("patients", "birth_date"): (2950, 0)}
    problems = check({"encounters": 4700, "patients": 2950, "complaints": 31, "adverse_events": 6}, now)
    assert [(p.table, p.kind) for p in problems] == [("patients", "emptied_column")]


def test_a_dropped_csv_column_that_used_to_be_filled_is_refused() -> None:
    now = {**PROFILE, ("complaints", "acknowledged_at"): (31, 0)}
    problems = check(
        {"encounters": 4700, "patients": 2950, "complaints": 31, "adverse_events": 6},
        now,
        missing_columns={"complaints": ["acknowledged_at"]},
    )
    assert [(p.table, p.kind) for p in problems] == [("complaints", "missing_column")]


def test_a_table_declared_empty_is_accepted() -> None:
    accepted = {"encounters": 4700, "patients": 2950, "complaints": 0, "adverse_events": 6}
    assert [p.table for p in check(accepted)] == ["complaints"]
    assert check(accepted, empty_tables=["complaints"]) == []
    # "*": the operator declares the whole batch empty; nothing else judges it then.
    everything_empty = dict.fromkeys(NORMAL, 0)
    assert [p.kind for p in check(everything_empty)] == ["empty"]
    assert check(everything_empty, empty_tables=["*"]) == []


def test_the_first_delivery_is_judged_only_for_emptiness() -> None:
    empty_history = pd.DataFrame(columns=["batch", "table_name", "rows_accepted"])
    no_profiles = profiles({})
    assert check_delivery({"encounters": 3}, profiles(PROFILE), empty_history, no_profiles) == []
    problems = check_delivery({"encounters": 0}, profiles(PROFILE), empty_history, no_profiles)
    assert [p.kind for p in problems] == ["empty"]


def test_reference_batches_are_the_nearest_loaded_others() -> None:
    loaded = ["2026-01", "2026-05", "2026-06", "2026-07", "2026-08", "2026-10"]
    assert reference_batches("2026-07", loaded) == ["2026-06", "2026-08", "2026-05"]
    assert reference_batches("2026-11", loaded) == ["2026-10", "2026-08", "2026-07"]
