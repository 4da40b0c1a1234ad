"""The FHIR element readers of :mod:`~pipelines.extract.elements`, over Arrow columns.

Each function here gives, for a whole column of resources at once, exactly what its
namesake in ``elements`` / ``references`` / ``children`` gives for one resource, on the
shapes an explicit pyarrow JSON schema admits (:mod:`~pipelines.extract.columnar`: an
element of another shape makes pyarrow refuse the file, and a file with a JSON null is
never read here, so "absent" and "null" are the same thing). Anything rarer than the
common case (a reference that is not ``Type/id``) is handed to the per-resource function
itself, value by value, so there is one rule and two speeds, never two rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.extract.references import ref_display, ref_id
from pipelines.strings import string_bytes

STRING = pa.string()
CODING = pa.struct([("system", STRING), ("code", STRING)])
#: A CodeableConcept, or a bare Coding where R4 puts one (elements.first_coding reads both).
CONCEPT = pa.struct([("coding", pa.list_(CODING)), ("system", STRING), ("code", STRING)])
REFERENCE = pa.struct([("reference", STRING), ("identifier", pa.struct([("value", STRING)])), ("display", STRING)])
PERIOD = pa.struct([("start", STRING), ("end", STRING)])


def whole(array: Any) -> Any:
    """One contiguous array (pyarrow's reader gives a table's columns in chunks)."""
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def field(array: Any, *path: str) -> pa.Array:
    """``array.a.b``: null wherever any step is absent."""
    for name in path:
        array = pc.struct_field(array, name)
    return array


def first(lists: pa.Array) -> pa.Array:
    """Item 0 of each list (elements.first_item): null for a null or an empty list."""
    lists = whole(lists)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    starts = np.asarray(lists.offsets)[:-1].astype(np.int64)
    index = pa.array(starts, mask=lengths == 0)
    return lists.values.take(index)


def first_coding(concept: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(code, system) of coding[0]; a concept without ``coding`` is read as a bare Coding."""
    codings = field(concept, "coding")
    bare = pc.is_null(codings)
    item = first(codings)
    code = pc.if_else(bare, field(concept, "code"), field(item, "code"))
    system = pc.if_else(bare, field(concept, "system"), field(item, "system"))
    return code, system


def first_code(concept: pa.Array) -> pa.Array:
    return first_coding(concept)[0]


