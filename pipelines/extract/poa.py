"""Present on admission (POA): the one rule for where a diagnosis's POA code comes from.

Why it matters: hospital-harm measures count only harm that arose *during* the stay
(CMS826 pressure injury and CMS1017 falls exclude a diagnosis present on admission), so
reading POA from the wrong place, or letting the wrong source win, silently moves
patients between the numerator and the exclusions. The codes are the CMS POA
indicators (Y, N, U, W, 1); extract copies them, it does not judge them.

Where a feed states POA, and what each table takes (:func:`present_on_admission`):

``Claim.diagnosis``       R4 ``onAdmission`` (CodeableConcept, coding[0].code)
                          -> ``claim_diagnoses``: that claim line only.
``Encounter.diagnosis``   the QI-Core extension ``tables.POA_EXTENSION`` on the entry
                          -> ``encounter_diagnoses``: that entry only. QI-Core puts POA
                          here because it is a property of a diagnosis *on this stay*.
``Condition``             the same extension on the Condition itself (CareQI's generator
                          and some senders put it there) -> ``conditions``.

Precedence exists only for ``conditions`` (:class:`StayPoa`): the Condition's own
extension wins; when it states nothing, the extension of the FIRST ``Encounter.diagnosis``
in the delivery (read order) whose ``condition`` reference names that Condition's id;
otherwise null. ``Claim.diagnosis.onAdmission`` is never copied onto a Condition: it is
the biller's statement, read where the measures read it (claim_diagnoses, joined to the
stay through ``Claim.item.encounter``), and mixing it in would let a claim overwrite
what the record of care says.

Reading a code (:func:`~pipelines.extract.elements.extension_code`): valueCodeableConcept
(coding[0].code), else valueCoding.code, else valueCode. A source has *stated* POA when
that code is not None; a blank code counts as stated (FHIR has no empty strings, so such
a record fails FHIR validation when sampled), it wins over the encounter's, and
``tables.conform`` then stores it as null, as it does every blank string. A non-string
code is kept as text (a structure as its JSON) for validation to flag, never dropped.

Cross-resource: a Condition and the Encounter naming it may arrive in either order (two
NDJSON files, any Bundle order), so the encounters' statements are collected while the
batch is read (:meth:`StayPoa.add`: condition id -> code, a few bytes per diagnosis) and
applied once at the end (:meth:`StayPoa.fill`, from ``batch.finish``), before the rows are
conformed. An Encounter rejected at extraction (failed FHIR validation, unreadable
structure) states nothing; one quarantined later by ``conform`` still has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.extract.elements import as_dict, extension_code, find_extension, first_code
from pipelines.extract.references import ref_id
from pipelines.tables import POA_EXTENSION

#: The three FHIR elements that state POA (``where`` of :func:`present_on_admission`).
CLAIM_DIAGNOSIS = "Claim.diagnosis"
ENCOUNTER_DIAGNOSIS = "Encounter.diagnosis"
CONDITION = "Condition"
WHERE = (CLAIM_DIAGNOSIS, ENCOUNTER_DIAGNOSIS, CONDITION)

#: The column every table with POA uses.
COLUMN = "present_on_admission"


def present_on_admission(element: Any, where: str) -> Any:
    """The POA code ``element`` (a ``where``: Claim.diagnosis, Encounter.diagnosis or a
    Condition) states, or None; a Condition's encounter fallback is :meth:`StayPoa.fill`."""
    if where == CLAIM_DIAGNOSIS:
        return first_code(as_dict(element).get("onAdmission"))
    if where in (ENCOUNTER_DIAGNOSIS, CONDITION):
        return extension_code(find_extension(element, POA_EXTENSION))
    raise ValueError(f"POA is not stated on {where!r}; one of {', '.join(WHERE)}")


def encounter_diagnosis_poa(encounter: dict[str, Any]) -> list[tuple[str, Any]]:
    """(condition id, POA code) for each Encounter.diagnosis that names a condition and
    states POA, in entry order."""
    out: list[tuple[str, Any]] = []
    diagnoses = encounter.get("diagnosis")
    if not isinstance(diagnoses, list):
        return out
    for diag in diagnoses:
        if not isinstance(diag, dict):
            continue
        condition = ref_id(diag.get("condition"))
        code = present_on_admission(diag, ENCOUNTER_DIAGNOSIS)
        if condition is not None and code is not None:
            out.append((condition, code))
    return out


@dataclass
class StayPoa:
    """What the encounters of one batch say about their conditions' POA."""

    #: condition id -> POA code of the first Encounter.diagnosis naming it.
    codes: dict[str, Any] = field(default_factory=dict)

    def add(self, encounter: dict[str, Any]) -> None:
        """Remember an accepted Encounter's statements (first seen wins)."""
        for condition, code in encounter_diagnosis_poa(encounter):
            self.codes.setdefault(condition, code)

    def fill(self, conditions: pd.DataFrame) -> pd.DataFrame:
        """The conditions rows (as read, before conforming), each that states no POA of
        its own given the encounters' code."""
        if not self.codes or not len(conditions):
            return conditions
        ids = conditions["condition_id"]
        missing = conditions[COLUMN].isna() & ids.map(lambda v: isinstance(v, str), na_action="ignore").eq(True)
        if not missing.any():
            return conditions
        found = ids[missing].map(self.codes.get)
        if not found.notna().any():
            return conditions
        out = conditions.copy()
        column = out[COLUMN].astype("object")
        column[found.index[found.notna()]] = found[found.notna()]
        out[COLUMN] = column
        return out


__all__ = [
    "CLAIM_DIAGNOSIS",
    "COLUMN",
    "CONDITION",
    "ENCOUNTER_DIAGNOSIS",
    "WHERE",
    "StayPoa",
    "encounter_diagnosis_poa",
    "present_on_admission",
]
