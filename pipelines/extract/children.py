"""What eCQMs need beyond one row per resource: child rows and every coding.

Clinical quality language (CQL) matches a CodeableConcept when ANY of its codings is
in a value set, walks an encounter's whole location history (ICU days), reads
present-on-admission from each Encounter.diagnosis and each Claim.diagnosis, and
joins claims to encounters through ``Claim.item.encounter``. The one-row tables keep
``coding[0]``; this module produces the rest (tables.ECQM_TABLES):

* :func:`records` turns one resource into its rows: the main row (one per resource,
  or for a Claim one per Claim.diagnosis and one per Claim.procedure), child rows
  (encounter_locations, encounter_diagnoses) and coding tuples, each child tied to
  the row it came from so that a parent quarantined at extraction takes its children
  with it.
* encounter_diagnoses holds both ways an Encounter names its conditions, told apart by
  ``element``: ``diagnosis`` (with use, rank and present-on-admission) and
  ``reasonReference`` (QI-Core CQMCommon ``encounterDiagnosis()`` follows it; CMS108
  finds VTE diagnoses there). Keys are ``<encounter_id>/<element>/<n>``.
* Child and coding keys are ``<parent key>/<n>`` (n 1-based within the element);
  a parent without an id gets no children (it is quarantined by validation for the
  missing key, and its children could not be named).
* A medication's own code is element ``medicationCodeableConcept`` whichever form
  ``medication[x]`` took (:mod:`~pipelines.extract.medication`); a reference to a
  Medication elsewhere in the delivery gets its codings at the end of the batch.
* ``codings.element`` is the FHIR element name; nested elements use their last path
  segment (``route`` for dosage.route / dosageInstruction.route,
  ``dischargeDisposition`` for hospitalization.dischargeDisposition) and the QI-Core
  doNotPerformReason extension is ``doNotPerformReason``. :data:`CODED_ELEMENTS`
  lists them per resource type.

Coding rows are plain tuples in the column order of ``tables.ECQM_TABLES["codings"]``
(without provenance): building a dict per coding would dominate extraction time,
since every Observation has a code and a category.
"""

from __future__ import annotations

from sys import intern
from typing import Any, NamedTuple

from pipelines.extract.elements import as_dict, find_extension, first_code, first_coding, scalar
from pipelines.extract.flatten import DO_NOT_PERFORM_REASON_EXTENSION, FLATTENERS, Row
from pipelines.extract.medication import MEDICATION_ELEMENT, MEDICATION_RESOURCES, medication_concept
from pipelines.extract.poa import CLAIM_DIAGNOSIS, ENCOUNTER_DIAGNOSIS, present_on_admission
from pipelines.extract.references import ref_display, ref_id
from pipelines.tables import RESOURCE_TABLES, TABLES

#: (coding_id, table_name, record_id, record_type, element, system, code)
CodingTuple = tuple[str, str, str, str | None, str, Any, Any]

#: Coded elements whose codings all go to ``codings``, per resource type: (element
#: name, path). A path step that meets a list continues into every item.
CODED_ELEMENTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Encounter": (
        ("type", ("type",)),
        ("reasonCode", ("reasonCode",)),
        ("dischargeDisposition", ("hospitalization", "dischargeDisposition")),
    ),
    "Condition": (("code", ("code",)), ("category", ("category",))),
    "Procedure": (("code", ("code",)), ("category", ("category",)), ("statusReason", ("statusReason",))),
    "MedicationAdministration": (
        ("category", ("category",)),
        ("statusReason", ("statusReason",)),
        ("reasonCode", ("reasonCode",)),
        ("route", ("dosage", "route")),
    ),
    "MedicationRequest": (
        ("category", ("category",)),
        ("statusReason", ("statusReason",)),
        ("reasonCode", ("reasonCode",)),
        ("route", ("dosageInstruction", "route")),
    ),
    "MedicationDispense": (
        ("category", ("category",)),
        ("statusReason", ("statusReasonCodeableConcept",)),
        ("route", ("dosageInstruction", "route")),
    ),
    "MedicationStatement": (
        ("category", ("category",)),
        ("statusReason", ("statusReason",)),
        ("reasonCode", ("reasonCode",)),
        ("route", ("dosage", "route")),
    ),
    "Observation": (
        ("code", ("code",)),
        ("category", ("category",)),
        ("valueCodeableConcept", ("valueCodeableConcept",)),
    ),
    "AdverseEvent": (("event", ("event",)),),
    "Location": (("type", ("type",)),),
    "ServiceRequest": (("code", ("code",)), ("category", ("category",)), ("reasonCode", ("reasonCode",))),
    "DeviceRequest": (("codeCodeableConcept", ("codeCodeableConcept",)), ("reasonCode", ("reasonCode",))),
    "Task": (("code", ("code",)), ("statusReason", ("statusReason",)), ("reasonCode", ("reasonCode",))),
}
CLAIM_DIAGNOSIS_ELEMENTS = (("diagnosisCodeableConcept", ("diagnosisCodeableConcept",)), ("type", ("type",)))
CLAIM_PROCEDURE_ELEMENTS = (("procedureCodeableConcept", ("procedureCodeableConcept",)),)

