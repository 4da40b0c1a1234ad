"""CMS eCQM test decks (QI-Core 6 MADiE exports, read-only in the shared data folder):
every test-case Bundle extracts whole, and known resources flatten as the measures read them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from pipelines.extract import ExtractResult, extract_paths
from pipelines.tables import POA_EXTENSION

pytestmark = pytest.mark.shared_data

SCT = "http://snomed.info/sct"
#: Types the decks carry that no table uses (MeasureReport is the expected result).
UNUSED = {"Coverage", "Practitioner", "MeasureReport", "Claim without diagnosis or procedure"}


@pytest.fixture(scope="module")
def decks(shared_data: Path) -> Path:
    root = shared_data / "ecqm-qicore-2025"
    if not root.is_dir():
        pytest.skip(f"no CMS test decks at {root}")
    return root


@pytest.fixture(scope="module")
def bundles(decks: Path) -> list[Path]:
    found = sorted(decks.glob("*/testcases/*/*.json"))
    assert len(found) == 192  # SOURCE.md: 50 + 105 + 6 + 31 shared test cases
    return found


def _case(decks: Path, measure: str, patient: str) -> ExtractResult:
    (path,) = (decks / measure / "testcases" / patient).glob("*.json")
    return extract_paths([path])


def _row(result: ExtractResult, table: str, key: str) -> pd.Series:
    df = result.tables[table]
    (row,) = df[df[df.columns[0]] == key].itertuples(index=False)
    return pd.Series(row._asdict())


def _resources(bundles: list[Path]) -> list[dict]:
    return [e["resource"] for p in bundles for e in json.loads(p.read_text())["entry"] if "resource" in e]


def test_every_test_case_bundle_extracts_with_nothing_quarantined(decks: Path, bundles: list[Path]) -> None:
    # One extraction over all decks: extract has no cross-file rules (FHIR validation
    # samples per file), and every quarantine row would name its bundle in source_file.
    result = extract_paths(bundles, root=decks)
    assert result.quarantine.empty, result.quarantine[["source_file", "reasons"]].to_string()
    assert set(result.ignored) <= UNUSED, result.ignored
    for table, frame in result.tables.items():
        assert result.rows_read[table] == len(frame), table
    names = {p.relative_to(decks).as_posix() for p in bundles}
    assert set(result.tables["patients"]["source_file"]) == names  # every bundle was read


def test_deck_child_tables_count_every_entry_of_the_raw_bundles(bundles: list[Path]) -> None:
    resources = _resources(bundles)
    by_type = Counter(r["resourceType"] for r in resources)
    encounters = [r for r in resources if r["resourceType"] == "Encounter"]
    claims = [r for r in resources if r["resourceType"] == "Claim"]
    procedures = [r for r in resources if r["resourceType"] == "Procedure"]
    result = extract_paths(bundles)
    t = result.tables
    assert len(t["encounter_locations"]) == sum(len(e.get("location", [])) for e in encounters)
    diags = t["encounter_diagnoses"]["element"].value_counts()
    assert diags["diagnosis"] == sum(len(e.get("diagnosis", [])) for e in encounters)
    assert diags["reasonReference"] == sum(len(e.get("reasonReference", [])) for e in encounters)
    assert len(t["claim_diagnoses"]) == sum(len(c.get("diagnosis", [])) for c in claims)
    assert len(t["claim_procedures"]) == sum(len(c.get("procedure", [])) for c in claims)
    without = sum(1 for c in claims if not c.get("diagnosis") and not c.get("procedure"))
    assert result.ignored.get("Claim without diagnosis or procedure", 0) == without
    assert len(t["requests"]) == by_type["ServiceRequest"] + by_type["DeviceRequest"] + by_type["Task"]
    codings = t["codings"]
    proc_codes = codings[(codings["table_name"] == "procedures") & (codings["element"] == "code")]
    assert len(proc_codes) == sum(len(p["code"]["coding"]) for p in procedures)
    claim_proc_codes = codings[codings["table_name"] == "claim_procedures"]
    assert len(claim_proc_codes) == sum(
        len(x.get("procedureCodeableConcept", {}).get("coding", [])) for c in claims for x in c.get("procedure", [])
    )
    assert set(claim_proc_codes["element"]) <= {"procedureCodeableConcept"}
    recorded = {
        rtype: sum(
            1
            for r in resources
            if r["resourceType"] == rtype and any(x["url"].endswith("/qicore-recorded") for x in r.get("extension", []))
        )
        for rtype in ("Procedure", "MedicationAdministration", "MedicationRequest")
    }
    assert t["procedures"]["recorded_at"].notna().sum() == recorded["Procedure"] > 0
    assert t["medications"]["recorded_at"].notna().sum() == (
        recorded["MedicationAdministration"] + recorded["MedicationRequest"]
    )
    reasons = codings[(codings["table_name"] == "encounters") & (codings["element"] == "reasonCode")]
    assert len(reasons) == sum(len(c["coding"]) for e in encounters for c in e.get("reasonCode", []))
    poa_in_raw = sum(
        1
        for e in encounters
        for d in e.get("diagnosis", [])
        if any(x.get("url") == POA_EXTENSION for x in d.get("extension", []))
    )
    assert t["encounter_diagnoses"]["present_on_admission"].notna().sum() == poa_in_raw


def test_do_not_perform_medication_request_keeps_its_refusal_reason(decks: Path) -> None:
    result = _case(decks, "CMS108FHIRVTEProphylaxis", "1701c7fe-de21-4bb9-8404-92cb1ef4e638")
    med = _row(result, "medications", "4d2794fa-fb3c-4a41-b3da-d980a2ab6d4e")
    assert (med["resource_type"], med["intent"], med["do_not_perform"]) == ("MedicationRequest", "order", True)
    assert (med["code"], med["reason_code"], med["reason_system"]) == ("855288", "443390004", SCT)
    assert med["effective_start"] == pd.Timestamp("2026-11-01 07:00:00")


def test_service_not_requested_takes_its_reason_from_the_qicore_extension(decks: Path) -> None:
    result = _case(decks, "CMS108FHIRVTEProphylaxis", "3dcb32cf-6ad1-4a44-89da-1125e19b5c8c")
    sr = _row(result, "requests", "c95f2750-e463-4fa3-8f27-7a82cd9f2dce")
    assert (sr["resource_type"], sr["do_not_perform"], sr["code"], sr["reason_code"]) == (
        "ServiceRequest",
        True,
        "428411000124104",
        "443390004",
    )
    assert sr["authored_at"] == pd.Timestamp("2026-11-02 11:00:00")


def test_rejected_task_points_at_its_order_with_reason_and_period(decks: Path) -> None:
    result = _case(decks, "CMS108FHIRVTEProphylaxis", "182103c1-0a38-4d85-819c-148e4e105716")
    task = _row(result, "requests", "0bae3977-a3fc-4490-8bec-a56f7b9976c1")
    assert (task["status"], task["reason_code"], task["focus_id"]) == (
        "rejected",
        "443390004",
        "059c6d42-aba8-4d7e-ac9b-4d3630b53848",
    )
    assert (task["authored_at"], task["end_at"]) == (
        pd.Timestamp("2026-11-01 09:00:00"),
        pd.Timestamp("2026-11-03 09:00:00"),
    )


def test_device_request_do_not_perform_comes_from_the_r5_modifier_extension(decks: Path) -> None:
    result = _case(decks, "CMS165FHIRControllingHighBloodPressure", "481692c7-2cf7-48fc-8269-967f5d7753bc")
    dr = _row(result, "requests", "e9ba2bb8-fcc0-40a0-8083-8a1adcea3516")
    assert (dr["resource_type"], dr["do_not_perform"], dr["code"]) == ("DeviceRequest", False, "183240000")


def test_encounter_location_period_and_the_icu_kind_of_its_location(decks: Path) -> None:
    result = _case(decks, "CMS108FHIRVTEProphylaxis", "2899457d-5309-43e4-a7f0-a4ff34276b9d")
    loc = _row(result, "encounter_locations", "3ecaf432-1ec5-4624-b5bf-3c6472ab665b/1")
    assert loc["location_id"] == "3b6049fa-1927-497c-bc9a-24098944d587"
    assert (loc["start_at"], loc["end_at"]) == (
        pd.Timestamp("2026-03-22 08:15:00"),
        pd.Timestamp("2026-03-22 19:00:00"),
    )
    unit = _row(result, "locations", "3b6049fa-1927-497c-bc9a-24098944d587")
    assert unit["kind_code"] == "1025-6"  # HSLOC Trauma Critical Care


def test_not_done_administration_is_timed_by_its_recorded_extension(decks: Path) -> None:
    result = _case(decks, "CMS108FHIRVTEProphylaxis", "2de13e4e-32bf-4b79-8750-9e0820d2eb4d")
    med = _row(result, "medications", "372d2c9f-ac58-49ae-8802-6a6483b6cbc7")
    assert (med["status"], med["status_reason_code"]) == ("not-done", "443390004")
    assert med["recorded_at"] == pd.Timestamp("2026-11-02 11:00:00")
    assert med["effective_start"] == pd.Timestamp("2026-11-01 06:00:00")


def test_claim_diagnoses_carry_poa_and_reach_the_encounter_through_the_item(decks: Path) -> None:
    result = _case(decks, "CMS1017FHIRHHFI", "113d43da-4cad-4907-804e-63afb7652b27")
    n = _row(result, "claim_diagnoses", "6590a196-6264-467b-9b10-c31572d60b94/1")
    w = _row(result, "claim_diagnoses", "fe63c623-1f68-4e89-9a7e-e70059525aa2/1")
    assert (n["code"], n["present_on_admission"], n["sequence"]) == ("W01.0XXA", "N", 1)
    assert (w["code"], w["present_on_admission"], w["sequence"]) == ("S01.02XA", "W", 2)
    assert n["encounter_id"] == w["encounter_id"] == "88e133a9-10b5-42f0-8f7b-578a6eace416"
    assert n["billable_start"] == pd.Timestamp("2026-11-09")


def test_encounter_diagnosis_poa_reaches_the_conditions_too(decks: Path) -> None:
    result = _case(decks, "CMS1017FHIRHHFI", "0653f9dc-8461-484e-a901-f17709f04776")
    diags = result.tables["encounter_diagnoses"]
    enc = diags[diags["encounter_id"] == "a2a90b05-e344-495f-914e-d6d8fbe37c4f"]
    assert enc["present_on_admission"].tolist() == ["Y", "Y"]
    cond = result.tables["conditions"].set_index("condition_id")["present_on_admission"]
    assert cond["ea1bf4f4-96ee-4012-99bc-4bb710739334"] == "Y"
