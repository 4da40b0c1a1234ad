"""Arrow string columns: membership and lookup by hash, for every layer.

pandas' own ``isin`` and ``Series.map`` on Arrow-backed strings box every value into a
Python object, which dominates when matching hundreds of thousands of ids against ids
(a shard's codings against their records, a report's subjects against a shard). Arrow
hashes the buffers instead. The read model, compute and the report all match ids this
way, so the helpers live here, below all of them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import ExtensionArray


def arrow_strings(values: pd.Series) -> pa.Array:
    """One contiguous Arrow string array (a pandas column may hold several chunks)."""
    array = pa.array(values.astype("string"), type=pa.large_string())
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def string_bytes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, value offsets: len + 1 of them) of one Arrow string array, without
    copying: what a check on every value's bytes (a control byte, a first or last byte)
    reads instead of boxing each value. The bytes may extend past the values'."""
    data = array.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=width)[array.offset : array.offset + len(array) + 1]
    return raw, offsets.astype(np.int64)


def isin(s: pd.Series, values: Iterable[str] | pd.Series | np.ndarray | ExtensionArray) -> np.ndarray:
    """Membership of a string column in a (possibly large) set of strings; nulls never match.

    Arrays are passed through as they are: listing an Arrow-backed array of candidates
    would box every value, the cost this avoids."""
    if not isinstance(values, pd.Series | np.ndarray | ExtensionArray):
        values = list(values)
    candidates = arrow_strings(pd.Series(values, dtype="string").dropna())
    if len(s) == 0 or len(candidates) == 0:
        return np.zeros(len(s), dtype=bool)
    hit = pc.is_in(arrow_strings(s), value_set=candidates, skip_nulls=True)
    return np.array(hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def positions(s: pd.Series, among: pd.Series) -> np.ndarray:
    """Where each value of ``s`` first occurs in ``among`` (-1: nowhere, or missing)."""
    if len(s) == 0 or len(among) == 0:
        return np.full(len(s), -1, dtype=np.int64)
    found = pc.index_in(arrow_strings(s), value_set=arrow_strings(among), skip_nulls=True)
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


__all__ = ["arrow_strings", "isin", "positions", "string_bytes"]
