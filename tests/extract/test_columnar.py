"""The column-wise NDJSON reader gives exactly what the tolerant row-wise reader gives.

Every test reads the same files both ways (the row-wise way by switching the column-wise
readers off) and compares every table, the quarantine, the counts and what was ignored;
and checks the column-wise path really read the files it should (a comparison of the
tolerant reader with itself would pass whatever the column-wise code did).
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

import pipelines.extract.fhir_ndjson as fhir_ndjson
from pipelines.extract import ExtractResult, extract_paths
from pipelines.extract.collector import Collector
from pipelines.extract.columnar import READERS, read_columnar
from pipelines.generate import generate
from pipelines.tables import POA_EXTENSION


@pytest.fixture
def columnar_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts, per resource type, the files the column-wise path read (did not decline)."""
    seen: Counter[str] = Counter()

    def counted(data: bytes, rtype: str, rel: str, sink: Collector, read_line: Any, **options: Any) -> bool:
        used = read_columnar(data, rtype, rel, sink, read_line, **options)
        seen[rtype] += used
        return used

    monkeypatch.setattr(fhir_ndjson, "read_columnar", counted)
    yield seen


def _both(folder: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> tuple[ExtractResult, ExtractResult]:
    fast = extract_paths([folder], **options)
    with monkeypatch.context() as m:
        m.setattr(fhir_ndjson, "READERS", {})
        slow = extract_paths([folder], **options)
    return fast, slow


def _assert_same(fast: ExtractResult, slow: ExtractResult) -> None:
    assert fast.tables.keys() == slow.tables.keys()
    for name in slow.tables:
        pd.testing.assert_frame_equal(fast.tables[name], slow.tables[name], obj=name)
    pd.testing.assert_frame_equal(fast.quarantine, slow.quarantine, obj="quarantine")
    assert fast.rows_read == slow.rows_read
    assert fast.ignored == slow.ignored


def test_a_generated_month_with_its_defects_reads_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columnar_reads: Counter[str]
) -> None:
    generate(tmp_path / "in", patients=3000, months=1, seed=11, end_period="2026-10")
    (batch,) = (tmp_path / "in").iterdir()
    fast, slow = _both(batch, monkeypatch)
    _assert_same(fast, slow)
    sent = {path.name.split(".")[0] for path in batch.glob("*.ndjson")}
    assert columnar_reads == Counter(dict.fromkeys(sent & READERS.keys(), 1))
    assert {"Observation", "Encounter", "MedicationAdministration"} <= columnar_reads.keys()
    # The month's defects (malformed lines, unreadable dates) are in both readers' quarantine.
    assert len(slow.quarantine) >= 5
    assert set(slow.quarantine["table_name"]) >= {"observations", "encounters", "conditions"}


@pytest.mark.shared_data
def test_synthea_resources_read_the_same_both_ways(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columnar_reads: Counter[str]
) -> None:
    """Synthea's SMART Bundles, written out as Bulk NDJSON (one file per type, here only):
    real shapes, ``urn:uuid:`` references, blood-pressure panels, coded values."""
    lines: dict[str, list[bytes]] = {}
    for path in sorted((shared_data / "synthea-smart-r4" / "bundles").glob("*.json*")):
        raw = path.read_bytes()
        bundle = orjson.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            lines.setdefault(resource["resourceType"], []).append(orjson.dumps(resource))
    folder = tmp_path / "ndjson"
    folder.mkdir()
    read_here = READERS.keys() & lines.keys()
    for rtype in read_here:
        (folder / f"{rtype}.ndjson").write_bytes(b"\n".join(lines[rtype]) + b"\n")
    fast, slow = _both(folder, monkeypatch)
    _assert_same(fast, slow)
    assert columnar_reads == Counter(dict.fromkeys(read_here, 1))
    assert {"Observation", "MedicationRequest", "Procedure"} <= read_here
    assert len(slow.tables["observations"]) > 10_000
    assert slow.tables["observations"]["systolic"].notna().any()


def _ref(text: str) -> dict[str, Any]:
    return {"reference": text}


CODING = {"system": "http://snomed.info/sct", "code": "1234"}

