"""Patient shards: how the warehouse is split so compute can evaluate a slice at a time.

Every patient-scoped row is stamped at load with a ``bucket``, a stable hash of its
patient's id into :data:`SHARD_BUCKETS` buckets. A shard is a contiguous range of
buckets, so any shard count partitions the patients, and everything one patient's
measures look at (encounters, claims, codings, survey responses about their stays)
lands in the patient's shard: an eCQM never joins across patients, so evaluating each
shard population-at-once and concatenating the per-subject rows gives exactly the
whole-system result, whatever the shard count.

Where the patient comes from:

* tables with ``patient_id``: that patient (a row without one: its own key, so it
  still belongs to exactly one shard);
* ``codings``: the patient of the record they code (always delivered with it);
* ``survey_responses``: the patient of the surveyed encounter (in this delivery or
  loaded earlier), else the encounter id itself. When a response and its encounter end
  up apart (the response came first, or a merge later moved the encounter), the load
  records the encounter as moved and a shard reads the response where the encounter
  lives at the horizon (:class:`pipelines.load.snapshot.Snapshot`);
* ``complaints``: their own id (complaints name no patient);
* ``organizations`` and ``locations`` are shared reference data, read by every shard
  (``bucket`` is NULL there, as on the codings of their records).

A record is re-sent under another patient when a source merges two patients: its new
delivery lands in the surviving patient's bucket while the earlier ones stay where they
were. The load records such moves, and every shard the record passed through reads
all of its deliveries and keeps the record only if the latest is its own
(:data:`MOVABLE_TABLES`), so the record is counted once, where it lives at each horizon.

The hash is BLAKE2b of the UTF-8 id, not Python's ``hash`` (salted per process) nor
pandas' hashing (an implementation detail): a bucket written today must mean the same
bucket for every later release reading the warehouse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines import tables as T

#: Buckets patients hash into. Fixed for the life of a warehouse (stored per row); a
#: shard count above it gets empty shards, never wrong ones.
SHARD_BUCKETS = 1024
#: The warehouse column holding each row's bucket.
BUCKET = "bucket"
#: The bucket of a shared row (NULL in the warehouse): every shard reads it.
SHARED = -1
#: Reference tables every shard reads whole.
SHARED_TABLES = frozenset({"organizations", "locations"})
#: Tables partitioned by patient.
SHARDED_TABLES = tuple(name for name in T.TABLES if name not in SHARED_TABLES)
#: Tables where two deliveries of one record can land in different buckets: a source
#: that merges two patients re-sends the one's encounters under the other. A patient or
#: complaint hashes its own id (it never moves); a child row follows its record (the read
#: model keeps a record's children of its latest delivery only). The load records each
#: move (``moved_records``) so every shard the record passed through reads all of its
#: deliveries and keeps it only where its latest delivery lives.
MOVABLE_TABLES = tuple(n for n in SHARDED_TABLES if n not in T.CHILD_TABLES and n not in ("patients", "complaints"))

#: Looks up stored encounters' patients: (table, ids, columns) -> frame with the key
#: and ``columns`` (:func:`pipelines.load.snapshot.lookup_records`).
Lookup = Callable[[str, Sequence[str], Sequence[str]], pd.DataFrame]


def bucket_of(ids: pd.Series) -> np.ndarray:
    """The bucket of each id (int16; :data:`SHARED` where the id is missing). Each
    distinct id is hashed once."""
    codes, uniques = pd.factorize(ids.astype("string"), use_na_sentinel=True)
    hashed = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "little") % SHARD_BUCKETS
            for u in uniques
        ),
        dtype=np.int16,
        count=len(uniques),
    )
    out = np.full(len(codes), SHARED, dtype=np.int16)
    known = codes >= 0
    out[known] = hashed[codes[known]]
    return out


def _own_key(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[T.TABLES[name].key].astype("string")


def _by_patient(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Patient's bucket, else (no patient on the row) the record's own key's."""
    patient = frame["patient_id"].astype("string")
    return bucket_of(patient.fillna(_own_key(frame, name)))


def assign_buckets(frames: Mapping[str, pd.DataFrame], lookup: Lookup) -> dict[str, np.ndarray]:
    """The bucket of every row of one delivery's sharded tables (aligned with each
    frame's rows). ``lookup`` resolves survey responses about encounters delivered in
    an earlier batch."""
    out: dict[str, np.ndarray] = {}
    record_bucket: dict[str, pd.Series] = {}
    for name in SHARDED_TABLES:
        frame = frames.get(name)
        if frame is None or name in ("codings", "survey_responses", "complaints"):
            continue
        buckets = _by_patient(frame, name)
        out[name] = buckets
        record_bucket[name] = pd.Series(buckets, index=(name + ":" + T.record_keys(name, frame)).to_numpy())

    complaints = frames.get("complaints")
    if complaints is not None:
        out["complaints"] = bucket_of(_own_key(complaints, "complaints"))

    surveys = frames.get("survey_responses")
    if surveys is not None:
        encounter = surveys["encounter_id"].astype("string")
        delivered = frames.get("encounters")
        patients = pd.Series(dtype="string")
        if delivered is not None and len(delivered):
            patients = delivered.drop_duplicates("encounter_id", keep="last").set_index("encounter_id")["patient_id"]
        missing = sorted(set(encounter.dropna()) - set(patients.index))
        if missing:
            stored = lookup("encounters", missing, ["patient_id"])
            patients = pd.concat([patients, stored.set_index("encounter_id")["patient_id"]])
        patient = encounter.map(patients).astype("string")
        out["survey_responses"] = bucket_of(patient.fillna(encounter).fillna(_own_key(surveys, "survey_responses")))

    codings = frames.get("codings")
    if codings is not None:
        parents = pd.concat(record_bucket.values()) if record_bucket else pd.Series(dtype=np.int16)
        parents = parents[~parents.index.duplicated(keep="last")]
        keys = codings["table_name"].astype("string") + ":" + T.coding_record_keys(codings)
        found = keys.map(parents)
        own = pd.Series(bucket_of(codings["record_id"]), index=codings.index)
        shared = codings["table_name"].isin(SHARED_TABLES).to_numpy(dtype=bool, na_value=False)
        own[shared] = SHARED
        out["codings"] = found.fillna(own).to_numpy(dtype=np.int16)
    return out


def bucket_range(shard: int, shards: int) -> tuple[int, int]:
    """The buckets ``[low, high)`` of shard ``shard`` (0-based) of ``shards``."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}: expected 0 <= shard < shards")
    return shard * SHARD_BUCKETS // shards, (shard + 1) * SHARD_BUCKETS // shards


def shard_count(patients: int, shard_patients: int) -> int:
    """How many shards keep each near ``shard_patients`` patients (at least one)."""
    return max(1, min(SHARD_BUCKETS, -(-patients // max(shard_patients, 1))))


__all__ = [
    "BUCKET",
    "MOVABLE_TABLES",
    "SHARED",
    "SHARDED_TABLES",
    "SHARD_BUCKETS",
    "SHARED_TABLES",
    "assign_buckets",
    "bucket_of",
    "bucket_range",
    "shard_count",
]
