"""FHIR Reference -> the target's logical id.

The warehouse links records by FHIR logical id only, so every spelling a sender may
use for "the same resource" must collapse to that id:

* relative ``Patient/abc`` (Bulk export, most servers), optionally ``/_history/n``;
* ``urn:uuid:abc`` (Synthea and other transaction Bundles, whose ``fullUrl`` is
  ``urn:uuid:<id>``);
* absolute ``https://server/fhir/Patient/abc``;
* conditional ``Organization?identifier=<system>|abc`` and logical references that
  carry only ``identifier`` (Synthea Bulk export writes these for Organization,
  Location and Practitioner; its identifier value equals the target's logical id).

A contained reference (``#med1``) points inside the same resource and is not a link
between records, so it yields ``None`` (see :func:`contained_id`).
"""

from __future__ import annotations

from typing import Any

_URN_PREFIXES = ("urn:uuid:", "urn:oid:")


def ref_id(ref: Any) -> str | None:
    """The logical id a Reference (dict) or reference string points to, else None."""
    if isinstance(ref, dict):
        text = ref.get("reference")
        if isinstance(text, str):
            text = text.strip()
            if text:
                return _id_from_text(text)
        ident = ref.get("identifier")
        if isinstance(ident, dict):
            value = ident.get("value")
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None
    if isinstance(ref, str):
        ref = ref.strip()
        if ref:
            return _id_from_text(ref)
    return None


def ref_display(ref: Any) -> str | None:
    """Reference.display, the human label a sender attached (e.g. the facility name)."""
    if isinstance(ref, dict):
        value = ref.get("display")
        if isinstance(value, str) and value.strip():
            return value
    return None


def contained_id(ref: Any) -> str | None:
    """``med1`` for a contained reference ``#med1``; None for any other reference."""
    text = ref.get("reference") if isinstance(ref, dict) else ref
    if isinstance(text, str) and text.startswith("#") and len(text) > 1:
        return text[1:]
    return None


def _id_from_text(text: str) -> str | None:
    if text.startswith("#"):
        return None
    if text.startswith("urn:"):
        for prefix in _URN_PREFIXES:
            if text.startswith(prefix):
                return text[len(prefix) :] or None
    if "?" in text:
        # Conditional reference: Type?identifier=system|value -> value.
        query = text.split("?", 1)[1]
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key == "identifier" and value:
                return value.rsplit("|", 1)[-1] or None
        return None
    if "/_history" not in text and not text.endswith("/"):
        return text.rsplit("/", 1)[-1]  # fast path: Type/id and absolute URLs
    segments = [s for s in text.split("/") if s]
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    return segments[-1] if segments else None


__all__ = ["contained_id", "ref_display", "ref_id"]