ODD_OBSERVATIONS: list[Any] = [
    "\ufeff"
    + orjson.dumps(
        {"resourceType": "Observation", "id": "o1", "subject": _ref("Patient/p1"), "code": {"coding": [CODING]}}
    ).decode(),
    "",
    "   ",
    {
        "resourceType": "Observation",
        "id": "o2",
        "subject": _ref("urn:uuid:p2"),
        "encounter": _ref("https://ehr.example/fhir/Encounter/e1/_history/3"),
        "code": {"text": "no coding at all"},
        "category": [],
        "effectivePeriod": {"start": "2026-10-01T10:00:00+02:00", "end": "2026-10-01T11:00:00Z"},
        "valueQuantity": {"value": 7, "code": "mmol/L"},
    },
    {
        "resourceType": "Observation",
        "id": "o3",
        "subject": {"identifier": {"value": "  p3 "}},
        "code": {"system": "http://loinc.org", "code": "85354-9"},  # a bare Coding
        "category": [{"coding": [{"code": "vital-signs"}, {"code": "second"}]}, {"coding": [{"code": "third"}]}],
        "effectiveInstant": "2026-10-02T08:00:00Z",
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}},
            {"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 150}},
            {"code": {"coding": [{"code": "x"}, {"code": "8462-4"}]}, "valueQuantity": {"value": 85.5}},
        ],
    },
    {
        "resourceType": "Observation",
        "subject": _ref("Patient?identifier=http://mrn|p4"),
        "code": {"coding": []},
        "valueCodeableConcept": {"coding": [{"code": "a"}, {"system": "s", "code": "b"}]},
    },  # no id: a row, no codings
    {"resourceType": "Observation", "id": "", "subject": _ref("  "), "code": {"coding": [CODING]}},
    "{not json",
    '{"resourceType":"Observation","id":"two"} {"resourceType":"Observation","id":"on-one-line"}',
    [1, 2],
    {"resourceType": "Condition", "id": "c-in-the-wrong-file"},
    {
        "resourceType": "Observation",
        "id": "o6",
        "subject": _ref("#contained"),
        "code": {"coding": [{"code": "a\u0001b"}]},
    },
    '{"resourceType":"Observation","id":"o7","status":"final","issued":"10/10/2026"}\r',
    "\ufeff"  # a byte-order mark on a line the columnar path reads
    + orjson.dumps(
        {"resourceType": "Observation", "id": "o8", "effectiveDateTime": "2026-10-03", "valueQuantity": {"value": 1.25}}
    ).decode(),
]

ODD_ENCOUNTERS: list[Any] = [
    {"resourceType": "Encounter", "id": "e0", "class": {"code": "IMP"}},
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "type": [{"coding": [{"system": "s", "code": "t1"}, {"code": "t2"}]}, {"coding": [{"code": "t3"}]}],
        "subject": _ref("Patient/p1"),
        "period": {"start": "2026-10-01T10:00:00+01:00", "end": "2026-10-05"},
        "hospitalization": {"dischargeDisposition": {"coding": [{"code": "home"}, {"code": "01"}]}},
        "serviceProvider": {"reference": "Organization?identifier=https://ids|org1", "display": "   "},
        "location": [
            {"location": {"reference": "Location/w1", "display": "Ward\u00a01"}, "period": {"start": "2026-10-01"}},
            {"location": {"identifier": {"value": "w2"}, "display": "\u2003"}},
        ],
        "reasonCode": [{"coding": [{"code": "r1"}]}],
        "diagnosis": [
            {
                "condition": _ref("Condition/c1"),
                "use": {"coding": [{"code": "AD"}]},
                "rank": 1,
                "extension": [
                    {"url": "http://example.org/other", "valueCode": "zz"},
                    {"url": POA_EXTENSION, "valueCoding": {"code": "N"}},
                    {"url": POA_EXTENSION, "valueCode": "Y"},
                ],
            },
            {"condition": _ref("Condition/c2"), "extension": [{"url": POA_EXTENSION, "valueCode": "W"}]},
        ],
        "reasonReference": [_ref("Condition/c3"), _ref("urn:uuid:c4")],
    },
    {  # no id: no children, but its POA statements still count for the conditions
        "resourceType": "Encounter",
        "diagnosis": [{"condition": _ref("Condition/c5"), "extension": [{"url": POA_EXTENSION, "valueCode": "U"}]}],
        "location": [{"location": _ref("Location/w9")}],
    },
    {
        "resourceType": "Encounter",
        "id": "e3",
        "diagnosis": [{"condition": _ref("Condition/c1"), "extension": [{"url": POA_EXTENSION, "valueCode": "Y"}]}],
        "period": {"start": "2026-13-45"},
    },
]

