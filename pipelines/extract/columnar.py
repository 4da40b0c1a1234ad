"""Bulk NDJSON files of the high-volume resource types, read column-wise.

Why: the tolerant reader (:mod:`~pipelines.extract.fhir_ndjson`) flattens one resource
at a time in Python, about ten times what parsing the line costs; the types that make
up most of a month (Patient, Encounter, Condition, Observation, Procedure, the
medication records, Claim: :data:`READERS`) are read here instead, in compiled code
per file, with the same result. A file is planned (:func:`plan_file`, no shared state,
so the batch plans the next files on threads) and then stored (:func:`read_columnar`).

How a file is read:

1. msgspec checks every line is a JSON object of the file's type without building it
   (64 lines a call).
   Lines that are not (malformed JSON, another type, an array), and the first lines
   the structural-validation sample takes, go through the tolerant per-line code, in
   file order, exactly as before.
2. The other lines go to pyarrow's JSON reader in one call, with an explicit schema of
   the elements the table reads; every other element (names, addresses, narrative) is
   skipped unparsed.
3. Rows and codings are computed with Arrow kernels (:mod:`~pipelines.extract.arrow_fhir`)
   and handed to the collector as one block, which the batch conforms with the rest.

The path declines a file (the tolerant reader then reads all of it) whenever it could
give another result: a JSON ``null`` anywhere (FHIR forbids them, and Arrow cannot tell
a null from an absent element, which the tolerant reader sometimes does), or any element
in another shape than the schema's (pyarrow refuses a list where an object belongs, a
number where text belongs, a key given twice). ``tests/extract/test_columnar.py``
compares both readers table by table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipelines.extract import arrow_fhir as A
from pipelines.extract.children import CLAIM_WITHOUT_ROWS, CODED_ELEMENTS
from pipelines.extract.collector import CODINGS, Collector, Origin
from pipelines.extract.flatten import LOINC_DIASTOLIC, LOINC_SYSTOLIC, RECORDED_SUFFIX
from pipelines.extract.medication import MEDICATION_ELEMENT, MEDICATION_RESOURCES
from pipelines.extract.sources import BOM
from pipelines.tables import POA_EXTENSION, RESOURCE_TABLES, TABLES

#: A JSON null: a value position (after ``:``, ``[`` or ``,``) holding ``null``. Text that
#: merely looks like one inside a string only sends the file to the tolerant reader.
_NULL = re.compile(rb"[:\[,]\s*null\b")
#: Lines of one pyarrow read block; a longer line gets a block of its own size.
_BLOCK_BYTES = 1 << 22


class _Head(msgspec.Struct):
    """All that is decoded of a line in step 1: the rest is checked, not built."""

    resourceType: Any = None


_HEAD = msgspec.json.Decoder(_Head)

#: (line number, line) -> None: the tolerant reader's handling of one line.
LineReader = Callable[[int, bytes], None]

Columns = dict[str, pa.Array]


#: Child rows of a block: (child table, its columns, the record each row belongs to).
Children = list[tuple[str, Columns, np.ndarray]]


def _no_children(t: pa.Table, rows: Columns) -> Children:
    return []


@dataclass(frozen=True)
class Reader:
    """What one resource type reads: its explicit schema, its row builder and the
    builder of its child rows (children.records: only for a record with an id)."""

    schema: pa.Schema
    rows: Callable[[pa.Table], Columns] | None
    children: Callable[[pa.Table, Columns], Children] = _no_children
    #: False: the file holds what only the row-wise path reads (the block is not used).
    accept: Callable[[pa.Table], bool] = lambda t: True
    #: Stores the block itself (Claim: rows of two tables), instead of rows/children.
    add: Callable[[Collector, pa.Table, str, np.ndarray, Origin | None], None] | None = None


def _period(t: pa.Table, element: str) -> tuple[pa.Array, pa.Array]:
    """start and end of ``<element>Period``."""
    return A.field(t.column(f"{element}Period"), "start"), A.field(t.column(f"{element}Period"), "end")


def _observation_rows(t: pa.Table) -> Columns:
    code, system = A.first_coding(t.column("code"))
    quantity = t.column("valueQuantity")
    period_start, period_end = _period(t, "effective")
    systolic, diastolic = _blood_pressure(t.column("component"))
    return {
        "observation_id": t.column("id"),
        "patient_id": A.ref_ids(t.column("subject")),
        "encounter_id": A.ref_ids(t.column("encounter")),
        "code": code,
        "code_system": system,
        "status": t.column("status"),
        "effective_at": pc.coalesce(t.column("effectiveDateTime"), t.column("effectiveInstant"), period_start),
        "effective_end": period_end,
        "issued_at": t.column("issued"),
        "category": A.first_code(A.first(t.column("category"))),
        "value_num": A.field(quantity, "value"),
        "value_unit": pc.coalesce(A.field(quantity, "unit"), A.field(quantity, "code")),
        "value_code": A.first_code(t.column("valueCodeableConcept")),
        "systolic": systolic,
        "diastolic": diastolic,
    }


def _blood_pressure(components: Any) -> tuple[pa.Array, pa.Array]:
    """flatten._blood_pressure for every Observation: the value of the first component
    whose code has each LOINC code among its codings."""
    components = A.whole(components)
    n = len(components)
    flat = pc.list_flatten(components)
    owner = pc.list_parent_indices(components).to_numpy()
    codings = A.field(flat, "code", "coding")
    codes = A.field(pc.list_flatten(codings), "code")
    coding_component = pc.list_parent_indices(codings).to_numpy()
    value = A.field(flat, "valueQuantity", "value")
    out = []
    for loinc in (LOINC_SYSTOLIC, LOINC_DIASTOLIC):
        hit = pc.fill_null(pc.equal(codes, loinc), False).to_numpy(zero_copy_only=False)
        has = np.zeros(len(flat), dtype=bool)
        has[coding_component[hit]] = True
        out.append(value.take(A.first_where(owner, has, n)))
    return out[0], out[1]


def _condition_rows(t: pa.Table) -> Columns:
    code, system = A.first_coding(t.column("code"))
    onset_start, onset_end = _period(t, "onset")
    abatement_start, _ = _period(t, "abatement")
    return {
        "condition_id": t.column("id"),
        "patient_id": A.ref_ids(t.column("subject")),
        "encounter_id": A.ref_ids(t.column("encounter")),
        "code": code,
        "code_system": system,
        "clinical_status": A.first_code(t.column("clinicalStatus")),
        "verification_status": A.first_code(t.column("verificationStatus")),
        "category": A.first_code(A.first(t.column("category"))),
        "onset_at": pc.coalesce(t.column("onsetDateTime"), onset_start),
        "onset_end": onset_end,
        "abatement_at": pc.coalesce(t.column("abatementDateTime"), abatement_start),
        "recorded_at": t.column("recordedDate"),
        "present_on_admission": A.extension_code(t.column("extension"), POA_EXTENSION),
    }


def _patient_rows(t: pa.Table) -> Columns:
    return {
        "patient_id": t.column("id"),
        "birth_date": t.column("birthDate"),
        "gender": t.column("gender"),
        "deceased_at": t.column("deceasedDateTime"),
        "organization_id": A.ref_ids(t.column("managingOrganization")),
    }


def _encounter_rows(t: pa.Table) -> Columns:
    hospitalization = t.column("hospitalization")
    period = t.column("period")
    provider = t.column("serviceProvider")
    ward = A.field(A.first(t.column("location")), "location")
    type_code, type_system = A.first_coding(A.first(t.column("type")))
    return {
        "encounter_id": t.column("id"),
        "patient_id": A.ref_ids(t.column("subject")),
        "status": t.column("status"),
        "class_code": A.first_code(t.column("class")),
        "type_code": type_code,
        "type_system": type_system,
        "service": A.first_code(t.column("serviceType")),
        "priority": A.first_code(t.column("priority")),
        "admit_source": A.first_code(A.field(hospitalization, "admitSource")),
        "discharge_disposition": A.first_code(A.field(hospitalization, "dischargeDisposition")),
        "start_at": A.field(period, "start"),
        "end_at": A.field(period, "end"),
        "facility_id": A.ref_ids(provider),
        "facility_name": A.ref_displays(provider),
        "ward_id": A.ref_ids(ward),
        "ward_name": A.ref_displays(ward),
    }


def _items(t: pa.Table, name: str) -> tuple[pa.Array, np.ndarray]:
    """Every item of a list element, and the record it belongs to."""
    column = A.whole(t.column(name))
    return pc.list_flatten(column), pc.list_parent_indices(column).to_numpy()


def _child_ids(ids: pa.Array, owner: np.ndarray, middle: str) -> pa.Array:
    """``<encounter_id><middle><n>``, n 1.. within each encounter."""
    number = pa.array(A.numbered(owner)).cast(A.STRING)
    return pc.binary_join_element_wise(ids.take(pa.array(owner)), pa.scalar(middle), number, "")


def _encounter_children(t: pa.Table, rows: Columns) -> Children:
    """children.encounter_locations and children.encounter_diagnoses for every Encounter."""
    ids, patients = rows["encounter_id"], rows["patient_id"]
    valid = ids.is_valid().to_numpy(zero_copy_only=False)
    out: Children = []
    entries, owner = _items(t, "location")
    keep = valid[owner]
    entries, owner = entries.filter(pa.array(keep)), owner[keep]
    place, period = A.field(entries, "location"), A.field(entries, "period")
    out.append(
        (
            "encounter_locations",
            {
                "encounter_location_id": _child_ids(ids, owner, "/"),
                "encounter_id": ids.take(pa.array(owner)),
                "patient_id": patients.take(pa.array(owner)),
                "location_id": A.ref_ids(place),
                "location_name": A.ref_displays(place),
                "start_at": A.field(period, "start"),
                "end_at": A.field(period, "end"),
            },
            owner,
        )
    )
    diagnoses, d_owner = _items(t, "diagnosis")
    reasons, r_owner = _items(t, "reasonReference")
    d_keep, r_keep = valid[d_owner], valid[r_owner]
    diagnoses, d_owner = diagnoses.filter(pa.array(d_keep)), d_owner[d_keep]
    reasons, r_owner = reasons.filter(pa.array(r_keep)), r_owner[r_keep]
    nd, nr = len(d_owner), len(r_owner)
    stated = [
        (
            {
                "encounter_diagnosis_id": _child_ids(ids, d_owner, "/diagnosis/"),
                "encounter_id": ids.take(pa.array(d_owner)),
                "patient_id": patients.take(pa.array(d_owner)),
                "element": _repeat("diagnosis", nd),
                "condition_id": A.ref_ids(A.field(diagnoses, "condition")),
                "use_code": A.first_code(A.field(diagnoses, "use")),
                "rank": A.field(diagnoses, "rank"),
                "present_on_admission": A.extension_code(A.field(diagnoses, "extension"), POA_EXTENSION),
            },
            d_owner,
        ),
        (
            {
                "encounter_diagnosis_id": _child_ids(ids, r_owner, "/reasonReference/"),
                "encounter_id": ids.take(pa.array(r_owner)),
                "patient_id": patients.take(pa.array(r_owner)),
                "element": _repeat("reasonReference", nr),
                "condition_id": A.ref_ids(reasons),
                "use_code": pa.nulls(nr, A.STRING),
                "rank": pa.nulls(nr, pa.int64()),
                "present_on_admission": pa.nulls(nr, A.STRING),
            },
            r_owner,
        ),
    ]
    # An encounter's diagnoses, then its reasons; encounter by encounter.
    owner_all = np.concatenate([d_owner, r_owner])
    order = pa.array(np.lexsort((np.r_[np.zeros(nd), np.ones(nr)], owner_all)))
    merged = {
        k: pa.concat_arrays([A.whole(stated[0][0][k]), A.whole(stated[1][0][k])]).take(order) for k in stated[0][0]
    }
    out.append(("encounter_diagnoses", merged, owner_all[order.to_numpy()]))
    return out


def _encounter_poa(t: pa.Table) -> list[tuple[str, str]]:
    """poa.encounter_diagnosis_poa of every Encounter, in read order (ids or not)."""
    diagnoses, _ = _items(t, "diagnosis")
    condition = A.ref_ids(A.field(diagnoses, "condition"))
    code = A.extension_code(A.field(diagnoses, "extension"), POA_EXTENSION)
    both = pc.and_(condition.is_valid(), code.is_valid())
    return list(zip(condition.filter(both).to_pylist(), code.filter(both).to_pylist(), strict=True))


def _timing(t: pa.Table, element: str) -> tuple[pa.Array, pa.Array]:
    """flatten._timing: ``<element>DateTime`` is a start without an end, else the Period."""
    moment = t.column(f"{element}DateTime")
    start, end = _period(t, element)
    return pc.coalesce(moment, start), pc.if_else(pc.is_valid(moment), pa.scalar(None, A.STRING), end)


def _recorded(t: pa.Table) -> pa.Array:
    """flatten._recorded: valueDateTime of the first QI-Core recorded extension."""
    chosen = A.first_extension(t.column("extension"), lambda urls: pc.ends_with(urls, RECORDED_SUFFIX))
    return A.field(chosen, "valueDateTime")


def _procedure_rows(t: pa.Table) -> Columns:
    code, system = A.first_coding(t.column("code"))
    start, end = _timing(t, "performed")
    reason_code, reason_system = A.first_coding(t.column("statusReason"))
    return {
        "procedure_id": t.column("id"),
        "patient_id": A.ref_ids(t.column("subject")),
        "encounter_id": A.ref_ids(t.column("encounter")),
        "code": code,
        "code_system": system,
        "status": t.column("status"),
        "performed_start": start,
        "performed_end": end,
        "status_reason_code": reason_code,
        "status_reason_system": reason_system,
        "recorded_at": _recorded(t),
    }


def _medication_columns(t: pa.Table, rtype: str) -> Columns:
    """What every medication row holds, whichever resource it is."""
    code, system = A.first_coding(t.column("medicationCodeableConcept"))
    reason_code, reason_system = A.first_coding(_concept(t.column("statusReason")))
    why_code, why_system = A.first_coding(_concept(t.column("reasonCode")))
    return {
        "medication_id": t.column("id"),
        "resource_type": _repeat(rtype, t.num_rows),
        "patient_id": A.ref_ids(t.column("subject")),
        "code": code,
        "code_system": system,
        "status": t.column("status"),
        "status_reason_code": reason_code,
        "status_reason_system": reason_system,
        "reason_code": why_code,
        "reason_system": why_system,
        "recorded_at": _recorded(t),
    }


def _administration_rows(t: pa.Table) -> Columns:
    start, end = _timing(t, "effective")
    return {
        **_medication_columns(t, "MedicationAdministration"),
        "encounter_id": A.ref_ids(t.column("context")),  # R4: MedicationAdministration.context
        "effective_start": start,
        "effective_end": end,
        "route_code": A.first_code(A.field(t.column("dosage"), "route")),
    }


def _request_rows(t: pa.Table) -> Columns:
    return {
        **_medication_columns(t, "MedicationRequest"),
        "encounter_id": A.ref_ids(t.column("encounter")),
        "effective_start": t.column("authoredOn"),
        "intent": t.column("intent"),
        "do_not_perform": t.column("doNotPerform"),
        "route_code": A.first_code(A.field(A.first(t.column("dosageInstruction")), "route")),
    }


def _concept(column: Any) -> pa.Array:
    """The first concept of an element that is a list in one resource type and a single
    CodeableConcept in another (elements.first_coding reads both)."""
    column = A.whole(column)
    return A.first(column) if pa.types.is_list(column.type) else column


def _drug_in_hand(t: pa.Table) -> bool:
    """A medicationReference is resolved against the whole delivery (medication.py), so
    a file with any is read row-wise."""
    return t.column("medicationReference").null_count == t.num_rows


#: (sequence element, claim, sequence) -> encounter, and per claim its first item encounter.
Pointers = tuple[dict[tuple[str, int, int], str], list[str | None]]


def _claim_encounters(t: pa.Table) -> Pointers:
    """children._claim_encounters for every Claim: the encounter of the first item (with
    an encounter) naming each diagnosis / procedure sequence, and each claim's first
    item encounter."""
    items, owner = _items(t, "item")
    encounter = A.ref_ids(A.first(A.field(items, "encounter"))).to_pylist()
    first: list[str | None] = [None] * t.num_rows
    for claim, enc in zip(owner.tolist(), encounter, strict=True):
        if enc is not None and first[claim] is None:
            first[claim] = enc
    named: dict[tuple[str, int, int], str] = {}
    for element in ("diagnosisSequence", "procedureSequence"):
        sequences = A.whole(A.field(items, element))
        item = pc.list_parent_indices(sequences).to_numpy()
        for i, seq in zip(item.tolist(), pc.list_flatten(sequences).to_pylist(), strict=True):
            if encounter[i] is not None and seq is not None:
                named.setdefault((element, int(owner[i]), seq), encounter[i])
    return named, first


def _claim_rows(t: pa.Table, element: str, pointers: Pointers) -> tuple[pa.Array, np.ndarray, Columns]:
    """The entries of Claim.<element> (diagnosis or procedure): the entries, the claim
    each belongs to, and the columns every claim row has (children.claim_records)."""
    named, first = pointers
    entries, owner = _items(t, element)
    take = pa.array(owner)
    claim_id = t.column("id").take(take)
    number = pa.array(A.numbered(owner)).cast(A.STRING)
    sequence = A.field(entries, "sequence")
    pointer = f"{element}Sequence"
    encounter = [
        first[claim] if seq is None else named.get((pointer, claim, seq), first[claim])
        for claim, seq in zip(owner.tolist(), sequence.to_pylist(), strict=True)
    ]
    columns = {
        "claim_id": claim_id,
        "patient_id": A.ref_ids(t.column("patient")).take(take),
        "encounter_id": pa.array(encounter, A.STRING),
        "status": t.column("status").take(take),
        "use": t.column("use").take(take),
        "sequence": sequence,
        "_key": pc.binary_join_element_wise(claim_id, pa.scalar("/"), number, ""),
    }
    return entries, owner, columns


def _add_claims(sink: Collector, t: pa.Table, rel: str, lines: np.ndarray, origin: Origin | None) -> None:
    """children.claim_records for every Claim: a claim_diagnoses row per diagnosis, then
    a claim_procedures row per procedure, and their codings, claim by claim."""
    t = pa.table({name: A.whole(t.column(name)) for name in t.column_names})
    pointers = _claim_encounters(t)
    diagnoses, d_owner, d = _claim_rows(t, "diagnosis", pointers)
    procedures, p_owner, p = _claim_rows(t, "procedure", pointers)
    counts = np.bincount(d_owner, minlength=t.num_rows) + np.bincount(p_owner, minlength=t.num_rows)
    if (counts == 0).any():
        sink.ignored[CLAIM_WITHOUT_ROWS] += int((counts == 0).sum())
    billable = t.column("billablePeriod")
    d_code, d_system = A.first_coding(A.field(diagnoses, "diagnosisCodeableConcept"))
    p_code, p_system = A.first_coding(A.field(procedures, "procedureCodeableConcept"))
    d_key, p_key = d.pop("_key"), p.pop("_key")
    tables = {
        "claim_diagnoses": {
            "claim_diagnosis_id": d_key,
            **d,
            "diagnosis_type": A.first_code(A.first(A.field(diagnoses, "type"))),
            "code": d_code,
            "code_system": d_system,
            "condition_id": A.ref_ids(A.field(diagnoses, "diagnosisReference")),
            "present_on_admission": A.first_code(A.field(diagnoses, "onAdmission")),
            "billable_start": A.field(billable, "start").take(pa.array(d_owner)),
            "billable_end": A.field(billable, "end").take(pa.array(d_owner)),
        },
        "claim_procedures": {
            "claim_procedure_id": p_key,
            **p,
            "procedure_type": A.first_code(A.first(A.field(procedures, "type"))),
            "code": p_code,
            "code_system": p_system,
            "procedure_id": A.ref_ids(A.field(procedures, "procedureReference")),
            "performed_at": A.field(procedures, "date"),
        },
    }
    n_diagnoses = np.bincount(d_owner, minlength=t.num_rows)
    first_rows: dict[str, int] = {}
    for name, owner, record in (
        ("claim_diagnoses", d_owner, A.numbered(d_owner) - 1),
        ("claim_procedures", p_owner, n_diagnoses[p_owner] + A.numbered(p_owner) - 1),
    ):
        if len(owner):
            where = None if origin is None else replace(origin, spans=origin.spans[owner])
            first_rows[name] = sink.add_block(
                name, tables[name], rel, lines[owner], rtype="Claim", origin=where, record=record
            )
    # Codings, claim by claim: each diagnosis's (its code, then its type), then each procedure's.
    d_concept = A.field(diagnoses, "diagnosisCodeableConcept")
    p_concept = A.field(procedures, "procedureCodeableConcept")
    parts = [
        ("claim_diagnoses", d_key, d_owner, 0, 0, "diagnosisCodeableConcept", d_concept),
        ("claim_diagnoses", d_key, d_owner, 0, 1, "type", A.field(diagnoses, "type")),
        ("claim_procedures", p_key, p_owner, 1, 0, "procedureCodeableConcept", p_concept),
    ]
    sort_keys: list[np.ndarray] = []
    pieces: list[dict[str, Any]] = []
    for name, key, owner, kind, rank, element, column in parts:
        record, system, code = A.concept_codings(*_at(column))
        keep = A.whole(key).is_valid().to_numpy(zero_copy_only=False)[record]
        record = record[keep]
        sort_keys.append(np.stack([owner[record], np.full(len(record), kind), record, np.full(len(record), rank)]))
        pieces.append(
            {
                "table": name,
                "record": record,
                "key": A.whole(key).take(pa.array(record)),
                "element": element,
                "system": A.whole(system).filter(pa.array(keep)),
                "code": A.whole(code).filter(pa.array(keep)),
            }
        )
    keys = np.concatenate(sort_keys, axis=1)
    if not keys.shape[1]:
        return
    order = np.lexsort(keys[::-1])  # claim, diagnoses before procedures, entry, element
    keys = keys[:, order]
    take = pa.array(order)
    table_name = np.concatenate([np.full(len(q["record"]), q["table"], dtype=object) for q in pieces])[order]
    names = np.concatenate([np.full(len(q["record"]), q["element"], dtype=object) for q in pieces])[order]
    record_id = pa.concat_arrays([q["key"] for q in pieces]).take(take)
    group = (keys[1] * (keys[2].max() + 1) + keys[2]) * 2 + keys[3]
    number = pa.array(A.numbered(group)).cast(A.STRING)
    element_arr = pa.array(names, A.STRING)
    table_arr = pa.array(table_name, A.STRING)
    coding_id = pc.binary_join_element_wise(
        table_arr, pa.scalar("/"), record_id, pa.scalar("/"), element_arr, pa.scalar("/"), number, ""
    )
    positions = keys[2] + np.where(
        table_name == "claim_diagnoses", first_rows.get("claim_diagnoses", 0), first_rows.get("claim_procedures", 0)
    )
    sink.add_block(
        CODINGS,
        {
            "coding_id": coding_id,
            "table_name": table_arr,
            "record_id": record_id,
            "record_type": pa.nulls(len(order), A.STRING),
            "element": element_arr,
            "system": pa.concat_arrays([q["system"] for q in pieces]).take(take),
            "code": pa.concat_arrays([q["code"] for q in pieces]).take(take),
        },
        rel,
        lines[keys[0]],
        parent=(table_name, positions),
    )


def _repeat(text: str, n: int) -> pa.Array:
    """``text`` n times, without a Python string per row."""
    return pa.repeat(pa.scalar(text, A.STRING), n)


def _schema(**fields: pa.DataType) -> pa.Schema:
    return pa.schema([("id", A.STRING), *fields.items()])


_CONCEPTS = pa.list_(A.CONCEPT)
_COMPONENT = pa.struct(
    [("code", pa.struct([("coding", pa.list_(A.CODING))])), ("valueQuantity", pa.struct([("value", pa.float64())]))]
)

#: Elements every medication resource is read for.
_MEDICATION: dict[str, pa.DataType] = {
    "subject": A.REFERENCE,
    "status": A.STRING,
    "medicationCodeableConcept": A.CONCEPT,
    "medicationReference": A.REFERENCE,
    "reasonCode": _CONCEPTS,
    "extension": pa.list_(A.EXTENSION),
}

READERS: dict[str, Reader] = {
    "Observation": Reader(
        _schema(
            subject=A.REFERENCE,
            encounter=A.REFERENCE,
            code=A.CONCEPT,
            status=A.STRING,
            effectiveDateTime=A.STRING,
            effectiveInstant=A.STRING,
            effectivePeriod=A.PERIOD,
            issued=A.STRING,
            category=_CONCEPTS,
            valueQuantity=pa.struct([("value", pa.float64()), ("unit", A.STRING), ("code", A.STRING)]),
            valueCodeableConcept=A.CONCEPT,
            component=pa.list_(_COMPONENT),
        ),
        _observation_rows,
    ),
    "Condition": Reader(
        _schema(
            subject=A.REFERENCE,
            encounter=A.REFERENCE,
            code=A.CONCEPT,
            clinicalStatus=A.CONCEPT,
            verificationStatus=A.CONCEPT,
            category=_CONCEPTS,
            onsetDateTime=A.STRING,
            onsetPeriod=A.PERIOD,
            abatementDateTime=A.STRING,
            abatementPeriod=A.PERIOD,
            recordedDate=A.STRING,
            extension=pa.list_(A.EXTENSION),
        ),
        _condition_rows,
    ),
    "Encounter": Reader(
        _schema(
            status=A.STRING,
            subject=A.REFERENCE,
            type=_CONCEPTS,
            serviceType=A.CONCEPT,
            priority=A.CONCEPT,
            hospitalization=pa.struct([("admitSource", A.CONCEPT), ("dischargeDisposition", A.CONCEPT)]),
            period=A.PERIOD,
            serviceProvider=A.REFERENCE,
            location=pa.list_(pa.struct([("location", A.REFERENCE), ("period", A.PERIOD)])),
            reasonCode=_CONCEPTS,
            diagnosis=pa.list_(
                pa.struct(
                    [
                        ("condition", A.REFERENCE),
                        ("use", A.CONCEPT),
                        ("rank", pa.int64()),
                        ("extension", pa.list_(A.EXTENSION)),
                    ]
                )
            ),
            reasonReference=pa.list_(A.REFERENCE),
            **{"class": A.CONCEPT},
        ),
        _encounter_rows,
        _encounter_children,
    ),
    "Procedure": Reader(
        _schema(
            subject=A.REFERENCE,
            encounter=A.REFERENCE,
            code=A.CONCEPT,
            category=A.CONCEPT,
            status=A.STRING,
            performedDateTime=A.STRING,
            performedPeriod=A.PERIOD,
            statusReason=A.CONCEPT,
            extension=pa.list_(A.EXTENSION),
        ),
        _procedure_rows,
    ),
    "MedicationAdministration": Reader(
        _schema(
            **_MEDICATION,
            context=A.REFERENCE,
            category=A.CONCEPT,
            statusReason=_CONCEPTS,
            effectiveDateTime=A.STRING,
            effectivePeriod=A.PERIOD,
            dosage=pa.struct([("route", A.CONCEPT)]),
        ),
        _administration_rows,
        accept=_drug_in_hand,
    ),
    "MedicationRequest": Reader(
        _schema(
            **_MEDICATION,
            encounter=A.REFERENCE,
            category=_CONCEPTS,
            statusReason=A.CONCEPT,
            authoredOn=A.STRING,
            intent=A.STRING,
            doNotPerform=pa.bool_(),
            dosageInstruction=pa.list_(pa.struct([("route", A.CONCEPT)])),
        ),
        _request_rows,
        accept=_drug_in_hand,
    ),
    "Claim": Reader(
        _schema(
            status=A.STRING,
            use=A.STRING,
            patient=A.REFERENCE,
            billablePeriod=A.PERIOD,
            diagnosis=pa.list_(
                pa.struct(
                    [
                        ("sequence", pa.int64()),
                        ("diagnosisCodeableConcept", A.CONCEPT),
                        ("diagnosisReference", A.REFERENCE),
                        ("type", _CONCEPTS),
                        ("onAdmission", A.CONCEPT),
                    ]
                )
            ),
            procedure=pa.list_(
                pa.struct(
                    [
                        ("sequence", pa.int64()),
                        ("type", _CONCEPTS),
                        ("procedureCodeableConcept", A.CONCEPT),
                        ("procedureReference", A.REFERENCE),
                        ("date", A.STRING),
                    ]
                )
            ),
            item=pa.list_(
                pa.struct(
                    [
                        ("encounter", pa.list_(A.REFERENCE)),
                        ("diagnosisSequence", pa.list_(pa.int64())),
                        ("procedureSequence", pa.list_(pa.int64())),
                    ]
                )
            ),
        ),
        None,
        add=_add_claims,
    ),
    "Patient": Reader(
        _schema(
            birthDate=A.STRING,
            gender=A.STRING,
            deceasedDateTime=A.STRING,
            managingOrganization=A.REFERENCE,
        ),
        _patient_rows,
    ),
}


def _at(column: Any, path: tuple[str, ...] = ()) -> tuple[pa.Array, np.ndarray]:
    """children._at for every row of ``column``: the values at ``path`` below it (a step
    that meets a list continues into every item) and the row each belongs to."""
    column = A.whole(column)
    owner = np.arange(len(column))
    for step in (*path, None):
        if pa.types.is_list(column.type):
            owner = owner[pc.list_parent_indices(column).to_numpy()]
            column = pc.list_flatten(column)
        if step is not None:
            column = A.field(column, step)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if not valid.all():
        column, owner = column.filter(pa.array(valid)), owner[valid]
    return column, owner


def _codings(rtype: str, table: str, t: pa.Table, ids: pa.Array) -> Columns:
    """children.resource_codings for every record of the block, in the same order:
    record by record, element by element (CODED_ELEMENTS), numbered 1.. within each."""
    valid = ids.is_valid().to_numpy(zero_copy_only=False)
    records: list[np.ndarray] = []
    rank: list[np.ndarray] = []
    systems: list[pa.Array] = []
    codes: list[pa.Array] = []
    names: list[str] = []
    elements = CODED_ELEMENTS.get(rtype, ())
    if rtype in MEDICATION_RESOURCES:
        elements = ((MEDICATION_ELEMENT, (MEDICATION_ELEMENT,)), *elements)
    for k, (element, path) in enumerate(elements):
        concepts, owner = _at(t.column(path[0]), path[1:])
        record, system, code = A.concept_codings(concepts, owner)
        keep = valid[record]
        records.append(record[keep])
        rank.append(np.full(int(keep.sum()), k))
        systems.append(system.filter(pa.array(keep)))
        codes.append(code.filter(pa.array(keep)))
        names.append(element)
    record = np.concatenate(records) if records else np.zeros(0, dtype=np.int64)
    element_rank = np.concatenate(rank) if rank else np.zeros(0, dtype=np.int64)
    order = np.lexsort((element_rank, record))  # stable: a concept's codings keep their order
    record, element_rank = record[order], element_rank[order]
    take = pa.array(order)
    number = A.numbered(record * len(elements) + element_rank)
    record_ids = ids.take(pa.array(record))
    element = pa.array(names, A.STRING).take(pa.array(element_rank))
    prefix = f"{table}/{rtype}/" if TABLES[table].type_column else f"{table}/"
    coding_id = pc.binary_join_element_wise(
        pa.scalar(prefix), record_ids, pa.scalar("/"), element, pa.scalar("/"), pa.array(number).cast(A.STRING), ""
    )
    return {
        "coding_id": coding_id,
        "table_name": _repeat(table, len(record)),
        "record_id": record_ids,
        "record_type": (_repeat(rtype, len(record)) if TABLES[table].type_column else pa.nulls(len(record), A.STRING)),
        "element": element,
        "system": (pa.concat_arrays(systems) if systems else pa.array([], A.STRING)).take(take),
        "code": (pa.concat_arrays(codes) if codes else pa.array([], A.STRING)).take(take),
        "_parent": pa.array(record),
    }


def _spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) byte offsets of every line, newline excluded and a leading BOM
    skipped, found by array operations rather than one bytes object per line."""
    buf = np.frombuffer(data, dtype=np.uint8)
    # In slices that stay in the CPU cache: ten times faster than one pass over the file.
    step = 1 << 22
    found = [np.flatnonzero(buf[at : at + step] == 0x0A) + at for at in range(0, len(buf), step)]
    newlines = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    ends = np.concatenate((newlines, [len(data)])).astype(np.int64)
    room = np.flatnonzero(ends - starts >= len(BOM))
    if len(room):
        at = starts[room]
        bom = (buf[at] == BOM[0]) & (buf[at + 1] == BOM[1]) & (buf[at + 2] == BOM[2])
        starts[room[bom]] += len(BOM)
    return starts, ends


