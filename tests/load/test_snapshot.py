"""The read model's warehouse reads: the value-set filter on ``codings`` runs in the
database and keeps exactly the rows the in-memory filter keeps, at any size; one shard
of all reads the same as no shard."""

from __future__ import annotations

import pandas as pd
from pandas.testing import assert_frame_equal
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.load import DeliveryReader, Needs, read_deliveries, replace_batch
from pipelines.load.shards import bucket_of, bucket_range
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


def _corrected_encounter() -> dict[str, pd.DataFrame]:
    """Encounter E1 delivered in 2026-09 with two diagnoses and two type codings, then
    corrected in 2026-10 with one of each (E2 is delivered once, untouched)."""
    batch = lambda *b: pd.Series(b, dtype="string")  # noqa: E731
    encounters = pd.DataFrame(
        {
            "encounter_id": ["E1", "E2", "E1"],
            "patient_id": ["P1", "P2", "P1"],
            "batch": batch("2026-09", "2026-09", "2026-10"),
        }
    )
    diagnoses = pd.DataFrame(
        {
            "encounter_diagnosis_id": ["E1/diagnosis/0", "E1/diagnosis/1", "E2/diagnosis/0", "E1/diagnosis/0"],
            "encounter_id": ["E1", "E1", "E2", "E1"],
            "condition_id": ["C1", "C2", "C3", "C1"],
            "batch": batch("2026-09", "2026-09", "2026-09", "2026-10"),
        }
    )
    codings = pd.DataFrame(
        {
            "coding_id": [f"encounters/{r}/type/{n}" for r, n in (("E1", 0), ("E1", 1), ("E2", 0), ("E1", 0))],
            "table_name": "encounters",
            "record_id": ["E1", "E1", "E2", "E1"],
            "element": "type",
            "system": "http://snomed.info/sct",
            "code": ["a", "b", "x", "c"],
            "batch": batch("2026-09", "2026-09", "2026-09", "2026-10"),
        }
    )
    return {"encounters": encounters, "encounter_diagnoses": diagnoses, "codings": codings}


def test_a_corrected_record_withdraws_the_children_its_new_delivery_left_out() -> None:
    frames = _corrected_encounter()
    now = Snapshot.of(frames, "2026-10")
    assert sorted(now["codings"]["code"]) == ["c", "x"]
    assert sorted(now["encounter_diagnoses"]["condition_id"]) == ["C1", "C3"]
    # as known at the earlier horizon, both of E1's first children still stand
    then = Snapshot.of(frames, "2026-09")
    assert sorted(then["codings"]["code"]) == ["a", "b", "x"]
    assert sorted(then["encounter_diagnoses"]["condition_id"]) == ["C1", "C2", "C3"]
    # without the parent table there is nothing to judge by: each child's own latest stands
    alone = Snapshot.of({"codings": frames["codings"]}, "2026-10")
    assert sorted(alone["codings"]["code"]) == ["b", "c", "x"]
    # a child whose parent is not in the snapshot (quarantined, never delivered) is not current
    orphan = Snapshot.of({**frames, "encounters": frames["encounters"].iloc[[0, 2]]}, "2026-10")
    assert sorted(orphan["codings"]["code"]) == ["c"]


def _in_shard(shard: int, shards: int, prefix: str) -> str:
    """The first id ``<prefix><n>`` whose bucket falls in ``shard`` of ``shards``."""
    low, high = bucket_range(shard, shards)
    ids = pd.Series([f"{prefix}{n}" for n in range(200)], dtype="string")
    return str(ids[(bucket_of(ids) >= low) & (bucket_of(ids) < high)].iloc[0])


