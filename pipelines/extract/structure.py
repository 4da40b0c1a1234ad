"""Structural FHIR R4 validation of a sample of resources (fhir.resources.R4B).

Full pydantic model validation runs at roughly 4,000 resources/s, five times slower
than the rest of extraction, so it is applied to a deterministic sample (the first N
resources of each type in the run, however many files carry them). That is enough to catch a feed that is
structurally wrong as a whole (wrong FHIR version, a broken exporter) while record
level completeness is left to the validation room's expectations.

Only the resource types that are flattened are validated: a problem in a resource
this pipeline does not read would otherwise quarantine nothing useful. For the same
reason a few required elements that no table reads may be absent
(:data:`TOLERATED_MISSING`): the CMS eCQM test decks (MADiE exports of QI-Core data)
leave out Claim.provider, Claim.insurance and Claim.item.productOrService (45, 36 and
43 of 56 claims) and Task.intent (all 7 tasks), and quarantining those records would
throw away the claim diagnoses and refusals the measures are about. Every other
failure, missing required elements that are read (Encounter.status ...) included,
still quarantines the record.
Synthea R4 output (Bulk NDJSON and transaction Bundles) validates cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import ValidationError

log = logging.getLogger(__name__)

_MAX_REASON = 300

#: resourceType -> element paths (list indices as ``*``) whose absence is not an error here.
TOLERATED_MISSING: dict[str, frozenset[str]] = {
    "Claim": frozenset({"provider", "insurance", "item.*.productOrService"}),
    "Task": frozenset({"intent"}),
}


def _path(loc: tuple) -> str:
    return ".".join("*" if isinstance(p, int) else str(p) for p in loc)


def _tolerated(resource_type: str, error: Mapping[str, Any]) -> bool:
    allowed = TOLERATED_MISSING.get(resource_type)
    if not allowed:
        return False
    return "missing" in str(error.get("type", "")) and _path(tuple(error.get("loc", ()))) in allowed


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class  # slow import: only when sampling

    return get_fhir_model_class(resource_type)


def is_fhir_type(name: str) -> bool:
    """True when ``name`` is an R4 resource type (e.g. ``Immunization``)."""
    if not name[:1].isupper() or not name.isalnum():
        return False
    try:
        _model(name)
    except (ValueError, KeyError, AttributeError, ImportError):
        return False
    return True


def structure_error(resource: dict[str, Any]) -> str | None:
    """None when the resource is a valid R4 instance of its type, else a short reason
    naming the first failing element (never the offending value: it may identify a patient)."""
    try:
        model = _model(str(resource.get("resourceType")))
    except (ValueError, KeyError, AttributeError, ImportError):
        return f"FHIR R4 validation: unknown resourceType {resource.get('resourceType')!r}"
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if not errors:
            return "FHIR R4 validation: invalid resource"
        rtype = str(resource.get("resourceType"))
        errors = [e for e in errors if not _tolerated(rtype, e)]
        if not errors:
            return None
        first = errors[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "(resource)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"FHIR R4 validation: {loc}: {first.get('msg', 'invalid')}{more}"[:_MAX_REASON]
    except (ValueError, TypeError) as exc:  # model validators may raise plain errors
        return f"FHIR R4 validation: {type(exc).__name__}: {exc}"[:_MAX_REASON]
    return None


__all__ = ["TOLERATED_MISSING", "is_fhir_type", "structure_error"]