def _simple_ids(text: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Which references are plainly ``Type/id`` (a type of letters, an id without ``/``,
    ``?`` or surrounding whitespace, so references._id_from_text gives the id as it
    stands), and those ids. Found by splitting at the first ``/``, no regular expression."""
    text = whole(text)
    parts = pc.split_pattern(text, "/", max_splits=1)
    two = pc.fill_null(pc.equal(pc.list_value_length(parts), 2), False).to_numpy(zero_copy_only=False)
    starts = np.asarray(parts.offsets)[:-1].astype(np.int64)
    values = parts.values
    kind = values.take(pa.array(starts, mask=~two))
    ident = values.take(pa.array(starts + 1, mask=~two))
    types = [t for t in pc.unique(kind).to_pylist() if t is not None and t.isascii() and t.isalpha()]
    ok = two & pc.fill_null(pc.is_in(kind, pa.array(types, STRING)), False).to_numpy(zero_copy_only=False)
    for mark in ("?", "/"):
        ok &= pc.fill_null(pc.equal(pc.find_substring(ident, mark), -1), False).to_numpy(zero_copy_only=False)
    ok &= pc.fill_null(pc.greater(pc.binary_length(ident), 0), False).to_numpy(zero_copy_only=False)
    # The last byte must be plain ASCII that is not whitespace (strip would change it).
    raw, offsets = string_bytes(whole(ident))
    if len(raw) and ok.any():
        last = raw[np.clip(offsets[1:] - 1, 0, len(raw) - 1)]
        ok &= (last > 0x20) & (last < 0x7F)
    return ok, pc.if_else(pa.array(ok), ident, pa.scalar(None, STRING))


def ref_ids(reference: pa.Array) -> pa.Array:
    """references.ref_id of every Reference: ``Type/id`` by kernels, any other spelling
    (``urn:uuid:``, absolute, conditional, identifier-only, blank) by ref_id itself."""
    text = field(reference, "reference")
    simple, ids = _simple_ids(text)
    others = np.flatnonzero(~simple & reference.is_valid().to_numpy(zero_copy_only=False))
    if not len(others):
        return ids
    texts = text.take(pa.array(others)).to_pylist()
    values = field(reference, "identifier", "value").take(pa.array(others)).to_pylist()
    found = [ref_id({"reference": t, "identifier": {"value": v}}) for t, v in zip(texts, values, strict=True)]
    mask = np.zeros(len(text), dtype=bool)
    mask[others] = True
    return pc.replace_with_mask(ids, pa.array(mask), pa.array(found, STRING))


def ref_displays(reference: pa.Array) -> pa.Array:
    """references.ref_display of every Reference: the display unless it is blank (text
    without a letter or digit is judged by ref_display itself: Python's whitespace)."""
    display = field(reference, "display")
    plain = pc.fill_null(pc.match_substring_regex(display, r"[A-Za-z0-9]"), False).to_numpy(zero_copy_only=False)
    others = np.flatnonzero(~plain & display.is_valid().to_numpy(zero_copy_only=False))
    if not len(others):
        return display
    out = display.to_pylist()
    for i in others.tolist():
        out[i] = ref_display({"display": out[i]})
    return pa.array(out, STRING)


def numbered(owner: np.ndarray) -> np.ndarray:
    """1, 2, ... within each run of equal owners (owners in order)."""
    if not len(owner):
        return np.zeros(0, dtype=np.int64)
    start = np.ones(len(owner), dtype=bool)
    start[1:] = owner[1:] != owner[:-1]
    group = np.flatnonzero(start)
    return np.arange(len(owner)) - np.repeat(group, np.diff(np.append(group, len(owner)))) + 1


def first_where(owner: np.ndarray, hit: np.ndarray, n: int) -> pa.Array:
    """Per record (0..n-1), the index of its first item with ``hit`` (owner[i] is item
    i's record, items in order), null when it has none: indices to ``take`` with."""
    pick = np.full(n, -1, dtype=np.int64)
    if hit.any():
        owners, at = np.unique(owner[hit], return_index=True)
        pick[owners] = np.flatnonzero(hit)[at]
    return pa.array(pick, mask=pick < 0)


def first_extension(extensions: pa.Array, matches: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Per resource, its first extension whose url ``matches`` (null when none does)."""
    extensions = whole(extensions)
    flat = pc.list_flatten(extensions)
    owner = pc.list_parent_indices(extensions).to_numpy()
    hit = pc.fill_null(matches(field(flat, "url")), False).to_numpy(zero_copy_only=False)
    return flat.take(first_where(owner, hit, len(extensions)))


def extension_code(extensions: pa.Array, url: str) -> pa.Array:
    """elements.extension_code(elements.find_extension(r, url)) for every resource: the
    first extension with this url decides, by its first value[x] present."""
    chosen = first_extension(extensions, lambda urls: pc.equal(urls, url))
    concept = field(chosen, "valueCodeableConcept")
    coding = field(chosen, "valueCoding")
    return pc.if_else(
        concept.is_valid(),
        first_code(concept),
        pc.if_else(coding.is_valid(), field(coding, "code"), field(chosen, "valueCode")),
    )


#: Extension elements as read here: the url and the value[x] forms extension_code reads.
EXTENSION = pa.struct(
    [
        ("url", STRING),
        ("valueCodeableConcept", CONCEPT),
        ("valueCoding", CODING),
        ("valueCode", STRING),
        ("valueDateTime", STRING),
    ]
)


def concept_codings(concepts: pa.Array, owner: np.ndarray) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Every coding of ``concepts`` (CodeableConcepts, owner[i] the record of concept i),
    in order (children._codings_of): the ``coding`` list, else the concept itself when it
    is a bare Coding. Returns (record of each coding, system, code)."""
    concepts = whole(concepts)
    codings = field(concepts, "coding")
    listed_concept = pc.list_parent_indices(codings).to_numpy()
    listed = pc.list_flatten(codings)
    listed_owner = owner[listed_concept]
    valid = lambda a: a.is_valid().to_numpy(zero_copy_only=False)  # noqa: E731
    bare = pc.is_null(codings).to_numpy(zero_copy_only=False) & valid(concepts)
    bare &= valid(field(concepts, "code")) | valid(field(concepts, "system"))
    bare_concept = np.flatnonzero(bare)
    if not len(bare_concept):
        return listed_owner, field(listed, "system"), field(listed, "code")
    which = pa.array(bare_concept)
    order = pa.array(np.argsort(np.concatenate([listed_concept, bare_concept]), kind="stable"))
    records = np.concatenate([listed_owner, owner[bare_concept]])[order.to_numpy()]
    system, code = (
        pa.concat_arrays([field(listed, name), field(concepts, name).take(which)]).take(order)
        for name in ("system", "code")
    )
    return records, system, code


__all__ = [
    "CODING",
    "CONCEPT",
    "EXTENSION",
    "PERIOD",
    "REFERENCE",
    "STRING",
    "concept_codings",
    "extension_code",
    "first_extension",
    "first_where",
    "field",
    "first",
    "first_code",
    "first_coding",
    "numbered",
    "ref_displays",
    "ref_ids",
    "whole",
]