#: Spellings of a reference, common and not: each is read as references.ref_id reads it.
REFERENCES = ["Patient/p1", "Patient/p1 ", " Patient/p1", "Patient/p1?x=1", "Patient/", "Pat1ent/x", "Patient//x",
              "Patient/a/b", "Patiënt/x", "Patient/\u00e9", "Patient/x\u3000", "/x", "Patient",
              "Patient?identifier=s|v", "urn:uuid:u1", "urn:oid:1.2", "#c1", "Patient/p1/_history/2", "\t"]  # fmt: skip

ODD_CONDITIONS: list[Any] = [
    {"resourceType": "Condition", "id": "c0", "subject": _ref("Patient/p1")},
    {"resourceType": "Condition", "id": "c1", "subject": _ref("Patient/p1"), "code": {"coding": [CODING]}},
    {
        "resourceType": "Condition",
        "id": "c2",
        "extension": [{"url": POA_EXTENSION, "valueCodeableConcept": {"coding": [{"code": "1"}]}}],
        "onsetPeriod": {"start": "2026-09-01", "end": "2026-09-30"},
        "abatementPeriod": {"start": "2026-10-10"},
        "category": [{"coding": [{"code": "problem-list-item"}]}],
        "clinicalStatus": {"coding": [{"code": "active"}]},
    },
    {"resourceType": "Condition", "id": "c5", "onsetDateTime": "2026-10-01", "recordedDate": "2026-10-02T00:00:00Z"},
    *({"resourceType": "Condition", "id": f"r{n}", "subject": _ref(text)} for n, text in enumerate(REFERENCES)),
]

ODD_PATIENTS: list[Any] = [
    {"resourceType": "Patient", "id": "p0"},
    {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Never", "given": ["Read"]}],
        "birthDate": "1950-02-03",
        "gender": "female",
        "deceasedDateTime": "2026-10-20T12:00:00+00:00",
        "managingOrganization": {"reference": "Organization/org1", "display": "Riverside"},
    },
    {"resourceType": "Patient", "id": "p2", "birthDate": "1950", "deceasedBoolean": True},
]


RECORDED = "https://mirror.example/fhir/StructureDefinition/qicore-recorded"  # versioned or mirrored base
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

ODD_ADMINISTRATIONS: list[Any] = [
    {"resourceType": "MedicationAdministration", "id": "ma0", "status": "completed"},
    {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "status": "not-done",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "854235"}, {"code": "x"}]},
        "subject": _ref("Patient/p1"),
        "context": _ref("Encounter/e1"),
        "effectiveDateTime": "2026-10-01T10:00:00Z",
        "effectivePeriod": {"start": "2026-09-01", "end": "2026-09-02"},  # the dateTime wins; no end
        "statusReason": [{"coding": [{"code": "refused"}]}, {"coding": [{"code": "second"}]}],
        "reasonCode": [{"coding": [{"code": "r"}]}],
        "category": {"coding": [{"code": "inpatient"}]},
        "dosage": {"route": {"system": "http://snomed.info/sct", "code": "34206005"}},  # a bare Coding
        "extension": [
            {"url": "http://example.org/other", "valueDateTime": "2020-01-01"},
            {"url": RECORDED, "valueDateTime": "2026-10-01T09:00:00Z"},
        ],
    },
    {
        "resourceType": "MedicationAdministration",
        "id": "ma2",
        "effectivePeriod": {"start": "2026-10-02", "end": "2026-10-03"},
        "medicationCodeableConcept": {"text": "no coding"},
    },
]

