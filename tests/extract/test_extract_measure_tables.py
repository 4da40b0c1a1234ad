"""eCQM tables and columns: every coding, location history, diagnoses, claims, orders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.extract import ExtractResult, extract_batch
from pipelines.extract.flatten import (
    DEVICE_REQUEST_DO_NOT_PERFORM,
    DO_NOT_PERFORM_REASON_EXTENSION,
    RECORDED_EXTENSION,
    flatten_condition,
    flatten_location,
    flatten_medication_administration,
    flatten_medication_request,
    flatten_observation,
    flatten_procedure,
)
from pipelines.tables import POA_EXTENSION, POA_SYSTEM, TABLES
from tests.extract.test_extract_batch import Writer, _assert_balanced, _enc

SCT = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


def _cc(*codes: tuple[str, str]) -> dict:
    return {"coding": [{"system": s, "code": c} for s, c in codes]}


def _poa(code: str) -> dict:
    return {"url": POA_EXTENSION, "valueCodeableConcept": {"coding": [{"system": POA_SYSTEM, "code": code}]}}


def _codings(result: ExtractResult, table: str, record_id: str) -> list[tuple[str, str, str]]:
    c = result.tables["codings"]
    sel = c[(c["table_name"] == table) & (c["record_id"] == record_id)]
    return list(zip(sel["element"], sel["system"], sel["code"], strict=True))


def test_not_given_administration_keeps_its_reason_and_route() -> None:
    row = flatten_medication_administration(
        {
            "id": "ma1",
            "status": "not-done",
            "statusReason": [_cc((SCT, "183932001"))],
            "medicationCodeableConcept": _cc(("rxnorm", "1361574")),
            "dosage": {"route": _cc((SCT, "34206005"))},
            "effectivePeriod": {"start": "2026-11-02T11:00:00Z"},
        }
    )
    assert (row["status"], row["status_reason_code"], row["status_reason_system"]) == ("not-done", "183932001", SCT)
    assert (row["route_code"], row["intent"], row["do_not_perform"]) == ("34206005", None, None)


def test_do_not_perform_medication_request_keeps_intent_and_reason() -> None:
    row = flatten_medication_request(
        {
            "id": "mr1",
            "status": "completed",
            "intent": "order",
            "doNotPerform": True,
            "medicationCodeableConcept": _cc(("rxnorm", "855288")),
            "reasonCode": [_cc((SCT, "443390004"))],
            "dosageInstruction": [{"route": _cc((SCT, "47625008"))}],
            "authoredOn": "2026-11-01T07:00:00Z",
        }
    )
    assert (row["intent"], row["do_not_perform"], row["reason_code"], row["reason_system"]) == (
        "order",
        True,
        "443390004",
        SCT,
    )
    assert row["route_code"] == "47625008"


def test_procedure_observation_condition_and_location_periods_and_kinds() -> None:
    proc = flatten_procedure({"id": "p", "status": "not-done", "statusReason": _cc((SCT, "182890002"))})
    assert (proc["status_reason_code"], proc["status_reason_system"]) == ("182890002", SCT)
    obs = flatten_observation(
        {
            "id": "o",
            "category": [_cc(("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"))],
            "effectivePeriod": {"start": "2026-01-01T08:00:00Z", "end": "2026-01-01T09:00:00Z"},
            "issued": "2026-01-01T10:00:00Z",
        }
    )
    assert (obs["effective_at"], obs["effective_end"], obs["issued_at"], obs["category"]) == (
        "2026-01-01T08:00:00Z",
        "2026-01-01T09:00:00Z",
        "2026-01-01T10:00:00Z",
        "vital-signs",
    )
    cond = flatten_condition({"id": "c", "onsetPeriod": {"start": "2026-01-01", "end": "2026-01-05"}})
    assert (cond["onset_at"], cond["onset_end"]) == ("2026-01-01", "2026-01-05")
    loc = flatten_location({"id": "icu", "type": [_cc(("hsloc", "1025-6"))]})
    # Location.type is what the unit is (ICU); physicalType (ward, room) is separate.
    assert (loc["kind_code"], loc["kind_system"], loc["type_code"]) == ("1025-6", "hsloc", None)


def test_orders_refusals_and_device_modifier_extension_become_requests(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson(
        "ServiceRequest.ndjson",
        [
            {
                "resourceType": "ServiceRequest",
                "id": "sr1",
                "status": "completed",
                "intent": "order",
                "doNotPerform": True,
                "extension": [
                    {"url": DO_NOT_PERFORM_REASON_EXTENSION, "valueCodeableConcept": _cc((SCT, "443390004"))}
                ],
                "code": _cc((SCT, "428411000124104")),
                "subject": {"reference": "Patient/p1"},
                "encounter": {"reference": "Encounter/e1"},
                "authoredOn": "2026-11-02T11:00:00+01:00",
            }
        ],
    )
    write_ndjson(
        "DeviceRequest.ndjson",
        [
            {
                "resourceType": "DeviceRequest",
                "id": "dr1",
                "status": "completed",
                "intent": "order",
                "modifierExtension": [{"url": DEVICE_REQUEST_DO_NOT_PERFORM, "valueBoolean": True}],
                "codeCodeableConcept": _cc((SCT, "183240000")),
                "subject": {"reference": "Patient/p1"},
                "reasonCode": [_cc((SCT, "105480006"))],
            }
        ],
    )
    write_ndjson(
        "Task.ndjson",
        [
            {
                "resourceType": "Task",
                "id": "t1",
                "status": "rejected",
                "statusReason": _cc((SCT, "443390004")),
                "code": _cc(("http://hl7.org/fhir/CodeSystem/task-code", "fulfill")),
                "focus": {"reference": "MedicationRequest/mr9"},
                "executionPeriod": {"start": "2026-11-01T09:00:00Z", "end": "2026-11-03T09:00:00Z"},
            }
        ],
    )
    result = extract_batch(tmp_path)
    assert result.quarantine.empty, result.quarantine["reasons"].tolist()
    req = result.tables["requests"].set_index("request_id")
    sr, dr, task = req.loc["sr1"], req.loc["dr1"], req.loc["t1"]
    assert (sr["resource_type"], sr["do_not_perform"], sr["reason_code"], sr["code"]) == (
        "ServiceRequest",
        True,
        "443390004",
        "428411000124104",
    )
    assert sr["authored_at"] == pd.Timestamp("2026-11-02 10:00:00")  # +01:00 -> UTC
    assert (sr["patient_id"], sr["encounter_id"]) == ("p1", "e1")
    assert (dr["do_not_perform"], dr["code"], dr["reason_code"]) == (True, "183240000", "105480006")
    assert (task["status"], task["reason_code"], task["focus_id"], task["code"]) == (
        "rejected",
        "443390004",
        "mr9",
        "fulfill",
    )
    assert (task["authored_at"], task["end_at"]) == (
        pd.Timestamp("2026-11-01 09:00:00"),
        pd.Timestamp("2026-11-03 09:00:00"),
    )
    assert pd.isna(task["patient_id"]) and pd.isna(task["intent"])  # Task.intent tolerated as missing
    assert _codings(result, "requests", "sr1") == [
        ("code", SCT, "428411000124104"),
        ("doNotPerformReason", SCT, "443390004"),
    ]
    assert _codings(result, "requests", "t1")[1] == ("statusReason", SCT, "443390004")
    _assert_balanced(result)


def test_a_do_not_perform_that_is_not_a_boolean_is_quarantined_not_guessed(
    tmp_path: Path, write_ndjson: Writer
) -> None:
    sr = {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order"}
    write_ndjson("ServiceRequest.ndjson", [dict(sr, doNotPerform="yes"), dict(sr, id="sr2", doNotPerform=False)])
    result = extract_batch(tmp_path, validate_sample=0)
    (bad,) = result.quarantine.itertuples()
    assert (bad.table_name, bad.record_id) == ("requests", "sr1")
    assert "doNotPerform is not a boolean" in bad.reasons
    assert result.tables["requests"]["do_not_perform"].tolist() == [False]
    _assert_balanced(result)


def test_encounter_location_history_and_diagnoses_become_child_rows(tmp_path: Path, write_ndjson: Writer) -> None:
    enc = _enc(
        "e1",
        type=[_cc((SCT, "183452005"), ("local", "INP"))],
        reasonCode=[_cc((SCT, "1")), _cc((SCT, "2"))],
        location=[
            {"location": {"reference": "Location/ed", "display": "ED"}, "period": {"start": "2026-01-02T06:00:00Z"}},
            {
                "location": {"reference": "Location/icu"},
                "period": {"start": "2026-01-02T10:00:00+02:00", "end": "2026-01-03T10:00:00Z"},
            },
        ],
        diagnosis=[
            {"condition": {"reference": "Condition/c1"}, "extension": [_poa("N")], "rank": 1},
            {"condition": {"reference": "Condition/c2"}, "use": _cc(("diagnosis-role", "AD"))},
        ],
        reasonReference=[{"reference": "Condition/c3"}],
    )
    write_ndjson("Encounter.ndjson", [enc])
    result = extract_batch(tmp_path)
    locs = result.tables["encounter_locations"]
    assert locs["encounter_location_id"].tolist() == ["e1/1", "e1/2"]
    assert locs["location_id"].tolist() == ["ed", "icu"]
    assert locs["location_name"].iloc[0] == "ED" and locs["patient_id"].tolist() == ["p1", "p1"]
    assert locs["start_at"].iloc[1] == pd.Timestamp("2026-01-02 08:00:00") and pd.isna(locs["end_at"].iloc[0])
    diags = result.tables["encounter_diagnoses"]
    assert diags[["encounter_diagnosis_id", "element", "condition_id"]].values.tolist() == [
        ["e1/diagnosis/1", "diagnosis", "c1"],
        ["e1/diagnosis/2", "diagnosis", "c2"],
        ["e1/reasonReference/1", "reasonReference", "c3"],
    ]
    assert diags["present_on_admission"].iloc[0] == "N" and pd.isna(diags["present_on_admission"].iloc[1])
    assert diags["rank"].iloc[0] == 1 and diags["use_code"].iloc[1] == "AD"
    reason = diags.iloc[2]
    assert reason["patient_id"] == "p1"
    assert pd.isna(reason["use_code"]) and pd.isna(reason["rank"]) and pd.isna(reason["present_on_admission"])
    assert _codings(result, "encounters", "e1") == [
        ("type", SCT, "183452005"),
        ("type", "local", "INP"),
        ("reasonCode", SCT, "1"),
        ("reasonCode", SCT, "2"),
    ]
    assert result.tables["codings"]["coding_id"].tolist()[:2] == ["encounters/e1/type/1", "encounters/e1/type/2"]
    assert result.tables["codings"]["source_file"].eq("Encounter.ndjson").all()
    _assert_balanced(result)


def test_a_parent_quarantined_at_extract_yields_no_children(tmp_path: Path, write_ndjson: Writer) -> None:
    child = {"location": [{"location": {"reference": "Location/w"}}], "type": [_cc((SCT, "1"))]}
    bad_parent = _enc("e1", period={"start": "2026-13-45"}, **child)
    bad_child = _enc("e2", location=[{"location": {"reference": "Location/w"}, "period": {"end": "not a date"}}])
    write_ndjson("Encounter.ndjson", [bad_parent, bad_child, _enc("e3", **child)])
    result = extract_batch(tmp_path, validate_sample=0)  # reach conform, not the FHIR model
    held = result.quarantine.set_index("record_id")["table_name"].to_dict()
    assert held == {"e1": "encounters", "e2/1": "encounter_locations"}
    assert result.tables["encounters"]["encounter_id"].tolist() == ["e2", "e3"]
    assert result.tables["encounter_locations"]["encounter_id"].tolist() == ["e3"]
    assert result.tables["codings"]["record_id"].tolist() == ["e3"]
    assert result.rows_read["encounter_locations"] == 2 and result.rows_read["codings"] == 1
    _assert_balanced(result)


def _claim(cid: str, **extra: object) -> dict:
    return {
        "resourceType": "Claim",
        "id": cid,
        "status": "active",
        "type": _cc(("claim-type", "institutional")),
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "created": "2026-11-13",
        "priority": _cc(("processpriority", "normal")),
        **extra,
    }


def test_claim_diagnoses_carry_poa_and_the_encounter_of_the_item_pointing_at_them(
    tmp_path: Path, write_ndjson: Writer
) -> None:
    claim = _claim(
        "cl1",
        billablePeriod={"start": "2026-11-09", "end": "2026-11-13"},
        diagnosis=[
            {
                "sequence": 1,
                "diagnosisCodeableConcept": _cc((ICD10, "W01.0XXA"), (SCT, "1912002")),
                "onAdmission": _cc((POA_SYSTEM, "N")),
                "type": [_cc(("ex-diagnosistype", "principal"))],
            },
            {"sequence": 2, "diagnosisReference": {"reference": "Condition/c7"}},
            {"sequence": 3, "diagnosisCodeableConcept": _cc((ICD10, "S01.02XA"))},
        ],
        item=[
            {"sequence": 1, "encounter": [{"reference": "Encounter/first"}]},
            {"sequence": 2, "diagnosisSequence": [2], "encounter": [{"reference": "Encounter/e2"}]},
            {"sequence": 3, "diagnosisSequence": [3]},  # no encounter: falls back to the first
        ],
    )
    write_ndjson("Claim.ndjson", [claim, _claim("cl2", item=[{"sequence": 1}])])  # cl2: no rows at all
    result = extract_batch(tmp_path)
    assert result.quarantine.empty, result.quarantine["reasons"].tolist()  # no provider/insurance: tolerated
    cd = result.tables["claim_diagnoses"]
    assert cd["claim_diagnosis_id"].tolist() == ["cl1/1", "cl1/2", "cl1/3"]
    assert cd["encounter_id"].tolist() == ["first", "e2", "first"]
    assert cd["sequence"].tolist() == [1, 2, 3]
    first = cd.iloc[0]
    assert (first["code"], first["code_system"], first["present_on_admission"], first["diagnosis_type"]) == (
        "W01.0XXA",
        ICD10,
        "N",
        "principal",
    )
    assert (first["patient_id"], first["status"], first["use"]) == ("p1", "active", "claim")
    assert first["billable_end"] == pd.Timestamp("2026-11-13")
    assert cd["condition_id"].iloc[1] == "c7" and pd.isna(cd["code"].iloc[1])
    assert _codings(result, "claim_diagnoses", "cl1/1") == [
        ("diagnosisCodeableConcept", ICD10, "W01.0XXA"),
        ("diagnosisCodeableConcept", SCT, "1912002"),
        ("type", "ex-diagnosistype", "principal"),
    ]
    assert result.ignored == {"Claim without diagnosis or procedure": 1}
    assert result.rows_read["claim_diagnoses"] == 3
    assert result.tables["claim_procedures"].empty
    _assert_balanced(result)


def test_claim_procedures_carry_type_codings_and_the_encounter_of_the_item_naming_them(
    tmp_path: Path, write_ndjson: Writer
) -> None:
    icd10pcs = "http://www.cms.gov/Medicare/Coding/ICD10"
    claim = _claim(
        "cl1",
        diagnosis=[{"sequence": 1, "diagnosisReference": {"reference": "Condition/c1"}}],
        procedure=[
            {
                "sequence": 1,
                "type": [_cc(("ex-procedure-type", "primary"))],
                "date": "2026-11-02T09:00:00+01:00",
                "procedureCodeableConcept": _cc((icd10pcs, "0SRC0J9"), (SCT, "609588000")),
            },
            {"sequence": 2, "procedureReference": {"reference": "Procedure/pr7"}},
            {"sequence": 3, "procedureCodeableConcept": _cc((icd10pcs, "0SRD0J9"))},
        ],
        item=[
            {"sequence": 1, "encounter": [{"reference": "Encounter/first"}]},
            {"sequence": 2, "procedureSequence": [2], "encounter": [{"reference": "Encounter/e2"}]},
            {"sequence": 3, "procedureSequence": [3]},  # no encounter: falls back to the first
        ],
    )
    only_procedures = _claim(
        "cl2",
        procedure=[{"sequence": 1, "procedureReference": {"reference": "Procedure/pr8"}}],
        item=[{"sequence": 1, "procedureSequence": [1], "encounter": [{"reference": "Encounter/e8"}]}],
    )
    write_ndjson("Claim.ndjson", [claim, only_procedures])
    result = extract_batch(tmp_path)
    assert result.quarantine.empty, result.quarantine["reasons"].tolist()
    cp = result.tables["claim_procedures"]
    assert cp["claim_procedure_id"].tolist() == ["cl1/1", "cl1/2", "cl1/3", "cl2/1"]
    assert cp["encounter_id"].tolist() == ["first", "e2", "first", "e8"]
    assert cp["sequence"].tolist() == [1, 2, 3, 1]
    first = cp.iloc[0]
    assert (first["procedure_type"], first["code"], first["code_system"]) == ("primary", "0SRC0J9", icd10pcs)
    assert (first["patient_id"], first["status"], first["use"]) == ("p1", "active", "claim")
    assert first["performed_at"] == pd.Timestamp("2026-11-02 08:00:00")  # +01:00 -> UTC
    assert cp["procedure_id"].fillna("-").tolist() == ["-", "pr7", "-", "pr8"] and pd.isna(cp["code"].iloc[1])
    assert _codings(result, "claim_procedures", "cl1/1") == [
        ("procedureCodeableConcept", icd10pcs, "0SRC0J9"),
        ("procedureCodeableConcept", SCT, "609588000"),
    ]
    # A claim with procedures but no diagnosis yields rows, so it is not ignored.
    assert result.ignored == {}
    assert result.tables["claim_diagnoses"]["claim_diagnosis_id"].tolist() == ["cl1/1"]
    assert (result.rows_read["claim_diagnoses"], result.rows_read["claim_procedures"]) == (1, 4)
    _assert_balanced(result)


def test_an_unreadable_claim_procedure_is_quarantined_in_its_own_table(tmp_path: Path, write_ndjson: Writer) -> None:
    claim = _claim(
        "cl1",
        diagnosis=[{"sequence": 1, "diagnosisReference": {"reference": "Condition/c1"}}],
        procedure=[
            {"sequence": 1, "date": "2026-13-45", "procedureCodeableConcept": _cc((SCT, "1"))},
            {"sequence": 2, "date": "2026-11-02", "procedureCodeableConcept": _cc((SCT, "2"))},
        ],
    )
    write_ndjson("Claim.ndjson", [claim])
    result = extract_batch(tmp_path, validate_sample=0)  # reach conform, not the FHIR model
    (bad,) = result.quarantine.itertuples()
    assert (bad.table_name, bad.record_id) == ("claim_procedures", "cl1/1")
    assert result.tables["claim_procedures"]["claim_procedure_id"].tolist() == ["cl1/2"]
    assert result.tables["claim_diagnoses"]["claim_diagnosis_id"].tolist() == ["cl1/1"]
    codings = result.tables["codings"]
    assert codings.loc[codings["table_name"] == "claim_procedures", "record_id"].tolist() == ["cl1/2"]
    assert result.rows_read["claim_procedures"] == 2
    _assert_balanced(result)


def test_not_done_events_keep_when_they_were_recorded_from_the_qicore_extension() -> None:
    recorded = {"url": RECORDED_EXTENSION, "valueDateTime": "2026-11-02T11:00:00.000+00:00"}
    other = {"url": "http://example.org/recorded", "valueDateTime": "1999-01-01"}
    proc = flatten_procedure({"id": "p", "status": "not-done", "extension": [other, recorded]})
    ma = flatten_medication_administration({"id": "ma", "status": "not-done", "extension": [recorded]})
    mr = flatten_medication_request({"id": "mr", "status": "completed", "extension": [recorded]})
    assert proc["recorded_at"] == ma["recorded_at"] == mr["recorded_at"] == "2026-11-02T11:00:00.000+00:00"
    assert flatten_procedure({"id": "q", "extension": [other]})["recorded_at"] is None


def test_a_claim_failing_fhir_validation_is_quarantined_once(tmp_path: Path, write_ndjson: Writer) -> None:
    diagnosis = [{"sequence": n, "diagnosisReference": {"reference": f"Condition/c{n}"}} for n in (1, 2)]
    bad = _claim("cl1", diagnosis=diagnosis)
    del bad["patient"]  # Claim.patient is required and read
    write_ndjson("Claim.ndjson", [bad])
    result = extract_batch(tmp_path)
    (row,) = result.quarantine.itertuples()
    assert (row.table_name, row.record_id) == ("claim_diagnoses", "cl1")
    assert row.reasons.startswith("FHIR R4 validation: patient")
    assert result.rows_read["claim_diagnoses"] == 1
    _assert_balanced(result)


def test_every_coding_of_coded_elements_is_kept_with_its_element(tmp_path: Path, write_ndjson: Writer) -> None:
    write_ndjson(
        "Procedure.ndjson",
        [
            {
                "resourceType": "Procedure",
                "id": "pr1",
                "status": "not-done",
                "subject": {"reference": "Patient/p1"},
                "code": _cc((SCT, "a"), ("http://www.cms.gov/Medicare/Coding/ICD10", "b")),
                "statusReason": _cc((SCT, "r")),
            }
        ],
    )
    write_ndjson(
        "MedicationAdministration.ndjson",
        [
            {
                "resourceType": "MedicationAdministration",
                "id": "ma1",
                "status": "completed",
                "subject": {"reference": "Patient/p1"},
                "medicationReference": {"reference": "#m"},
                "contained": [{"resourceType": "Medication", "id": "m", "code": _cc(("rxnorm", "9"))}],
                "effectiveDateTime": "2026-01-01T00:00:00Z",
                "dosage": {"route": _cc((SCT, "iv"))},
            }
        ],
    )
    write_ndjson(
        "Location.ndjson",
        [{"resourceType": "Location", "id": "icu", "type": [_cc(("hsloc", "1025-6"), (SCT, "x"))]}],
    )
    result = extract_batch(tmp_path)
    assert result.quarantine.empty
    assert _codings(result, "procedures", "pr1") == [
        ("code", SCT, "a"),
        ("code", "http://www.cms.gov/Medicare/Coding/ICD10", "b"),
        ("statusReason", SCT, "r"),
    ]
    assert _codings(result, "medications", "ma1") == [
        ("medicationCodeableConcept", "rxnorm", "9"),
        ("route", SCT, "iv"),
    ]
    assert _codings(result, "locations", "icu") == [("type", "hsloc", "1025-6"), ("type", SCT, "x")]
    assert result.tables["codings"].columns.tolist() == TABLES["codings"].column_names
    _assert_balanced(result)
