"""Real Synthea output must pass the suites untouched: the vocabularies and date
rules describe FHIR R4 as it is actually produced, not an idealised version.

The extract room owns the real FHIR mapping; this test flattens just enough of each
resource (the fields the suites check) to stay independent of it.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipelines.tables import TABLES, conform
from pipelines.validate import validate_tables
from tests.validate.helpers import SUITES_DIR

pytestmark = pytest.mark.shared_data

BP_SYSTOLIC, BP_DIASTOLIC = "8480-6", "8462-4"


def ref(reference: dict | None) -> str | None:
    return (reference or {}).get("reference", "").split("/")[-1].split(":")[-1] or None


def coding(concept: dict | None) -> dict:
    return ((concept or {}).get("coding") or [{}])[0]


def ndjson(folder: Path, resource: str) -> Iterator[tuple[str, int, dict]]:
    for path in sorted(folder.glob(f"{resource}.*ndjson.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                yield path.name, line_no, json.loads(line)


def flatten(resource: dict) -> tuple[str, dict] | None:
    kind = resource["resourceType"]
    subject = {"patient_id": ref(resource.get("subject") or resource.get("patient"))}
    enc = {"encounter_id": ref(resource.get("encounter") or resource.get("context"))}
    if kind == "Patient":
        return "patients", {
            "patient_id": resource["id"],
            "birth_date": resource.get("birthDate"),
            "gender": resource.get("gender"),
            "deceased_at": resource.get("deceasedDateTime"),
        }
    if kind == "Encounter":
        period = resource.get("period", {})
        return "encounters", {
            "encounter_id": resource["id"],
            **subject,
            "status": resource.get("status"),
            "class_code": resource.get("class", {}).get("code"),
            "priority": coding(resource.get("priority")).get("code"),
            "start_at": period.get("start"),
            "end_at": period.get("end"),
            "facility_id": ref(resource.get("serviceProvider")),
        }
    if kind == "Condition":
        return "conditions", {
            "condition_id": resource["id"],
            **subject,
            **enc,
            "code": coding(resource.get("code")).get("code"),
            "clinical_status": coding(resource.get("clinicalStatus")).get("code"),
            "verification_status": coding(resource.get("verificationStatus")).get("code"),
            "category": coding((resource.get("category") or [None])[0]).get("code"),
            "onset_at": resource.get("onsetDateTime"),
            "abatement_at": resource.get("abatementDateTime"),
            "recorded_at": resource.get("recordedDate"),
        }
    if kind == "Procedure":
        period = resource.get("performedPeriod", {})
        return "procedures", {
            "procedure_id": resource["id"],
            **subject,
            **enc,
            "code": coding(resource.get("code")).get("code"),
            "status": resource.get("status"),
            "performed_start": resource.get("performedDateTime") or period.get("start"),
            "performed_end": period.get("end"),
        }
    if kind == "MedicationRequest":
        return "medications", {
            "medication_id": resource["id"],
            "resource_type": kind,
            **subject,
            **enc,
            "code": coding(resource.get("medicationCodeableConcept")).get("code"),
            "status": resource.get("status"),
            "effective_start": resource.get("authoredOn"),
        }
    if kind == "Observation":
        parts = {coding(c.get("code")).get("code"): c.get("valueQuantity", {}) for c in resource.get("component", [])}
        return "observations", {
            "observation_id": resource["id"],
            **subject,
            **enc,
            "code": coding(resource.get("code")).get("code"),
            "status": resource.get("status"),
            "effective_at": resource.get("effectiveDateTime"),
            "value_num": resource.get("valueQuantity", {}).get("value"),
            "systolic": parts.get(BP_SYSTOLIC, {}).get("value"),
            "diastolic": parts.get(BP_DIASTOLIC, {}).get("value"),
        }
    if kind == "Organization":
        return "organizations", {"organization_id": resource["id"], "name": resource.get("name")}
    if kind == "Location":
        return "locations", {
            "location_id": resource["id"],
            "type_code": coding(resource.get("physicalType")).get("code"),
            "organization_id": ref(resource.get("managingOrganization")),
        }
    return None


def conformed(rows: dict[str, list[dict]]) -> dict[str, pd.DataFrame]:
    out = {}
    for table, records in rows.items():
        typed, failures = conform(pd.DataFrame(records), TABLES[table])
        assert (failures == "").all(), failures[failures != ""].head().tolist()
        out[table] = typed
    return out


def test_synthea_bulk_export_and_bundles_pass_every_suite(shared_data: Path) -> None:
    rows: dict[str, list[dict]] = {}
    bulk = shared_data / "synthea-bulk-ndjson-10" / "ndjson"
    for resource in [
        "Patient",
        "Encounter",
        "Condition",
        "Procedure",
        "MedicationRequest",
        "Organization",
        "Location",
    ]:
        for file_name, line, res in ndjson(bulk, resource):
            table, row = flatten(res)
            rows.setdefault(table, []).append({**row, "source_file": file_name, "source_line": line})
    # The bulk set has no Observations; take them (with blood-pressure components) from
    # bundles, with the patients and encounters they refer to (references must resolve).
    for path in sorted((shared_data / "synthea-smart-r4" / "bundles").glob("*.json.gz"))[:5]:
        bundle = json.loads(gzip.open(path, "rt", encoding="utf-8").read())
        for index, entry in enumerate(bundle.get("entry", []), start=1):
            if entry["resource"]["resourceType"] in ("Observation", "Patient", "Encounter"):
                table, row = flatten(entry["resource"])
                rows.setdefault(table, []).append({**row, "source_file": path.name, "source_line": index})
    tables = conformed(rows)
    assert tables["observations"]["systolic"].notna().any()

    result = validate_tables(tables, SUITES_DIR)

    assert result.quarantine.empty, result.quarantine[["table_name", "reasons"]].head().to_dict("records")
    assert result.failed_tables == []
    assert {t: len(df) for t, df in result.valid.items()} == {t: len(df) for t, df in tables.items()}
    assert set(result.checks["status"]) == {"pass"}