def _load(
    warehouse: Engine,
    batch: str,
    encounters: list[tuple[str, str, str]],
    surveys: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> None:
    """One batch: both patients, and (encounter, patient, type code) with one coding and
    one diagnosis each; and (response, encounter) survey returns."""
    rows = pd.DataFrame(encounters, columns=["encounter_id", "patient_id", "code"])
    patients = sorted({p for _, p, _ in encounters} | {A, B})
    tables = {
        "patients": pd.DataFrame({"patient_id": patients}),
        "encounters": rows[["encounter_id", "patient_id"]].assign(status="finished"),
        "encounter_diagnoses": rows.assign(
            encounter_diagnosis_id=rows["encounter_id"] + "/diagnosis/0", condition_id="C-" + rows["code"]
        )[["encounter_diagnosis_id", "encounter_id", "patient_id", "condition_id"]].assign(element="diagnosis"),
        "codings": rows.assign(
            coding_id="encounters/" + rows["encounter_id"] + "/type/0",
            table_name="encounters",
            record_id=rows["encounter_id"],
            element="type",
            system="http://snomed.info/sct",
        )[["coding_id", "table_name", "record_id", "element", "system", "code"]],
    }
    if surveys:
        tables["survey_responses"] = pd.DataFrame(list(surveys), columns=["response_id", "encounter_id"]).assign(
            facility_id="F1", recommend=1
        )
    empty = {"quarantine": T.QUARANTINE, "reconciliation": T.RECONCILIATION, "checks": T.VALIDATION_CHECKS}
    replace_batch(warehouse, batch, tables=tables, **{k: T.empty_frame(v) for k, v in empty.items()})


A, B = _in_shard(0, 2, "pa-"), _in_shard(1, 2, "pb-")


def _views(warehouse: Engine, horizon: str) -> tuple[Snapshot, list[Snapshot]]:
    needs = Needs({n: None for n in ("patients", "encounters", "encounter_diagnoses", "codings", "survey_responses")})
    whole = DeliveryReader(warehouse, needs).snapshot(horizon)
    return whole, [DeliveryReader(warehouse, needs, shard=(k, 2)).snapshot(horizon) for k in range(2)]


def _assert_partition(whole: Snapshot, shards: list[Snapshot]) -> None:
    for table in ("encounters", "encounter_diagnoses", "codings", "survey_responses"):
        key = T.TABLES[table].key
        combined = pd.concat([s[table] for s in shards], ignore_index=True).sort_values(key, ignore_index=True)
        assert_frame_equal(combined, whole[table].sort_values(key, ignore_index=True), check_exact=True)


def test_a_record_moved_to_another_patient_shard_is_counted_once_where_it_now_lives(warehouse: Engine) -> None:
    # a patient merge: E1 of patient A (shard 0) is re-sent under patient B (shard 1)
    _load(warehouse, "2026-09", [("E1", A, "111"), ("E2", A, "222")])
    _load(warehouse, "2026-10", [("E1", B, "333")])
    for horizon, e1_patient, e1_code in (("2026-09", A, "111"), ("2026-10", B, "333")):
        whole, shards = _views(warehouse, horizon)
        _assert_partition(whole, shards)
        home = shards[0 if e1_patient == A else 1]
        e1 = home["encounters"].set_index("encounter_id").loc["E1"]
        assert e1["patient_id"] == e1_patient and e1["batch"] == horizon
        assert set(home["codings"].query("record_id == 'E1'")["code"]) == {e1_code}
    # the source undoes the merge: reloading the batch leaves no trace of the move
    _load(warehouse, "2026-10", [("E1", A, "444")])
    whole, shards = _views(warehouse, "2026-10")
    _assert_partition(whole, shards)
    assert set(shards[0]["codings"]["code"]) == {"444", "222"} and not len(shards[1]["encounters"])


def test_a_survey_response_is_read_in_the_shard_where_its_encounter_lives(warehouse: Engine) -> None:
    # S1 is about E1 before a merge moves E1 from patient A (shard 0) to B (shard 1);
    # S2 arrives before its encounter E9, stamped by E9's own id (shard 0), and E9 then
    # arrives under B. Neither response is sent again.
    e9 = _in_shard(0, 2, "e9-")
    _load(warehouse, "2026-09", [("E1", A, "111")], surveys=[("S1", "E1"), ("S2", e9)])
    _load(warehouse, "2026-10", [("E1", B, "333"), (e9, B, "999")])
    for horizon, home in (("2026-09", 0), ("2026-10", 1)):
        whole, shards = _views(warehouse, horizon)
        _assert_partition(whole, shards)
        assert "S1" in set(shards[home]["survey_responses"]["response_id"])
    whole, shards = _views(warehouse, "2026-10")
    assert set(shards[1]["survey_responses"]["response_id"]) == {"S1", "S2"}
    assert set(shards[1]["encounters"]["encounter_id"]) == {"E1", e9}


def test_horizons_past_the_reader_s_last_batch_share_one_snapshot(warehouse: Engine) -> None:
    """A monthly run evaluates its month and the revision months from horizons past
    the last batch loaded: they all see the same deliveries, so they get one snapshot
    (its settled frames); an earlier horizon still sees only what it knew."""
    replace_batch(warehouse, "2026-01", **batch_frames(20, seed=1))  # type: ignore[arg-type]
    replace_batch(warehouse, "2026-02", **batch_frames(20, seed=2, prefix="later"))  # type: ignore[arg-type]
    reader = DeliveryReader(warehouse, Needs({"encounters": None}), upto_batch="2026-02")
    last = reader.snapshot("2026-02")
    assert reader.snapshot("2026-04") is last and reader.snapshot(None) is last
    earlier = reader.snapshot("2026-01")["encounters"]
    assert not earlier["encounter_id"].str.startswith("later").any()
    assert last["encounters"]["encounter_id"].str.startswith("later").any()
    alone = DeliveryReader(warehouse, Needs({"encounters": None}), upto_batch="2026-02").snapshot("2026-03")
    assert_frame_equal(reader.snapshot("2026-03")["encounters"], alone["encounters"], check_exact=True)
