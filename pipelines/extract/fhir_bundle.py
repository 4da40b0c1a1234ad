"""FHIR Bundle files (``*.json[.gz]``) and single-resource JSON files.

Every Bundle type a sender may hand over (transaction, batch, collection, searchset,
...) is treated the same way: each ``entry.resource`` is flattened exactly as an
NDJSON line would be, and its provenance line is the 1-based entry index. References
inside Synthea bundles are ``urn:uuid:<id>``; :mod:`references` resolves them to the
same logical ids Bulk exports use, so both sources join alike. A Bundle is also the
scope in which a medicationReference is looked up first (by the Medication entry's id
or fullUrl, :mod:`pipelines.extract.medication`).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from pipelines.extract.collector import BUNDLE_TABLE, Collector
from pipelines.extract.references import ref_id
from pipelines.extract.sources import BOM, read_bytes

#: ``ignored`` key for entries that carry no resource (e.g. DELETE in a transaction).
NO_RESOURCE = "Bundle.entry without resource"


def read_bundle(path: Path, rel: str, sink: Collector) -> None:
    data = read_bytes(path, rel)
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        sink.reject(BUNDLE_TABLE, None, f"malformed JSON: {exc}", None, rel, 1)
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        sink.reject(BUNDLE_TABLE, None, "not a FHIR resource: no resourceType", None, rel, 1)
        return
    if doc["resourceType"] != "Bundle":
        sink.add_resource(doc, rel, 1)
        return
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        sink.reject(BUNDLE_TABLE, doc.get("id"), "Bundle.entry is not a list", None, rel, 1)
        return
    for index, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            sink.reject(BUNDLE_TABLE, None, f"Bundle.entry[{index}] is not an object", None, rel, index)
            continue
        resource = entry.get("resource")
        if resource is None:
            sink.ignored[NO_RESOURCE] += 1
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            sink.reject(BUNDLE_TABLE, None, f"Bundle.entry[{index}].resource has no resourceType", None, rel, index)
            continue
        if resource.get("id") is None:
            # A transaction POST may leave id out; fullUrl (urn:uuid:<id>) then names it,
            # and the other entries reference it by that fullUrl.
            full_id = ref_id(entry.get("fullUrl"))
            if full_id is not None:
                resource["id"] = full_id
        sink.add_resource(resource, rel, index, bundle=rel, full_url=entry.get("fullUrl"))


__all__ = ["NO_RESOURCE", "read_bundle"]
