"""Case-mix factors: what each band means, and that reading the records one patient
shard at a time gives exactly the factors of the whole system."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.analyse.case_mix import UNKNOWN, case_mix, case_mix_by_shard
from pipelines.load.shards import bucket_of, bucket_range


def _system(patients: int = 60, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Patients with several stays and diagnoses each; subjects are some of the stays,
    plus one whose stay was never delivered."""
    rng = np.random.default_rng(seed)
    pid = [f"p{i}" for i in range(patients)]
    births = pd.to_datetime("1930-01-01") + pd.to_timedelta(rng.integers(0, 90 * 365, patients), unit="D")
    pats = pd.DataFrame(
        {
            "patient_id": pid,
            "birth_date": births,
            "gender": rng.choice(np.array(["female", "male", None], dtype=object), patients),
        }
    )
    stays = []
    for i, p in enumerate(pid):
        for n in range(int(rng.integers(1, 4))):
            start = pd.Timestamp("2026-01-01") + pd.Timedelta(days=int(rng.integers(0, 280)))
            stays.append((f"e{i}-{n}", p, start, start + pd.Timedelta(days=int(rng.integers(1, 9))),
                          rng.choice(np.array(["EM", "el", "UR", None], dtype=object))))  # fmt: skip
    enc = pd.DataFrame(stays, columns=["encounter_id", "patient_id", "start_at", "end_at", "priority"])
    conds = pd.DataFrame({
        "patient_id": rng.choice(pid, patients * 4),
        "code": rng.choice(["I10", "E11", "J44", "N18", "F32"], patients * 4),
        "onset_at": pd.Timestamp("2025-06-01") + pd.to_timedelta(rng.integers(0, 500, patients * 4), unit="D"),
        "recorded_at": pd.NaT,
    })  # fmt: skip
    conds.loc[::7, "onset_at"] = pd.NaT  # only recorded, or neither: counted as known before
    conds.loc[::14, "recorded_at"] = pd.Timestamp("2026-03-01")
    chosen = enc.sample(frac=0.6, random_state=seed)
    subjects = pd.DataFrame({"subject_id": [*chosen["encounter_id"], "never-delivered"],
                             "service": [*rng.choice(["medicine", "surgery"], len(chosen)), "medicine"]})  # fmt: skip
    return subjects, enc, pats, conds


def _shards(enc: pd.DataFrame, pats: pd.DataFrame, conds: pd.DataFrame, count: int) -> list[dict[str, pd.DataFrame]]:
    """The records split by patient bucket, as the warehouse shards them."""

    def inside(frame: pd.DataFrame, low: int, high: int) -> pd.DataFrame:
        buckets = bucket_of(frame["patient_id"])
        return frame[(buckets >= low) & (buckets < high)]

    return [
        {
            name: inside(f, *bucket_range(k, count))
            for name, f in (("encounters", enc), ("patients", pats), ("conditions", conds))
        }  # fmt: skip
        for k in range(count)
    ]


def test_factors_are_read_from_the_stay_and_the_patients_record() -> None:
    enc = pd.DataFrame({"encounter_id": ["e1"], "patient_id": ["p1"], "start_at": [pd.Timestamp("2026-05-10")],
                        "end_at": [pd.Timestamp("2026-05-20")], "priority": ["em"]})  # fmt: skip
    pats = pd.DataFrame({"patient_id": ["p1"], "birth_date": [pd.Timestamp("1951-05-11")], "gender": ["Female"]})
    conds = pd.DataFrame({"patient_id": ["p1"] * 4, "code": ["I10", "I10", "E11", "J44"],
                          "onset_at": [pd.Timestamp("2020-01-01"), pd.NaT, pd.Timestamp("2026-05-15"),
                                       pd.Timestamp("2026-06-01")],
                          "recorded_at": [pd.NaT, pd.Timestamp("2021-01-01"), pd.NaT, pd.NaT]})  # fmt: skip
    row = case_mix(pd.DataFrame({"subject_id": ["e1"], "service": ["medicine"]}), enc, pats, conds).iloc[0]
    # 74 on 10 May 2026, a day short of 75 (band 75-84); I10 once (twice recorded) and E11 before the stay ended.
    assert row.to_dict() == {"subject_id": "e1", "age_band": "65-74", "sex": "female", "comorbidity_band": "2-3",
                             "admission_type": "emergency", "service": "medicine"}  # fmt: skip


@pytest.mark.parametrize("count", [1, 3, 8])
def test_shard_by_shard_equals_the_whole_system(count: int) -> None:
    subjects, enc, pats, conds = _system()
    whole = case_mix(subjects, enc, pats, conds)
    # the comparison covers real factors, not only unknowns
    assert whole["comorbidity_band"].nunique() > 2 and whole["age_band"].nunique() > 2
    assert whole.iloc[-1]["age_band"] == UNKNOWN  # the stay never delivered
    reference = subjects.iloc[::2].reset_index(drop=True)
    got = case_mix_by_shard({"current": subjects, "reference": reference}, iter(_shards(enc, pats, conds, count)))
    pd.testing.assert_frame_equal(got["current"], whole)
    pd.testing.assert_frame_equal(got["reference"], case_mix(reference, enc, pats, conds))


def test_no_subjects_and_no_shards() -> None:
    subjects, enc, pats, conds = _system()
    none = subjects.iloc[:0]
    got = case_mix_by_shard({"x": none}, _shards(enc, pats, conds, 2))
    pd.testing.assert_frame_equal(got["x"], case_mix(none, enc, pats, conds))
    with pytest.raises(ValueError, match="at least one shard"):
        case_mix_by_shard({"x": subjects}, [])