#: ``ignored`` key for a Claim that yields no row at all: neither a diagnosis nor a
#: procedure (pharmacy, immunisation claims).
CLAIM_WITHOUT_ROWS = "Claim without diagnosis or procedure"


class Record(NamedTuple):
    """One main row, its child rows (table, row) and its codings."""

    table: str
    row: Row
    children: list[tuple[str, Row]]
    codings: list[CodingTuple]


# ---------------------------------------------------------------- codings


def _at(value: Any, path: tuple[str, ...]) -> list[Any]:
    """The values at ``path`` under ``value``: a step that meets a list continues into
    every item; missing steps and non-objects give nothing. Plain loops, not nested
    generators: this runs for every coded element of every resource extracted."""
    found = _flat([value])
    for step in path:
        nxt: list[Any] = []
        for item in found:
            if isinstance(item, dict):
                child = item.get(step)
                if isinstance(child, list):
                    nxt.extend(_flat(child))
                elif child is not None:
                    nxt.append(child)
        found = nxt
    return found


def _flat(values: list[Any]) -> list[Any]:
    """``values`` with nested lists expanded in order and None dropped."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, list):
            out.extend(_flat(v))
        elif v is not None:
            out.append(v)
    return out


def _codings_of(concept: Any) -> list[Any]:
    """Codings of a CodeableConcept, a bare Coding, or a list of either (items that are
    not objects are skipped)."""
    if isinstance(concept, list):
        out: list[Any] = []
        for item in concept:
            out.extend(_codings_of(item))
        return out
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    if isinstance(codings, list):
        return [c for c in codings if isinstance(c, dict)]
    if codings is None and ("code" in concept or "system" in concept):
        return [concept]
    return []


def add_codings(
    out: list[CodingTuple],
    table: str,
    record_id: str,
    element: str,
    concepts: list[Any],
    record_type: str | None = None,
) -> None:
    """Append one tuple per coding of ``concepts`` (numbered 1.. within the element).

    ``record_type`` is set for tables holding several resource types (their ids are
    unique per type only), and is then part of the coding id.
    """
    owner = f"{table}/{record_id}" if record_type is None else f"{table}/{record_type}/{record_id}"
    prefix = f"{owner}/{element}/"
    n = 0
    for concept in concepts:
        for coding in _codings_of(concept):
            n += 1
            system = coding.get("system")
            code = coding.get("code")
            # Systems and codes repeat over millions of codings: each text is kept once.
            if system.__class__ is str:
                system = intern(system)
            elif system is not None:
                system = scalar(system)
            if code.__class__ is str:
                code = intern(code)
            elif code is not None:
                code = scalar(code)
            out.append((prefix + str(n), table, record_id, record_type, element, system, code))


def resource_codings(rtype: str, r: dict[str, Any], table: str, record_id: str) -> list[CodingTuple]:
    out: list[CodingTuple] = []
    typed = rtype if TABLES[table].type_column else None
    if rtype in MEDICATION_RESOURCES:
        add_codings(out, table, record_id, MEDICATION_ELEMENT, [medication_concept(r).concept], typed)
    for element, path in CODED_ELEMENTS.get(rtype, ()):
        add_codings(out, table, record_id, element, _at(r, path), typed)
    if rtype == "ServiceRequest":
        ext = find_extension(r, DO_NOT_PERFORM_REASON_EXTENSION)
        if ext is not None:
            add_codings(out, table, record_id, "doNotPerformReason", [ext.get("valueCodeableConcept")], typed)
    return out


# ---------------------------------------------------------------- child rows


def encounter_locations(r: dict[str, Any], encounter_id: str, patient_id: Any) -> list[Row]:
    """Every Encounter.location with its period: CQL measures count days in an ICU
    from this history, not from the current ward."""
    locations = r.get("location")
    if not isinstance(locations, list):
        return []
    rows = []
    for n, entry in enumerate((e for e in locations if isinstance(e, dict)), 1):
        ref = entry.get("location")
        period = as_dict(entry.get("period"))
        rows.append(
            {
                "encounter_location_id": f"{encounter_id}/{n}",
                "encounter_id": encounter_id,
                "patient_id": patient_id,
                "location_id": ref_id(ref),
                "location_name": ref_display(ref),
                "start_at": scalar(period.get("start")),
                "end_at": scalar(period.get("end")),
            }
        )
    return rows


def encounter_diagnoses(r: dict[str, Any], encounter_id: str, patient_id: Any) -> list[Row]:
    """Every Encounter.diagnosis (element ``diagnosis``: use, rank and the QI-Core
    present-on-admission extension of that entry, :mod:`~pipelines.extract.poa`, since
    CMS826/CMS1017 exclude harms present on admission), then every
    Encounter.reasonReference (element ``reasonReference``: condition only, CQMCommon
    ``encounterDiagnosis()`` reads it)."""
    rows: list[Row] = []
    diagnoses = r.get("diagnosis")
    for n, diag in enumerate((d for d in diagnoses if isinstance(d, dict)) if isinstance(diagnoses, list) else (), 1):
        rows.append(
            {
                "encounter_diagnosis_id": f"{encounter_id}/diagnosis/{n}",
                "encounter_id": encounter_id,
                "patient_id": patient_id,
                "element": "diagnosis",
                "condition_id": ref_id(diag.get("condition")),
                "use_code": first_code(diag.get("use")),
                "rank": scalar(diag.get("rank")),
                "present_on_admission": present_on_admission(diag, ENCOUNTER_DIAGNOSIS),
            }
        )
    reasons = r.get("reasonReference")
    for n, ref in enumerate((x for x in reasons if isinstance(x, dict)) if isinstance(reasons, list) else (), 1):
        rows.append(
            {
                "encounter_diagnosis_id": f"{encounter_id}/reasonReference/{n}",
                "encounter_id": encounter_id,
                "patient_id": patient_id,
                "element": "reasonReference",
                "condition_id": ref_id(ref),
                "use_code": None,
                "rank": None,
                "present_on_admission": None,
            }
        )
    return rows


class _ClaimEncounters(NamedTuple):
    """Encounter per diagnosis / procedure sequence, from the first item pointing at it
    (and having an encounter), plus the claim's first item encounter as the fallback."""

    diagnosis: dict[Any, str]
    procedure: dict[Any, str]
    first: str | None

    def of(self, by_sequence: dict[Any, str], sequence: Any) -> str | None:
        if isinstance(sequence, (int, str)):
            return by_sequence.get(sequence, self.first)
        return self.first


