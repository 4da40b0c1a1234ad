"""tables.conform: the byte-level shortcuts of clean_text agree with its text rule."""

from __future__ import annotations

import random

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.tables.conform import CONTROL_CHARACTERS, REPLACEMENT, clean_text


def _by_the_rule(col: pd.Series) -> pd.Series:
    """The rule as text: every control character replaced, then blank strings null."""
    col = col.str.replace(CONTROL_CHARACTERS, REPLACEMENT, regex=True)
    return col.mask(col.str.strip().eq("").fillna(False))


#: Letters, ASCII and Unicode whitespace, control characters (allowed and not), others.
ALPHABET = ["a", "Z", "中", "é", " ", "\t", "\n", "\r", "\x0b", "\x1c", "\x1f", "\x85", "\u00a0", "\u2003",
            "\u3000", "\u200b", "\ufeff", "\x00", "\x01", "\x7f"]  # fmt: skip


@pytest.mark.parametrize("dtype", ["string", "str", "object"])
def test_clean_text_gives_what_its_rule_gives_for_any_mix_of_characters(dtype: str) -> None:
    rng = random.Random(7)
    for _ in range(200):
        values = [
            None if rng.random() < 0.1 else "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 4)))
            for _ in range(40)
        ]
        col = pd.Series(values, dtype=dtype).astype("string")
        pd.testing.assert_series_equal(clean_text(col), _by_the_rule(col))


def test_clean_text_nulls_blank_and_keeps_text() -> None:
    col = pd.Series(["", "  ", "\u3000", "a b", " x", None, "n\x00l"], dtype="string")
    assert clean_text(col).tolist() == [pd.NA, pd.NA, pd.NA, "a b", " x", pd.NA, "n\ufffdl"]


def test_clean_text_reads_every_chunk_of_an_arrow_column_sliced_or_not() -> None:
    sliced = pa.array(["x", "\x02", " ", "y"])[1:]
    chunks = pa.chunked_array([pa.array(["a", " "]), sliced, pa.array(["", "b\x01"]), pa.array([None, "\u3000"])])
    col = pd.Series(pd.arrays.ArrowStringArray(chunks))
    assert clean_text(col).tolist() == [
        "a", pd.NA, "\ufffd", pd.NA, "y", pd.NA, "b\ufffd", pd.NA, pd.NA
    ]  # fmt: skip
    pd.testing.assert_series_equal(clean_text(col), _by_the_rule(col))