ODD_REQUESTS: list[Any] = [
    {"resourceType": "MedicationRequest", "id": "mr0", "status": "active"},
    {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "completed",
        "intent": "order",
        "doNotPerform": True,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "1"}]},
        "encounter": _ref("Encounter/e1"),
        "authoredOn": "2026-10-01",
        "category": [{"coding": [{"code": "inpatient"}]}],
        "statusReason": {"coding": [{"code": "stopped"}]},
        "dosageInstruction": [{"route": {"coding": [{"code": "po"}]}}, {"route": {"coding": [{"code": "iv"}]}}],
    },
    {"resourceType": "MedicationRequest", "id": "mr2", "doNotPerform": False, "dosageInstruction": []},
]

ODD_PROCEDURES: list[Any] = [
    {"resourceType": "Procedure", "id": "pr0", "status": "completed"},
    {
        "resourceType": "Procedure",
        "id": "pr1",
        "status": "not-done",
        "code": {"coding": [CODING, {"code": "second"}]},
        "category": {"coding": [{"code": "surgical"}]},
        "statusReason": {"coding": [{"system": "s", "code": "declined"}]},
        "performedPeriod": {"start": "2026-10-01T08:00:00-05:00", "end": "2026-10-01T09:00:00-05:00"},
        "extension": [{"url": RECORDED, "valueDateTime": "2026-10-01T07:00:00Z"}],
    },
    {"resourceType": "Procedure", "id": "pr2", "performedDateTime": "2026-10-04"},
]