#: First bytes of a line that may hold only whitespace (bytes.strip's set).
_MAY_BE_BLANK = np.zeros(256, dtype=bool)
_MAY_BE_BLANK[list(b" \t\n\r\x0b\x0c")] = True


def _parse(payload: Any, schema: pa.Schema, expected: int) -> pa.Table | None:
    """The non-blank lines of ``payload`` as one table of ``schema``, or None when
    pyarrow refuses any of them."""
    try:
        table = pj.read_json(
            pa.BufferReader(pa.py_buffer(payload)),
            read_options=pj.ReadOptions(block_size=_BLOCK_BYTES),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return table if table.num_rows == expected else None


#: What _head gives for a line that is not a JSON object: equal to no resource type.
_NOT_AN_OBJECT = object()


def _head(line: Any) -> Any:
    """The resourceType of a line that is a JSON object, else :data:`_NOT_AN_OBJECT`."""
    try:
        return _HEAD.decode(line).resourceType
    except msgspec.DecodeError:
        return _NOT_AN_OBJECT


#: Lines checked by one msgspec call (a run holding a bad line is checked line by line).
_RUN = 64


def _heads(view: memoryview, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The resourceType of each (non-blank) line, :data:`_NOT_AN_OBJECT` for a line that
    is not a JSON object. Runs of lines are decoded as NDJSON in one call; a run that
    fails (or holds a line msgspec counts differently, such as a BOM) line by line."""
    heads = np.empty(len(starts), dtype=object)
    first, last = starts.tolist(), ends.tolist()
    decode_lines = _HEAD.decode_lines
    for at in range(0, len(first), _RUN):
        stop = min(at + _RUN, len(first))
        try:
            run = decode_lines(view[first[at] : last[stop - 1]])
        except msgspec.DecodeError:
            run = None
        if run is not None and len(run) == stop - at:
            heads[at:stop] = [h.resourceType for h in run]
        else:
            heads[at:stop] = [_head(view[a:b]) for a, b in zip(first[at:stop], last[at:stop], strict=True)]
    return heads


@dataclass(frozen=True)
class Plan:
    """One file read column-wise, before anything is given to the collector: what
    :func:`plan_file` works out (it touches no shared state, so the next file can be
    planned on another thread while this one is stored)."""

    rtype: str
    #: Lines the validation sample took (a plan made for another budget is made again).
    budget: int
    view: memoryview
    starts: np.ndarray
    ends: np.ndarray
    #: Lines read row-wise (indexes into starts/ends), and lines in the block.
    tolerant: np.ndarray
    chosen: np.ndarray
    table: pa.Table | None
    #: The block's rows, child rows and codings (None for a reader that stores its own).
    built: Built | None


#: (main columns, children, codings with their ``_parent``, POA statements).
Built = tuple[Columns, Children, Columns, list[tuple[str, str]]]


def plan_file(data: bytes, rtype: str, budget: int) -> Plan | None:
    """Plan reading one NDJSON file of ``rtype`` whose first ``budget`` resources feed
    the validation sample; None when this path declines the file."""
    reader = READERS.get(rtype)
    if reader is None or not data or (b"null" in data and _NULL.search(data)):
        return None
    starts, ends = _spans(data)
    lengths = ends - starts
    present = lengths > 0
    buf = np.frombuffer(data, dtype=np.uint8)
    view = memoryview(data)
    first_byte = buf[np.minimum(starts, len(data) - 1)]
    for i in np.flatnonzero(present & _MAY_BE_BLANK[first_byte]).tolist():
        present[i] = bool(bytes(view[starts[i] : ends[i]]).strip())
    lines = np.flatnonzero(present)
    same = _heads(view, starts[lines], ends[lines]) == rtype
    # The first lines of the type feed the structural-validation sample, row-wise.
    sampled = np.zeros(len(lines), dtype=bool)
    sampled[np.flatnonzero(same)[:budget]] = True
    clean = same & ~sampled
    tolerant, chosen = lines[~clean], lines[clean]
    table = None
    if len(chosen):
        line_starts = np.concatenate(([0], ends[:-1] + 1))
        boms = np.flatnonzero(starts != line_starts)
        payload: Any = data
        if len(tolerant) or len(boms):
            # Lines read row-wise, and BOMs, become spaces: pyarrow skips blank lines.
            copy = bytearray(data)
            for i in tolerant.tolist():
                copy[starts[i] : ends[i]] = b" " * int(lengths[i])
            for i in boms.tolist():
                copy[line_starts[i] : starts[i]] = b" " * int(starts[i] - line_starts[i])
            payload = copy
        table = _parse(payload, reader.schema, len(chosen))
        if table is None or not reader.accept(table):
            return None
    built = _build(rtype, reader, table) if table is not None and reader.add is None else None
    return Plan(rtype, budget, view, starts, ends, tolerant, chosen, table, built)


def sample_budget(sink: Collector, rtype: str) -> int:
    """Resources of ``rtype`` the run's validation sample still takes."""
    return max(0, sink.validate_sample - sink.sampled[rtype])


def read_columnar(
    data: bytes,
    rtype: str,
    rel: str,
    sink: Collector,
    read_line: LineReader,
    *,
    path: Path | None = None,
    ahead: tuple[int, Plan | None] | None = None,
) -> bool:
    """Read one NDJSON file of ``rtype`` into ``sink``; False (and ``sink`` untouched)
    when this path declines it and the tolerant reader must read it instead. ``path``
    is where the file can be read again (a row rejected later is described from it);
    ``ahead`` is (budget, plan) of the file planned ahead (:func:`plan_file`), used when
    made for the budget the sample now has."""
    budget = sample_budget(sink, rtype)
    plan = ahead[1] if ahead is not None and ahead[0] == budget else plan_file(data, rtype, budget)
    if plan is None:
        return False
    view, starts, ends = plan.view, plan.starts, plan.ends
    last = len(starts) - 1
    for i in plan.tolerant.tolist():
        # As the tolerant reader sees it, newline included (orjson's messages differ).
        line = bytes(view[starts[i] : ends[i]])
        read_line(i + 1, line if i == last else line + b"\n")
    if plan.table is not None:
        chosen = plan.chosen
        origin = Origin(path, rel, np.stack([starts[chosen], ends[chosen]], axis=1)) if path is not None else None
        reader = READERS[rtype]
        if plan.built is None:
            assert reader.add is not None
            reader.add(sink, plan.table, rel, chosen + 1, origin)
        else:
            _store(sink, rtype, plan.built, rel, chosen + 1, origin)
    return True


def _build(rtype: str, reader: Reader, t: pa.Table) -> Built:
    """The block's rows, child rows, codings and POA statements (Arrow only: no collector)."""
    table = RESOURCE_TABLES[rtype]
    assert reader.rows is not None
    columns = {k: A.whole(v) for k, v in reader.rows(t).items()}
    ids = columns[TABLES[table].key]
    poa = _encounter_poa(t) if rtype == "Encounter" else []
    return columns, reader.children(t, columns), _codings(rtype, table, t, ids), poa


def _store(sink: Collector, rtype: str, built: Built, rel: str, lines: np.ndarray, origin: Origin | None) -> None:
    table = RESOURCE_TABLES[rtype]
    columns, children, codings, poa = built
    first = sink.add_block(table, columns, rel, lines, rtype=rtype, origin=origin)
    for condition, code in poa:
        sink.poa.codes.setdefault(condition, code)
    for child, child_columns, owner in children:
        if len(owner):
            sink.add_block(child, child_columns, rel, lines[owner], parent=(table, first + owner))
    codings = dict(codings)
    parent = codings.pop("_parent").to_numpy()
    if len(parent):
        sink.add_block(CODINGS, codings, rel, lines[parent], parent=(table, first + parent))


__all__ = ["READERS", "Plan", "Reader", "plan_file", "read_columnar", "sample_budget"]
