from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from pandas.testing import assert_frame_equal
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import PeriodError, WarehouseError
from pipelines.load import batches as B
from pipelines.load import (
    list_batches,
    read_batch,
    read_table,
    replace_batch,
    table_counts,
)
from tests.load.conftest import make_frame

SIDE = {
    "quarantine": T.QUARANTINE,
    "reconciliation": T.RECONCILIATION,
    "checks": T.VALIDATION_CHECKS,
    "profiles": T.COLUMN_PROFILES,
}


def batch_frames(n: int = 30, *, seed: int = 0, prefix: str = "id") -> dict[str, object]:
    """Keyword arguments for replace_batch: every source table plus side tables."""
    tables = {name: make_frame(spec, n, seed=seed, prefix=prefix) for name, spec in T.TABLES.items()}
    side = {arg: make_frame(spec, n, seed=seed, prefix=prefix) for arg, spec in SIDE.items()}
    return {"tables": tables, **side}


def with_batch(df: pd.DataFrame, batch: str) -> pd.DataFrame:
    return df.assign(batch=pd.Series(batch, index=df.index, dtype="string"))


def snapshot(engine: Engine) -> dict[str, pd.DataFrame]:
    out = {name: read_table(engine, name) for name in T.TABLES}
    for batch in list_batches(engine):
        for name in ("quarantine", "reconciliation", "validation_checks"):
            out[f"{name}/{batch}"] = read_batch(engine, name, batch)
    return out


def test_every_table_round_trips_with_its_dtypes(warehouse: Engine) -> None:
    frames = batch_frames()
    written = replace_batch(warehouse, "2026-01", **frames)
    assert written == {
        **{n: 30 for n in T.TABLES},
        "quarantine": 30,
        "reconciliation": 30,
        "validation_checks": 30,
        "column_profiles": 30,
    }
    for name, df in frames["tables"].items():
        got = read_table(warehouse, name)
        assert_frame_equal(got, with_batch(df, "2026-01"), check_exact=True)
        # the fixture really exercised nulls, NaT and both booleans
        assert got.drop(columns=[T.TABLES[name].key]).isna().any().any()
    for arg, spec in SIDE.items():
        got = read_batch(warehouse, spec.name, "2026-01")
        expected = with_batch(frames[arg], "2026-01")
        if spec.name != "quarantine":  # ordered by primary key; quarantine by arrival
            key = {"validation_checks": ["table_name", "check"], "column_profiles": ["table_name", "column_name"]}.get(
                spec.name, ["table_name"]
            )
            expected = expected.sort_values(key).reset_index(drop=True)
        assert_frame_equal(got, expected, check_exact=True)
    assert read_batch(warehouse, "reconciliation", "2026-01")["balanced"].isin([True, False]).all()


def test_replacing_a_batch_twice_leaves_identical_warehouse(warehouse: Engine) -> None:
    frames = batch_frames()
    first = replace_batch(warehouse, "2026-01", **frames)
    counts, content = table_counts(warehouse), snapshot(warehouse)
    second = replace_batch(warehouse, "2026-01", **frames)
    assert second == first
    assert table_counts(warehouse) == counts
    after = snapshot(warehouse)
    assert after.keys() == content.keys()
    for name in content:
        assert_frame_equal(after[name], content[name], check_exact=True)


def test_reload_replaces_rather_than_merges(warehouse: Engine) -> None:
    replace_batch(warehouse, "2026-01", **batch_frames(30))
    smaller = batch_frames(10, seed=1)
    smaller["tables"] = {"encounters": smaller["tables"]["encounters"]}
    replace_batch(warehouse, "2026-01", **smaller)
    counts = table_counts(warehouse)
    assert counts["encounters"] == 10
    assert counts["patients"] == 0
    assert counts["quarantine"] == 10
    assert_frame_equal(read_table(warehouse, "encounters"), with_batch(smaller["tables"]["encounters"], "2026-01"))


def test_second_batch_does_not_disturb_the_first(warehouse: Engine) -> None:
    replace_batch(warehouse, "2026-01", **batch_frames(20, prefix="jan"))
    before = {n: read_batch(warehouse, n, "2026-01") for n in (*T.TABLES, "quarantine", "reconciliation")}
    replace_batch(warehouse, "2026-02", **batch_frames(25, seed=2, prefix="feb"))
    for name, df in before.items():
        assert_frame_equal(read_batch(warehouse, name, "2026-01"), df)
    assert list_batches(warehouse) == ["2026-01", "2026-02"]
    assert len(read_table(warehouse, "encounters")) == 45
    assert len(read_table(warehouse, "encounters", upto_batch="2026-01")) == 20