ICD = "http://hl7.org/fhir/sid/icd-10-cm"
ODD_CLAIMS: list[Any] = [
    {"resourceType": "Claim", "id": "k0", "status": "active"},
    {
        "resourceType": "Claim",
        "id": "k1",
        "status": "active",
        "use": "claim",
        "patient": _ref("Patient/p1"),
        "billablePeriod": {"start": "2026-10-01", "end": "2026-10-05"},
        "diagnosis": [
            {
                "sequence": 1,
                "diagnosisCodeableConcept": {"coding": [{"system": ICD, "code": "W19"}, {"code": "second"}]},
                "type": [{"coding": [{"code": "principal"}]}, {"coding": [{"code": "admitting"}]}],
                "onAdmission": {"coding": [{"code": "N"}]},
            },
            {"sequence": 2, "diagnosisReference": _ref("Condition/c1")},
            {"sequence": 7, "diagnosisCodeableConcept": {"coding": [{"code": "L89"}]}},  # no item names 7
            {"diagnosisCodeableConcept": {"system": ICD, "code": "I10"}},  # no sequence; a bare Coding
        ],
        "procedure": [
            {"sequence": 1, "procedureCodeableConcept": {"coding": [{"code": "0BH17EZ"}]}, "date": "2026-10-02"},
            {"sequence": 2, "type": [{"coding": [{"code": "principal"}]}], "date": "02/10/2026"},  # unreadable
        ],
        "item": [
            {"sequence": 1, "encounter": [_ref("Encounter/e1")]},
            {"sequence": 2, "diagnosisSequence": [2, 1]},  # no encounter: names nothing
            {"sequence": 3, "diagnosisSequence": [2], "procedureSequence": [2], "encounter": [_ref("Encounter/e3")]},
            {"sequence": 4, "diagnosisSequence": [2], "encounter": [_ref("Encounter/e4")]},  # 2 is taken
        ],
    },
    {"resourceType": "Claim", "id": "k2", "item": [{"encounter": [_ref("Encounter/e1")]}]},  # no rows
    {"resourceType": "Claim", "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [CODING]}}]},
]


def test_odd_but_readable_shapes_read_the_same_both_ways(
    write_ndjson: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columnar_reads: Counter[str]
) -> None:
    folder = tmp_path / "odd"
    write_ndjson("Observation.ndjson", ODD_OBSERVATIONS, folder)
    write_ndjson("Encounter.000.ndjson.gz", ODD_ENCOUNTERS, folder)
    write_ndjson("Condition.ndjson", ODD_CONDITIONS, folder)
    write_ndjson("Patient.ndjson", ODD_PATIENTS, folder)
    write_ndjson("MedicationAdministration.ndjson", ODD_ADMINISTRATIONS, folder)
    write_ndjson("MedicationRequest.000.ndjson", ODD_REQUESTS, folder)
    write_ndjson("Procedure.ndjson", ODD_PROCEDURES, folder)
    write_ndjson("Claim.ndjson", ODD_CLAIMS, folder)
    # A reference to a Medication elsewhere in the delivery: this file is read row-wise.
    write_ndjson(
        "MedicationRequest.001.ndjson",
        [
            {"resourceType": "MedicationRequest", "id": f"mr{n}", "medicationReference": _ref("Medication/m1")}
            for n in (5, 6)
        ],  # fmt: skip
        folder,
    )
    write_ndjson(
        "Medication.ndjson", [{"resourceType": "Medication", "id": "m1", "code": {"coding": [CODING]}}], folder
    )
    fast, slow = _both(folder, monkeypatch, validate_sample=1)
    _assert_same(fast, slow)
    assert columnar_reads == Counter(dict.fromkeys(READERS, 1))
    # The shapes were really there to be read (a quiet mistake in the fixture would
    # compare two empty tables).
    codings = set(slow.tables["codings"]["coding_id"])
    assert {
        "encounters/e1/dischargeDisposition/2",
        "observations/o3/category/3",
        "observations/o3/code/1",
        "medications/MedicationAdministration/ma1/medicationCodeableConcept/2",
        "medications/MedicationRequest/mr1/route/2",
        "medications/MedicationRequest/mr6/medicationCodeableConcept/1",
        "procedures/pr1/code/2",
        "claim_diagnoses/k1/1/type/2",
        "claim_diagnoses/k1/4/diagnosisCodeableConcept/1",
    } <= codings
    diagnoses = slow.tables["claim_diagnoses"].dropna(subset=["claim_diagnosis_id"])
    assert dict(zip(diagnoses["claim_diagnosis_id"], diagnoses["encounter_id"], strict=True)) == {
        "k1/1": "e1",  # item 2 names it but has no encounter: the claim's first
        "k1/2": "e3",  # the first item with an encounter naming it
        "k1/3": "e1",
        "k1/4": "e1",
    }
    assert "k1/2" in set(slow.quarantine["record_id"])  # the second procedure's date: described from the file
    assert slow.ignored.get("Claim without diagnosis or procedure") == 1
    assert {"o2", "o8"} <= set(slow.tables["observations"]["observation_id"].dropna())
    assert "o7" in set(slow.quarantine["record_id"])  # unreadable issued: described from the file again
    o3 = slow.tables["observations"].set_index("observation_id").loc["o3"]
    assert pd.isna(o3["systolic"]) and o3["diastolic"] == 85.5  # the first 8480-6 component has no value
    assert len(slow.tables["encounter_diagnoses"]) == 4
    assert slow.tables["conditions"].set_index("condition_id")["present_on_admission"].to_dict()["c5"] == "U"
    assert set(slow.quarantine["reasons"].str.split(":").str[0]) >= {"malformed JSON", "not a FHIR resource"}


@pytest.mark.parametrize(
    "line",
    [
        {"resourceType": "Observation", "id": "o1", "status": None},  # a JSON null
        {"resourceType": "Observation", "id": 5},  # a number where text belongs
        {"resourceType": "Observation", "id": "o1", "code": [{"coding": []}]},  # a list where an object belongs
        '{"resourceType":"Observation","id":"o1","id":"o2"}',  # a key given twice
    ],
    ids=["null", "number-id", "list-concept", "duplicate-key"],
)
def test_a_file_the_columnar_path_could_read_differently_is_read_row_wise(
    line: Any, write_ndjson: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = {"resourceType": "Observation", "id": "o0", "code": {"coding": [CODING]}}
    path = write_ndjson("Observation.ndjson", [good, line, good])
    sink = Collector(validate_sample=0)
    calls: list[int] = []
    assert not read_columnar(path.read_bytes(), "Observation", "Observation.ndjson", sink, lambda n, _: calls.append(n))
    assert not calls and not sink.blocks and not sink.quarantine
    fast, slow = _both(tmp_path, monkeypatch, validate_sample=0)
    _assert_same(fast, slow)