def _claim_encounters(r: dict[str, Any]) -> _ClaimEncounters:
    found = _ClaimEncounters({}, {}, None)
    first: str | None = None
    items = r.get("item")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        encounters = item.get("encounter")
        enc = ref_id(encounters[0]) if isinstance(encounters, list) and encounters else None
        if enc is None:
            continue
        if first is None:
            first = enc
        for element, by_sequence in (("diagnosisSequence", found.diagnosis), ("procedureSequence", found.procedure)):
            sequences = item.get(element)
            for seq in sequences if isinstance(sequences, list) else ():
                if isinstance(seq, (int, str)):
                    by_sequence.setdefault(seq, enc)
    return found._replace(first=first)


def _entries(value: Any) -> list[dict[str, Any]]:
    return [d for d in value if isinstance(d, dict)] if isinstance(value, list) else []


def claim_records(r: dict[str, Any]) -> list[Record]:
    """One claim_diagnoses row per Claim.diagnosis, then one claim_procedures row per
    Claim.procedure (none for a claim without either).

    POA is ``diagnosis.onAdmission`` (:mod:`~pipelines.extract.poa`); the encounter is
    that of the item whose ``diagnosisSequence`` (``procedureSequence``) names the
    entry, else the claim's first item encounter (Synthea puts the encounter on item 1
    and the pointers on later items). CMS108 reads the principal procedure from
    claim_procedures.
    """
    diagnoses, procedures = _entries(r.get("diagnosis")), _entries(r.get("procedure"))
    if not diagnoses and not procedures:
        return []
    claim_id = scalar(r.get("id"))
    patient_id = ref_id(r.get("patient"))
    status, use = scalar(r.get("status")), scalar(r.get("use"))
    encounters = _claim_encounters(r)
    billable = as_dict(r.get("billablePeriod"))
    records = []
    for n, diag in enumerate(diagnoses, 1):
        sequence = scalar(diag.get("sequence"))
        coding = first_coding(diag.get("diagnosisCodeableConcept"))
        key = None if claim_id is None else f"{claim_id}/{n}"
        row = {
            "claim_diagnosis_id": key,
            "claim_id": claim_id,
            "patient_id": patient_id,
            "encounter_id": encounters.of(encounters.diagnosis, sequence),
            "status": status,
            "use": use,
            "sequence": sequence,
            "diagnosis_type": first_code(diag.get("type")),
            "code": scalar(coding.get("code")),
            "code_system": scalar(coding.get("system")),
            "condition_id": ref_id(diag.get("diagnosisReference")),
            "present_on_admission": present_on_admission(diag, CLAIM_DIAGNOSIS),
            "billable_start": scalar(billable.get("start")),
            "billable_end": scalar(billable.get("end")),
        }
        codings: list[CodingTuple] = []
        if key is not None:
            for element, path in CLAIM_DIAGNOSIS_ELEMENTS:
                add_codings(codings, "claim_diagnoses", key, element, _at(diag, path))
        records.append(Record("claim_diagnoses", row, [], codings))
    for n, proc in enumerate(procedures, 1):
        sequence = scalar(proc.get("sequence"))
        coding = first_coding(proc.get("procedureCodeableConcept"))
        key = None if claim_id is None else f"{claim_id}/{n}"
        row = {
            "claim_procedure_id": key,
            "claim_id": claim_id,
            "patient_id": patient_id,
            "encounter_id": encounters.of(encounters.procedure, sequence),
            "status": status,
            "use": use,
            "sequence": sequence,
            "procedure_type": first_code(proc.get("type")),
            "code": scalar(coding.get("code")),
            "code_system": scalar(coding.get("system")),
            "procedure_id": ref_id(proc.get("procedureReference")),
            "performed_at": scalar(proc.get("date")),
        }
        codings = []
        if key is not None:
            for element, path in CLAIM_PROCEDURE_ELEMENTS:
                add_codings(codings, "claim_procedures", key, element, _at(proc, path))
        records.append(Record("claim_procedures", row, [], codings))
    return records


# ---------------------------------------------------------------- dispatch


def records(rtype: str, r: dict[str, Any]) -> list[Record]:
    """Every row one resource yields. ``rtype`` must be a key of RESOURCE_TABLES."""
    if rtype == "Claim":
        return claim_records(r)
    table = RESOURCE_TABLES[rtype]
    row = FLATTENERS[rtype](r)
    key = row[TABLES[table].key]
    if key is None:
        return [Record(table, row, [], [])]
    key = str(key)
    children: list[tuple[str, Row]] = []
    if rtype == "Encounter":
        patient_id = row["patient_id"]
        children = [("encounter_locations", c) for c in encounter_locations(r, key, patient_id)]
        children += [("encounter_diagnoses", c) for c in encounter_diagnoses(r, key, patient_id)]
    return [Record(table, row, children, resource_codings(rtype, r, table, key))]


__all__ = [
    "CLAIM_WITHOUT_ROWS",
    "CODED_ELEMENTS",
    "MEDICATION_ELEMENT",
    "CodingTuple",
    "Record",
    "add_codings",
    "claim_records",
    "encounter_diagnoses",
    "encounter_locations",
    "records",
    "resource_codings",
]
