"""Patient buckets: stable, and everything about one patient lands in their bucket."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.load.shards import SHARD_BUCKETS, SHARED, assign_buckets, bucket_of, bucket_range, shard_count


def test_bucket_of_is_stable_and_spread() -> None:
    ids = pd.Series([f"patient-{i}" for i in range(5000)] + [None], dtype="string")
    buckets = bucket_of(ids)
    # fixed forever: a stored bucket must mean the same thing to every later release
    assert bucket_of(pd.Series(["patient-0"]))[0] == buckets[0]
    assert buckets[-1] == SHARED
    assert 0 <= buckets[:-1].min() and buckets[:-1].max() < SHARD_BUCKETS
    counts = np.bincount([bucket_range_index(b, 4) for b in buckets[:-1]], minlength=4)
    assert counts.min() > 1000  # roughly even quarters


def bucket_range_index(bucket: int, shards: int) -> int:
    return next(k for k in range(shards) if bucket_range(k, shards)[0] <= bucket < bucket_range(k, shards)[1])


def test_bucket_ranges_partition_every_bucket() -> None:
    for shards in (1, 3, 8, SHARD_BUCKETS + 5):
        covered = [b for k in range(shards) for b in range(*bucket_range(k, shards))]
        assert covered == list(range(SHARD_BUCKETS))
    with pytest.raises(ValueError):
        bucket_range(3, 3)
    assert shard_count(0, 100) == 1 and shard_count(250, 100) == 3 and shard_count(10**9, 1) == SHARD_BUCKETS


def test_children_surveys_and_codings_follow_their_patient() -> None:
    encounters = pd.DataFrame({"encounter_id": ["e1", "e2"], "patient_id": ["p1", "p2"]}, dtype="string")
    conditions = pd.DataFrame({"condition_id": ["c1"], "patient_id": ["p2"]}, dtype="string")
    surveys = pd.DataFrame({"response_id": ["r1", "r2", "r3"], "encounter_id": ["e1", "e9", None]}, dtype="string")
    codings = pd.DataFrame(
        {
            "coding_id": ["k1", "k2", "k3"],
            "table_name": ["conditions", "locations", "encounters"],
            "record_id": ["c1", "loc1", "e1"],
            "record_type": [None, None, None],
        },
        dtype="string",
    )
    complaints = pd.DataFrame({"complaint_id": ["x1"]}, dtype="string")
    asked: list[list[str]] = []

    def lookup(table: str, ids: list[str], columns: list[str]) -> pd.DataFrame:
        asked.append(list(ids))
        return pd.DataFrame({"encounter_id": ["e9"], "patient_id": ["p2"]}, dtype="string")

    out = assign_buckets(
        {
            "encounters": encounters,
            "conditions": conditions,
            "survey_responses": surveys,
            "codings": codings,
            "complaints": complaints,
        },
        lookup,
    )
    p1, p2 = bucket_of(pd.Series(["p1", "p2"]))
    assert list(out["encounters"]) == [p1, p2]
    assert list(out["conditions"]) == [p2]
    assert asked == [["e9"]]  # only encounters not in this delivery are looked up
    assert list(out["survey_responses"][:2]) == [p1, p2]
    assert out["survey_responses"][2] == bucket_of(pd.Series(["r3"]))[0]
    assert list(out["codings"]) == [p2, SHARED, p1]
    assert out["complaints"][0] == bucket_of(pd.Series(["x1"]))[0]
