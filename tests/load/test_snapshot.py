"""The read model's warehouse reads: the value-set filter on ``codings`` runs in the
database and keeps exactly the rows the in-memory filter keeps, at any size; one shard
of all reads the same as no shard."""

from __future__ import annotations

import pandas as pd
from pandas.testing import assert_frame_equal
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.load import DeliveryReader, Needs, read_deliveries, replace_batch
from pipelines.load.snapshot import Snapshot
from tests.load.test_batches import batch_frames


def _loaded(warehouse: Engine) -> pd.DataFrame:
    frames = batch_frames(60, seed=5)
    replace_batch(warehouse, "2026-01", **frames)  # type: ignore[arg-type]
    return frames["tables"]["codings"]  # type: ignore[index, no-any-return]


def test_the_codings_filter_runs_in_the_database_and_matches_the_one_in_memory(warehouse: Engine) -> None:
    codings = _loaded(warehouse)
    delivered = list(zip(codings["system"].dropna(), codings["code"].dropna(), strict=False))
    wanted = frozenset(delivered[::3]) | {("http://nowhere", "0")}
    # more pairs than SQLite or PostgreSQL would take as bound parameters
    many = wanted | {(f"http://padding/{k % 7}", str(k)) for k in range(40_000)}
    everything = read_deliveries(warehouse, "codings")
    for pairs in (wanted, many):
        needs = Needs({"codings": None}, codings=pairs)
        got = read_deliveries(warehouse, "codings", codings=pairs)
        expected = everything[needs.keeps(everything)].reset_index(drop=True)
        assert 0 < len(got) < len(everything)
        assert_frame_equal(got, expected, check_exact=True)
        in_memory = Snapshot.of({"codings": everything}, needs=needs)["codings"]
        assert_frame_equal(DeliveryReader(warehouse, needs).snapshot(None)["codings"], in_memory, check_exact=True)
    none = read_deliveries(warehouse, "codings", codings=frozenset())
    assert len(none) == 0 and list(none.columns) == list(everything.columns)


def test_one_shard_of_all_reads_what_no_shard_reads(warehouse: Engine) -> None:
    _loaded(warehouse)
    for name in ("encounters", "codings", "organizations"):
        whole = read_deliveries(warehouse, name)
        assert_frame_equal(read_deliveries(warehouse, name, shard=(0, 1)), whole, check_exact=True)
        halves = pd.concat([read_deliveries(warehouse, name, shard=(k, 2)) for k in range(2)], ignore_index=True)
        if name != "organizations":  # shared reference data: every shard reads it whole
            assert sorted(halves[T.TABLES[name].key]) == sorted(whole[T.TABLES[name].key])


def test_deliveries_come_back_in_source_order_whatever_the_storage_order(warehouse: Engine) -> None:
    frames = batch_frames(40, seed=9)
    tables: dict[str, pd.DataFrame] = frames["tables"]  # type: ignore[assignment]
    # the same rows handed to the warehouse in reverse: what is read back is source order
    backwards = {n: f.iloc[::-1].reset_index(drop=True) for n, f in tables.items()}
    replace_batch(warehouse, "2026-01", **{**frames, "tables": backwards})  # type: ignore[arg-type]
    got = read_deliveries(warehouse, "encounters")
    order = ["source_file", "source_line", "encounter_id"]
    expected = got.sort_values(order, kind="stable", na_position="first").reset_index(drop=True)
    assert len(got) > 10
    assert_frame_equal(got, expected, check_exact=True)
