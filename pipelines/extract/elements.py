"""Reading FHIR element shapes without trusting them: the helpers every flattener shares.

Senders get shapes wrong (a list where one CodeableConcept belongs, a structure where a
code belongs, ``coding`` that is not a list). Extraction is a faithful copy, so a wrong
shape must give ``None`` or a value that ``tables.conform`` can flag, never an exception
or a dropped record. These helpers are that one tolerant reading, shared by
:mod:`~pipelines.extract.flatten`, :mod:`~pipelines.extract.children`,
:mod:`~pipelines.extract.poa` and :mod:`~pipelines.extract.medication`.
"""

from __future__ import annotations

from typing import Any

import orjson


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (so ``.get`` always works)."""
    return value if isinstance(value, dict) else {}


def first_item(value: Any) -> Any:
    """The first item of a list (None for an empty one); a non-list as it is."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def scalar(value: Any) -> Any:
    """A primitive as is; a structure where a primitive belongs becomes its JSON text,
    so that ``conform`` flags it as unreadable in typed columns instead of crashing."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def first_coding(concept: Any) -> dict[str, Any]:
    """CodeableConcept.coding[0] (also accepts a bare Coding or a list of concepts)."""
    concept = as_dict(first_item(concept))
    codings = concept.get("coding")
    if codings is None and ("code" in concept or "system" in concept):
        return concept  # a Coding, e.g. Encounter.class in R4
    return as_dict(first_item(codings))


def first_code(concept: Any) -> Any:
    """``code`` of :func:`first_coding`."""
    return scalar(first_coding(concept).get("code"))


def first_system(concept: Any) -> Any:
    """``system`` of :func:`first_coding`."""
    return scalar(first_coding(concept).get("system"))


def all_codes(concept: Any) -> list[Any]:
    """``code`` of every coding of one CodeableConcept."""
    concept = as_dict(concept)
    codings = concept.get("coding")
    if not isinstance(codings, list):
        return []
    return [c.get("code") for c in codings if isinstance(c, dict)]


def find_extension(element: Any, url: str) -> dict[str, Any] | None:
    """The first extension of ``element`` with this ``url``."""
    exts = as_dict(element).get("extension")
    if isinstance(exts, list):
        for ext in exts:
            if isinstance(ext, dict) and ext.get("url") == url:
                return ext
    return None


def extension_code(ext: dict[str, Any] | None) -> Any:
    """valueCodeableConcept.coding[0].code, or valueCoding.code, or valueCode.

    The first of those elements *present* decides, even when it holds no code: an
    extension says one thing, and guessing from a second value[x] would be inventing.
    """
    if ext is None:
        return None
    if "valueCodeableConcept" in ext:
        return first_code(ext["valueCodeableConcept"])
    if "valueCoding" in ext:
        return scalar(as_dict(ext["valueCoding"]).get("code"))
    return scalar(ext.get("valueCode"))


__all__ = [
    "all_codes",
    "as_dict",
    "extension_code",
    "find_extension",
    "first_code",
    "first_coding",
    "first_item",
    "first_system",
    "scalar",
]
