"""The medication a medication resource is about: one rule for FHIR R4 ``medication[x]``.

MedicationRequest, MedicationAdministration, MedicationDispense and MedicationStatement
name their drug in ``medication[x]``, which is one of:

1. ``medicationCodeableConcept``: the code itself.
2. ``medicationReference`` ``#id``: a Medication *contained* in the same resource.
3. ``medicationReference`` to a Medication resource elsewhere in the same delivery:
   ``Medication/id`` (Bulk export, most servers), an absolute URL, or a Bundle entry's
   ``fullUrl`` (``urn:uuid:...`` in transaction Bundles). In Bulk NDJSON the Medication
   lives in ``Medication.ndjson``, which may be read before or after the referencing
   file; in a Bundle its entry may come before or after too.

Value-set membership must not depend on the form a sender chose, so all three fill the
same columns: the medications row's ``code``/``code_system`` (coding[0] of the
Medication's code) and the ``codings`` rows of element :data:`MEDICATION_ELEMENT`
(every coding). Forms 1 and 2 are read from the resource alone
(:func:`medication_concept`). Form 3 names a *target* that is looked up at the end of
the batch (``Collector.link_medications``, called by ``batch.finish``) in a
:class:`MedicationCodes` index, which keeps only each Medication's codings (system and
code), never whole resources.

Scope: a reference inside a Bundle is looked up in that Bundle first (FHIR resolves a
Bundle's references within the Bundle; MADiE test decks reuse ids across case Bundles),
then among the Medications delivered outside any Bundle (NDJSON files, single-resource
JSON files); a reference from NDJSON or a single-resource file only among the latter.
The same key seen twice in one scope: the first one read wins.

A reference that cannot be resolved (no such Medication in scope, a ``#id`` with no
contained Medication of that id, a Reference with only a display or only an identifier
that names nothing) leaves a record whose drug nobody can know: it is quarantined at
extract with :func:`unresolved_reason`, which says which reference named nothing (the
medications suite would refuse a record without a code anyway, with a vaguer reason).
Medication resources themselves are not records of any table: each one read is counted
in ``ignored["Medication"]``.

Only MedicationRequest and MedicationAdministration have a table
(``tables.RESOURCE_TABLES``: ``medications``); Dispense and Statement are read alike by
:func:`medication_concept` and stay counted as ignored types until a table takes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pipelines.extract.elements import as_dict
from pipelines.extract.references import contained_id, ref_id

#: The resource types whose drug is ``medication[x]``.
MEDICATION_RESOURCES = frozenset(
    {"MedicationAdministration", "MedicationDispense", "MedicationRequest", "MedicationStatement"}
)
MEDICATION = "Medication"
#: ``codings.element`` of a medication's own code, whichever form carried it (CQL's
#: path is ``medication``; the concept form is the one most senders use).
MEDICATION_ELEMENT = "medicationCodeableConcept"
#: ``ignored`` key for a line of Medication.ndjson that is not a readable Medication.
UNREADABLE_MEDICATION = "Medication unreadable (records naming it are quarantined)"


def unresolved_reason(reference: str | None) -> str:
    """The quarantine reason of a record whose medicationReference resolves to nothing."""
    if reference is None:
        return "medicationReference names no Medication (no reference, only a display or identifier)"
    if reference.startswith("#"):
        return f"medicationReference {reference[:80]} names no contained Medication"
    return f"medicationReference {reference[:80]} names no Medication in this delivery"


class MedicationConcept(NamedTuple):
    """Where a resource's medication code is: in hand, to look up, or nowhere."""

    #: The CodeableConcept, when the resource itself holds it (forms 1 and 2).
    concept: Any = None
    #: Logical id of a Medication elsewhere in the delivery, resolved at the batch end.
    target: str | None = None
    #: A medicationReference that names nothing this resource or reference can point at.
    dangling: bool = False
    #: The reference as sent (for the quarantine reason).
    reference: str | None = None


def medication_concept(resource: dict[str, Any]) -> MedicationConcept:
    """The medication of a MedicationRequest / -Administration / -Dispense / -Statement.

    ``medicationCodeableConcept`` wins when both are sent (R4 allows only one); no
    ``medication[x]`` at all is an empty result, not a dangling reference (completeness
    is the validation room's business).
    """
    if "medicationCodeableConcept" in resource:
        return MedicationConcept(concept=resource["medicationCodeableConcept"])
    ref = resource.get("medicationReference")
    if ref is None:
        return MedicationConcept()
    local = contained_id(ref)
    if local is not None:
        contained = resource.get("contained")
        for item in contained if isinstance(contained, list) else ():
            item = as_dict(item)
            if item.get("resourceType") == MEDICATION and item.get("id") == local:
                return MedicationConcept(concept=item.get("code"))
        return MedicationConcept(dangling=True, reference=f"#{local}")
    target = ref_id(ref)
    sent = as_dict(ref).get("reference")
    text = sent if isinstance(sent, str) else None
    if target is None:
        return MedicationConcept(dangling=True, reference=text)
    return MedicationConcept(target=target, reference=text)


def _slim_coding(coding: Any) -> dict[str, Any] | None:
    """A coding reduced to system and code; a non-object stays a placeholder so that
    coding[0] still means what it meant in the Medication."""
    if not isinstance(coding, dict):
        return None
    return {k: coding[k] for k in ("system", "code") if k in coding}


def slim_concept(concept: Any) -> Any:
    """Medication.code with only what the tables keep (system and code of each coding),
    shaped as sent, so that reading it gives what reading the original gives."""
    if isinstance(concept, list):
        return [slim_concept(c) for c in concept]
    if not isinstance(concept, dict):
        return None
    codings = concept.get("coding")
    if isinstance(codings, list):
        return {"coding": [_slim_coding(c) for c in codings]}
    if codings is None:
        return _slim_coding(concept)  # a bare Coding where a CodeableConcept belongs
    return {"coding": _slim_coding(codings)}  # one Coding where the list belongs


@dataclass
class MedicationCodes:
    """Medication key -> its slim code, per scope (a Bundle's source file, or None for the
    Medications delivered outside Bundles)."""

    codes: dict[tuple[str | None, str], Any] = field(default_factory=dict)

    def add(self, medication: dict[str, Any], bundle: str | None = None, full_url: Any = None) -> None:
        """Index one Medication by its id and, in a Bundle, by its entry's fullUrl."""
        code = slim_concept(medication.get("code"))
        for key in (medication.get("id"), ref_id(full_url) if bundle is not None else None):
            if isinstance(key, str) and key:
                self.codes.setdefault((bundle, key), code)

    def find(self, target: str, bundle: str | None = None) -> tuple[bool, Any]:
        """(found, slim code) of the Medication ``target`` names, seen from ``bundle``."""
        for scope in (bundle, None) if bundle is not None else (None,):
            if (scope, target) in self.codes:
                return True, self.codes[(scope, target)]
        return False, None


__all__ = [
    "MEDICATION",
    "MEDICATION_ELEMENT",
    "MEDICATION_RESOURCES",
    "UNREADABLE_MEDICATION",
    "MedicationCodes",
    "MedicationConcept",
    "medication_concept",
    "slim_concept",
    "unresolved_reason",
]
