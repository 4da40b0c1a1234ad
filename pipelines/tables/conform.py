"""Rows become typed columns here, once: :func:`conform`.

Extractors build rows as plain values; conforming them to a :class:`TableSpec` is the
single place where text, numbers, booleans and FHIR date/dateTimes become the
contract's dtypes, and where a value that is present but unreadable is reported (so
the row can be quarantined) rather than silently nulled.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.strings import string_bytes
from pipelines.tables.spec import TS, TableSpec

#: FHIR date / dateTime shapes (also accepted in the feedback CSVs): a year, a month, a
#: day, or a day with a time and optionally seconds, fractions and an offset. Anything
#: else ("10/10/2026", an integer 20261010, "20261010") is unreadable, never guessed.
ISO_TIMESTAMP = r"\d{4}(?:-\d{2}(?:-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)?)?"
_HAS_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"
#: C0 control characters other than tab, newline and carriage return, and DEL.
#: PostgreSQL cannot store NUL in text and SQLite can, so both get the same text:
#: each such character becomes U+FFFD (the replacement character), visibly.
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
REPLACEMENT = "\ufffd"


def clean_text(col: pd.Series) -> pd.Series:
    """``col`` (string dtype) with control characters replaced and blank strings null.

    FHIR forbids empty strings ("" is not a value), and a whitespace-only id or code
    would otherwise count as a real one; a NUL would store on SQLite and fail the
    whole month on PostgreSQL.

    Both checks look at the column's bytes first (:func:`_text_bytes`): a control
    character is a byte below 0x20 or 0x7F in UTF-8, and a blank string is empty or
    starts with whitespace; only the strings that could be either are matched as text.
    """
    if not len(col):
        return col
    arrow = _text_bytes(col)
    if arrow is None or arrow.may_hold_control:
        if col.str.contains(CONTROL_CHARACTERS, regex=True).any():
            col = col.str.replace(CONTROL_CHARACTERS, REPLACEMENT, regex=True)
            arrow = _text_bytes(col)
    if arrow is None:
        blank = col.str.strip().eq("").fillna(False)
    else:
        candidates = arrow.may_be_blank
        blank = pd.Series(False, index=col.index)
        if candidates.any():
            blank[candidates] = col[candidates].str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    if blank.any():
        col = col.mask(blank)
    return col


#: First bytes a blank string can start with: ASCII whitespace (and the separators
#: Python counts as whitespace), or any non-ASCII character (Unicode spaces).
_MAY_START_BLANK = np.zeros(256, dtype=bool)
_MAY_START_BLANK[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_MAY_START_BLANK[128:] = True


class _TextBytes:
    """The UTF-8 bytes of an Arrow-backed string column, chunk by chunk (no copy)."""

    def __init__(self, chunks: list[pa.Array]) -> None:
        self.chunks = chunks

    @property
    def may_hold_control(self) -> bool:
        """False only when no value can hold a control character (a buffer may hold
        bytes of no value, which can only say yes wrongly). Scanned in cache-sized
        slices, stopping at the first."""
        step = 1 << 22
        for chunk in self.chunks:
            data, _ = string_bytes(chunk)
            for at in range(0, len(data), step):
                part = data[at : at + step]
                if (part < 0x20).any() or (part == 0x7F).any():
                    return True
        return False

    @property
    def may_be_blank(self) -> np.ndarray:
        """Per value: empty, or starting with a byte a blank string can start with."""
        masks = [np.zeros(0, dtype=bool)]
        for a in self.chunks:
            data, offsets = string_bytes(a)
            starts, empty = offsets[:-1], offsets[1:] == offsets[:-1]
            first = data[np.minimum(starts, len(data) - 1)] if len(data) else np.zeros(len(a), dtype=np.uint8)
            valid = a.is_valid().to_numpy(zero_copy_only=False)
            masks.append(valid & (empty | _MAY_START_BLANK[first]))
        return np.concatenate(masks)


def _text_bytes(col: pd.Series) -> _TextBytes | None:
    if not isinstance(col.array, pd.arrays.ArrowStringArray):
        return None
    array = col.array.__arrow_array__()
    return _TextBytes(list(array.chunks) if isinstance(array, pa.ChunkedArray) else [array])


def _timestamps(raw: pd.Series, zones: pd.Series | str) -> tuple[pd.Series, pd.Series]:
    """Typed timestamps and a mask of present-but-unreadable values (see :func:`conform`).

    Only text in a FHIR date/dateTime shape is parsed; a number or a boolean where a
    date belongs is unreadable (an integer used to become 1970-01-01). Datetimes read
    back from the warehouse are kept as they are: they are already local.
    """
    from pipelines.localtime import to_local

    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        col = raw.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(raw.dt, "tz", None) else raw
        return col.astype(TS), pd.Series(False, index=raw.index)
    present = raw.notna().to_numpy(dtype=bool)
    moments: pd.Series | None = None
    if raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) not in ("string", "empty"):
        # Mixed values (a number or a datetime among the text): sniff each value's type.
        kinds = raw.map(type, na_action="ignore")
        is_text = kinds.eq(str).fillna(False).to_numpy(dtype=bool)
        is_moment = kinds.map(lambda k: isinstance(k, type) and issubclass(k, datetime)).fillna(False)
        is_moment = is_moment.to_numpy(dtype=bool)
        if is_moment.any():
            moments = pd.to_datetime(raw.where(is_moment), errors="coerce")
            if getattr(moments.dt, "tz", None) is not None:
                moments = moments.dt.tz_convert("UTC").dt.tz_localize(None)
        text = raw.where(is_text).astype("string")
        not_text = present & ~is_text & ~is_moment
    else:
        text = raw.astype("string")
        not_text = np.zeros(len(raw), dtype=bool)
    text = text.str.strip()
    shaped = text.str.fullmatch(ISO_TIMESTAMP).to_numpy(dtype=bool, na_value=False)
    parsed = pd.to_datetime(text.where(shaped), errors="coerce", utc=True, format="ISO8601")
    col = parsed.dt.tz_localize(None).astype(TS)
    if not (isinstance(zones, str) and zones == "UTC"):  # UTC is what parsing already gave
        offset = shaped & text.str.contains(_HAS_OFFSET, regex=True).to_numpy(dtype=bool, na_value=False)
        if offset.any():
            local = to_local(col[offset], zones if isinstance(zones, str) else zones[offset])
            col = col.copy()
            col[offset] = local.to_numpy()
    if moments is not None:
        col = col.where(~pd.Series(is_moment, index=col.index), moments.astype(TS))
    blank = text.eq("").to_numpy(dtype=bool, na_value=False)
    bad = (present & ~blank & col.isna().to_numpy(dtype=bool)) | not_text
    return col, pd.Series(bad, index=raw.index)


def _unreadable(raw: pd.Series, col: pd.Series) -> pd.Series:
    """Values present in ``raw`` (not blank text) that ``col`` could not hold. Only the
    values that became null are looked at as text."""
    lost = raw.notna().to_numpy(dtype=bool) & col.isna().to_numpy(dtype=bool)
    bad = pd.Series(False, index=raw.index)
    if lost.any():
        bad[lost] = ~raw[lost].astype("string").str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    return bad


def conform(
    df: pd.DataFrame, spec: TableSpec, *, zones: pd.Series | str | None = None, clean: bool = True
) -> tuple[pd.DataFrame, pd.Series]:
    """Return ``df`` with exactly the spec's columns (missing ones null) and dtypes,
    plus a per-row string naming every value that could not be converted.

    Extractors build rows as plain dicts; this is the single place where they become
    typed columns, so that a source lacking an optional field still yields the table
    shape every later stage expects. A value that is present but unreadable (a date
    like ``2026-13-45`` or ``20261010``, ``"abc"`` in a number column) is never
    silently turned into a null: the second return value says which row and field, so
    the caller can quarantine the row (``""`` means the row converted cleanly).

    ``zones`` (one IANA zone, or one per row) is the facility's clock: timestamps that
    carry an offset are converted to its wall-clock time (:mod:`pipelines.localtime`);
    without ``zones`` they are converted to UTC. Timestamps without an offset are kept
    as written. Text loses control characters and blank strings (:func:`clean_text`),
    unless ``clean`` is False (rows read back from the warehouse were cleaned on the way
    in).
    """
    out = pd.DataFrame(index=df.index)
    failures = pd.Series("", index=df.index, dtype="object")
    for name, dtype in spec.dtypes.items():
        raw = df[name] if name in df.columns else pd.Series(pd.NA, index=df.index, dtype="object")
        if dtype == TS:
            col, bad = _timestamps(raw, zones if zones is not None else "UTC")
        elif dtype != "string" and raw.dtype == dtype:
            # Already typed (rows read back from the warehouse): every value is one of
            # the dtype's, so none can be unreadable, and checking would format each
            # number as text.
            col, bad = raw, pd.Series(False, index=df.index)
        elif dtype in ("Int64", "Float64"):
            col = pd.to_numeric(raw, errors="coerce")
            if dtype == "Int64":
                frac = col.notna() & (col != col.round())
                col = col.mask(frac)
            col = col.astype(dtype)
            bad = _unreadable(raw, col)
        elif dtype == "string":
            col = raw.astype(dtype)
            if clean:
                col = clean_text(col)
            bad = pd.Series(False, index=df.index)
        else:
            col = raw.astype(dtype)
            bad = _unreadable(raw, col)
        bad = bad.fillna(False).astype(bool)
        if bad.any():
            failures[bad] = failures[bad] + f"unreadable {dtype} value in {name}; "
        out[name] = col
    said = failures.ne("")
    if said.any():
        failures[said] = failures[said].str.rstrip("; ")
    return out.reset_index(drop=True), failures.reset_index(drop=True)


__all__ = ["CONTROL_CHARACTERS", "ISO_TIMESTAMP", "REPLACEMENT", "clean_text", "conform"]