def test_record_delivered_in_two_batches_is_read_once_from_the_latest(warehouse: Engine) -> None:
    jan = batch_frames(5, seed=1)
    feb = batch_frames(5, seed=2)
    jan["tables"]["patients"]["gender"] = pd.array(["female"] * 5, dtype="string")
    feb["tables"]["patients"]["gender"] = pd.array(["male"] * 5, dtype="string")
    feb["tables"]["patients"] = feb["tables"]["patients"].iloc[:3]  # two patients not re-sent
    # loaded out of order: batch order, not load order, decides
    replace_batch(warehouse, "2026-02", **feb)
    replace_batch(warehouse, "2026-01", **jan)

    latest = read_table(warehouse, "patients").set_index("patient_id")
    assert len(latest) == 5 and latest.index.is_unique
    assert (latest.loc[latest["batch"] == "2026-02", "gender"] == "male").all()
    assert set(latest.index[latest["batch"] == "2026-02"]) == set(feb["tables"]["patients"]["patient_id"])
    assert (latest.loc[latest["batch"] == "2026-01", "gender"] == "female").sum() == 2

    as_of_jan = read_table(warehouse, "patients", upto_batch="2026-01")
    assert len(as_of_jan) == 5
    assert (as_of_jan["gender"] == "female").all() and (as_of_jan["batch"] == "2026-01").all()
    assert read_table(warehouse, "patients", upto_batch="2025-12").empty


def test_failed_load_leaves_previous_batch_intact(warehouse: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    original = batch_frames(8)
    replace_batch(warehouse, "2026-01", **original)
    counts, content = table_counts(warehouse), snapshot(warehouse)
    real_insert = B.insert_frame

    def failing_insert(conn, table, df, columns, order=None):  # type: ignore[no-untyped-def]
        if table.name == "quarantine":
            raise sa.exc.OperationalError("INSERT", {}, RuntimeError("disk full"))
        return real_insert(conn, table, df, columns, order)

    monkeypatch.setattr(B, "insert_frame", failing_insert)
    with pytest.raises(WarehouseError, match="loading batch 2026-01 failed.*disk full"):
        replace_batch(warehouse, "2026-01", **batch_frames(3, seed=9, prefix="new"))
    assert table_counts(warehouse) == counts
    after = snapshot(warehouse)
    for name in content:
        assert_frame_equal(after[name], content[name])


def test_duplicate_record_ids_are_refused_without_naming_them(warehouse: Engine) -> None:
    frames = batch_frames(4)
    enc = frames["tables"]["encounters"]
    frames["tables"]["encounters"] = pd.concat([enc, enc.iloc[:2]], ignore_index=True)
    with pytest.raises(WarehouseError, match="encounters: 2 duplicate row") as err:
        replace_batch(warehouse, "2026-01", **frames)
    assert "id0000000" not in str(err.value)
    assert table_counts(warehouse)["encounters"] == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f["tables"]["encounters"].assign(nickname="x"), "columns not in the table contract: nickname"),
        (lambda f: f["tables"]["encounters"].assign(patient_id=pd.NA), "4 row\\(s\\) have no patient_id"),
        (lambda f: f["tables"]["encounters"].assign(start_at="2026-13-45"), "do not fit the contract"),
        (lambda f: f["tables"]["encounters"].assign(batch="2026-02"), "batch other than '2026-01'"),
    ],
)
def test_frames_that_break_the_contract_are_refused(warehouse: Engine, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    frames = batch_frames(4)
    frames["tables"]["encounters"] = mutate(frames)
    with pytest.raises(WarehouseError, match=message):
        replace_batch(warehouse, "2026-01", **frames)


def test_frames_missing_optional_columns_are_conformed(warehouse: Engine) -> None:
    frames = batch_frames(3)
    enc = frames["tables"]["encounters"]
    frames["tables"]["encounters"] = enc[["encounter_id", "patient_id"]].astype(object)
    replace_batch(warehouse, "2026-01", **frames)
    got = read_table(warehouse, "encounters")
    assert got["encounter_id"].tolist() == enc["encounter_id"].tolist()
    assert got["start_at"].isna().all() and str(got["start_at"].dtype) == T.TS


@pytest.mark.parametrize("batch", ["2026-1", "2026-13", "202601", "2026-01; DROP TABLE x", "0000-01", "9999-12"])
def test_batch_must_be_a_month(warehouse: Engine, batch: str) -> None:
    with pytest.raises(PeriodError, match="YYYY-MM"):
        replace_batch(warehouse, batch, **batch_frames(1))


def test_unknown_tables_are_refused(warehouse: Engine) -> None:
    frames = batch_frames(1)
    frames["tables"]["vitals"] = frames["tables"]["observations"]
    with pytest.raises(WarehouseError, match="unknown source table"):
        replace_batch(warehouse, "2026-01", **frames)
    with pytest.raises(WarehouseError, match="unknown source table"):
        read_table(warehouse, "vitals")
    with pytest.raises(WarehouseError, match="unknown warehouse table"):
        read_batch(warehouse, "vitals", "2026-01")


def test_empty_batch_is_listed_and_empty(warehouse: Engine) -> None:
    empty = {arg: T.empty_frame(spec) for arg, spec in SIDE.items()}
    written = replace_batch(warehouse, "2026-03", tables={}, **empty)
    assert set(written.values()) == {0}
    assert list_batches(warehouse) == ["2026-03"]
    assert read_table(warehouse, "complaints").columns.tolist() == [*T.TABLES["complaints"].column_names, "batch"]
