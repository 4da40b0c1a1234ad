"""Real Synthea exports (read-only, /work/shared/data): counts from each SOURCE.md."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pandas as pd
import pytest

from pipelines.extract import ExtractResult, extract_batch, extract_paths

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def bulk(shared_data: Path) -> ExtractResult:
    return extract_batch(shared_data / "synthea-bulk-ndjson-10" / "ndjson")


@pytest.fixture(scope="module")
def smart(shared_data: Path) -> ExtractResult:
    return extract_batch(shared_data / "synthea-smart-r4" / "bundles")


def _accepted_plus_quarantined(result: ExtractResult, table: str) -> int:
    return len(result.tables[table]) + int((result.quarantine["table_name"] == table).sum())


def test_synthea_bulk_ndjson_loads_every_line_with_source_counts(bulk: ExtractResult) -> None:
    expected = {
        "patients": 13,
        "encounters": 1215,
        "conditions": 555,
        "procedures": 2056,
        "medications": 1745,
        "organizations": 43,
        "locations": 44,
    }
    for table, count in expected.items():
        assert bulk.rows_read[table] == count, table
        assert _accepted_plus_quarantined(bulk, table) == count, table
    assert bulk.quarantine.empty, bulk.quarantine[["table_name", "reasons"]].to_string()
    assert bulk.ignored == {
        "AllergyIntolerance": 11,
        "Device": 16,
        "DocumentReference": 1215,
        "Immunization": 161,
        "Practitioner": 43,
        "PractitionerRole": 43,
    }  # log.ndjson is not a resource file


def test_synthea_bulk_encounter_location_history_has_one_row_per_entry(shared_data: Path, bulk: ExtractResult) -> None:
    path = shared_data / "synthea-bulk-ndjson-10" / "ndjson" / "Encounter.000.ndjson.gz"
    lines = gzip.decompress(path.read_bytes()).splitlines()
    locations = sum(len(orjson.loads(line).get("location", [])) for line in lines if line.strip())
    assert bulk.rows_read["encounter_locations"] == len(bulk.tables["encounter_locations"]) == locations
    assert bulk.tables["encounter_locations"]["location_id"].isin(bulk.tables["locations"]["location_id"]).all()


def test_synthea_bulk_conditional_references_join_to_organizations_and_locations(bulk: ExtractResult) -> None:
    enc = bulk.tables["encounters"]
    assert enc["patient_id"].isin(bulk.tables["patients"]["patient_id"]).all()
    assert enc["facility_id"].isin(bulk.tables["organizations"]["organization_id"]).all()
    assert enc["ward_id"].isin(bulk.tables["locations"]["location_id"]).all()
    assert bulk.tables["conditions"]["encounter_id"].isin(enc["encounter_id"]).all()


def test_synthea_smart_bundles_load_with_source_counts(smart: ExtractResult) -> None:
    expected = {
        "patients": 250,
        "encounters": 7488,
        "conditions": 1831,
        "procedures": 5226,
        "medications": 2085,
        "observations": 36261,
        "organizations": 407,
    }
    for table, count in expected.items():
        assert smart.rows_read[table] == count, table
        assert _accepted_plus_quarantined(smart, table) == count, table
    assert smart.quarantine.empty, smart.quarantine[["table_name", "reasons"]].to_string()
    for unused, count in {"Immunization": 2881, "ExplanationOfBenefit": 7488}.items():
        assert smart.ignored[unused] == count


def _bundle_resources(folder: Path, resource_type: str) -> list[dict]:
    out = []
    for path in sorted(folder.glob("*.json.gz")):
        for entry in orjson.loads(gzip.decompress(path.read_bytes()))["entry"]:
            if entry["resource"]["resourceType"] == resource_type:
                out.append(entry["resource"])
    return out


def test_synthea_smart_claims_yield_one_row_per_diagnosis(shared_data: Path, smart: ExtractResult) -> None:
    claims = _bundle_resources(shared_data / "synthea-smart-r4" / "bundles", "Claim")
    assert len(claims) == 9573  # SOURCE.md
    diagnoses = sum(len(c.get("diagnosis", [])) for c in claims)
    procedures = sum(len(c.get("procedure", [])) for c in claims)
    without = sum(1 for c in claims if not c.get("diagnosis") and not c.get("procedure"))
    cd = smart.tables["claim_diagnoses"]
    assert smart.rows_read["claim_diagnoses"] == len(cd) == diagnoses
    assert smart.rows_read["claim_procedures"] == len(smart.tables["claim_procedures"]) == procedures > 0
    assert smart.ignored["Claim without diagnosis or procedure"] == without
    assert "Claim" not in smart.ignored
    # Synthea points at Conditions and puts the encounter on the claim's first item.
    assert cd["condition_id"].isin(smart.tables["conditions"]["condition_id"]).all()
    assert cd["encounter_id"].isin(smart.tables["encounters"]["encounter_id"]).all()
    by_claim = {c["id"]: c["item"][0]["encounter"][0]["reference"].split(":")[-1] for c in claims}
    assert (cd["encounter_id"] == cd["claim_id"].map(by_claim)).all()


def test_synthea_smart_claim_procedures_point_at_procedures_of_the_claims_encounter(
    shared_data: Path, smart: ExtractResult
) -> None:
    claims = _bundle_resources(shared_data / "synthea-smart-r4" / "bundles", "Claim")
    cp = smart.tables["claim_procedures"]
    # Synthea names each procedure by reference and puts the encounter on the first item only.
    assert cp["procedure_id"].notna().all()
    assert cp["procedure_id"].isin(smart.tables["procedures"]["procedure_id"]).all()
    by_claim = {c["id"]: c["item"][0]["encounter"][0]["reference"].split(":")[-1] for c in claims}
    assert (cp["encounter_id"] == cp["claim_id"].map(by_claim)).all()
    proc = smart.tables["procedures"].set_index("procedure_id")["encounter_id"]
    assert (cp["procedure_id"].map(proc) == cp["encounter_id"]).all()


def test_synthea_smart_codings_hold_every_observation_code(shared_data: Path, smart: ExtractResult) -> None:
    observations = _bundle_resources(shared_data / "synthea-smart-r4" / "bundles", "Observation")
    expected = sum(len(o["code"].get("coding", [])) for o in observations)
    c = smart.tables["codings"]
    got = c[(c["table_name"] == "observations") & (c["element"] == "code")]
    assert len(got) == expected
    assert smart.rows_read["codings"] == len(c)


def test_synthea_smart_urn_uuid_references_resolve(smart: ExtractResult) -> None:
    t = smart.tables
    encounter_ids = t["encounters"]["encounter_id"]
    assert t["encounters"]["patient_id"].isin(t["patients"]["patient_id"]).all()
    assert t["encounters"]["facility_id"].isin(t["organizations"]["organization_id"]).all()
    for table in ("conditions", "procedures", "medications", "observations"):
        assert t[table]["encounter_id"].isin(encounter_ids).all(), table
    assert (t["encounters"]["class_code"] == "IMP").sum() == 290
    assert t["patients"]["deceased_at"].notna().sum() == 48


def test_synthea_smart_blood_pressure_panels_split_into_components(smart: ExtractResult) -> None:
    obs = smart.tables["observations"]
    bp = obs[obs["code"] == "55284-4"]  # Synthea's blood pressure panel
    assert len(bp) > 0
    assert bp["systolic"].notna().all() and bp["diastolic"].notna().all()
    assert (bp["systolic"] > bp["diastolic"]).mean() > 0.99
    assert obs["effective_at"].notna().all()
    assert obs["effective_at"].dt.tz is None  # naive UTC per the contract


def test_official_fhir_examples_flatten_adverse_event_and_contained_medication(shared_data: Path) -> None:
    examples = shared_data / "fhir-r4-examples" / "examples"
    result = extract_paths([examples / "adverseevent-example.json", examples / "medicationadministration0301.json"])
    assert result.quarantine.empty
    ae = result.tables["adverse_events"].iloc[0]
    assert (ae["patient_id"], ae["code"], ae["harm_level"]) == ("example", "304386008", "low")
    assert ae["occurred_at"] == pd.Timestamp("2017-01-29 12:34:56")
    med = result.tables["medications"].iloc[0]
    assert (med["encounter_id"], med["code"]) == ("f001", "0069-2587-10")
    assert med["effective_start"] == pd.Timestamp("2015-01-15 13:30:00")  # +01:00 -> UTC
