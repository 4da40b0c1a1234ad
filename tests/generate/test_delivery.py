from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from pipelines.generate import GenerateSummary
from tests.generate.helpers import (
    batches,
    claim_encounter,
    clean_resources,
    clean_rows,
    month,
    ndjson_lines,
    ref_id,
    subject_id,
    ts,
)

CHILDREN = {
    "Condition.ndjson": "encounter",
    "Procedure.ndjson": "encounter",
    "MedicationAdministration.ndjson": "context",
    "Observation.ndjson": "encounter",
    "AdverseEvent.ndjson": "encounter",
}


def test_encounters_are_delivered_in_the_month_they_end_and_never_after_the_window(
    clean_run: tuple[Path, GenerateSummary],
) -> None:
    root, summary = clean_run
    n = 0
    for batch, enc in clean_resources(root, "Encounter.ndjson"):
        assert month(enc["period"]["end"]) == batch
        assert batch in summary.batches
        assert ts(enc["period"]["end"]) >= ts(enc["period"]["start"])
        n += 1
    assert n > 400


def test_records_tied_to_an_encounter_travel_in_its_batch(clean_run: tuple[Path, GenerateSummary]) -> None:
    root, _ = clean_run
    enc_batch = {e["id"]: b for b, e in clean_resources(root, "Encounter.ndjson")}
    for name, field in CHILDREN.items():
        count = 0
        for batch, r in clean_resources(root, name):
            assert enc_batch[ref_id(r[field])] == batch, (name, r["id"])
            count += 1
        assert count > 0, name
    claims = 0
    for batch, claim in clean_resources(root, "Claim.ndjson"):
        assert enc_batch[claim_encounter(claim)] == batch, claim["id"]
        claims += 1
    assert claims > 0


def test_patient_resource_is_in_every_batch_that_references_it_and_only_there(
    clean_run: tuple[Path, GenerateSummary],
) -> None:
    root, _ = clean_run
    patients: dict[str, dict[str, dict]] = defaultdict(dict)
    for batch, p in clean_resources(root, "Patient.ndjson"):
        assert p["id"] not in patients[batch], "patient written twice in one batch"
        patients[batch][p["id"]] = p
    referenced: dict[str, set[str]] = defaultdict(set)
    for name in ["Encounter.ndjson", *CHILDREN, "Claim.ndjson"]:
        for batch, r in clean_resources(root, name):
            referenced[batch].add(subject_id(r))
    assert set(referenced) == set(patients)
    for batch in referenced:
        assert referenced[batch] == set(patients[batch]), batch


def test_no_encounter_starts_before_birth_or_after_death(clean_run: tuple[Path, GenerateSummary]) -> None:
    root, _ = clean_run
    births: dict[str, str] = {}
    death: dict[str, str] = {}
    death_batches: dict[str, set[str]] = defaultdict(set)
    for batch, p in clean_resources(root, "Patient.ndjson"):
        births[p["id"]] = p["birthDate"]
        if "deceasedDateTime" in p:
            death[p["id"]] = p["deceasedDateTime"]
            death_batches[p["id"]].add(batch)
    assert death, "some inpatients die (discharge disposition exp)"
    for pid, batches_with_death in death_batches.items():
        # deceased is only sent once it has happened
        assert all(b >= month(death[pid]) for b in batches_with_death)
    for _, e in clean_resources(root, "Encounter.ndjson"):
        pid = ref_id(e["subject"])
        assert e["period"]["start"][:10] > births[pid]
        if pid in death:
            assert ts(e["period"]["start"]) <= ts(death[pid])


def test_reference_data_is_sent_in_full_every_month_and_resolves(
    clean_run: tuple[Path, GenerateSummary],
) -> None:
    root, _ = clean_run
    per_batch = [(b, ndjson_lines(b, "Organization.ndjson"), ndjson_lines(b, "Location.ndjson")) for b in batches(root)]
    first = per_batch[0]
    assert len(first[1]) == 3
    assert all(orgs == first[1] and locs == first[2] for _, orgs, locs in per_batch)
    orgs = {o["id"] for _, o in clean_resources(root, "Organization.ndjson")}
    locs = {loc["id"]: loc for _, loc in clean_resources(root, "Location.ndjson")}
    for loc in locs.values():
        assert ref_id(loc["managingOrganization"]) in orgs
        if "partOf" in loc:
            assert ref_id(loc["partOf"]) in locs
        if loc["physicalType"]["coding"][0]["code"] == "wa":
            parent = locs[ref_id(loc["partOf"])]
            assert parent["physicalType"]["coding"][0]["code"] == "wi"  # ward -> department
    for _, e in clean_resources(root, "Encounter.ndjson"):
        assert ref_id(e["serviceProvider"]) in orgs
        ward = locs[ref_id(e["location"][0]["location"])]
        assert e["location"][0]["location"]["display"] == ward["name"]
        assert ref_id(ward["managingOrganization"]) == ref_id(e["serviceProvider"])
        if e["class"]["code"] == "IMP":
            assert ward["physicalType"]["coding"][0]["code"] == "wa"


def test_feedback_is_delivered_in_the_month_received_or_completed(
    clean_run: tuple[Path, GenerateSummary],
) -> None:
    root, _ = clean_run
    enc = {e["id"]: e for _, e in clean_resources(root, "Encounter.ndjson")}
    surveys = list(clean_rows(root, "survey_responses.csv"))
    complaints = list(clean_rows(root, "complaints.csv"))
    assert surveys and complaints
    for batch, s in surveys:
        assert month(s["completed_on"]) == batch
        e = enc.get(s["encounter_id"])
        if e is not None:  # its discharge may precede the window
            assert e["class"]["code"] == "IMP"
            assert s["completed_on"] > e["period"]["end"][:10]
            assert s["facility_id"] == ref_id(e["serviceProvider"])
            assert s["ward_id"] == ref_id(e["location"][0]["location"])
    # A complaint arrives with the batch of the month it was received, as the register stood
    # at that month's end, and comes again in a later batch each time it changes (an extract
    # knows nothing of the future): latest delivery wins.
    seen: dict[str, list[tuple[str, dict]]] = {}
    for batch, c in complaints:
        seen.setdefault(c["complaint_id"], []).append((batch, c))
        as_of = pd.Timestamp(batch + "-01") + pd.offsets.MonthBegin(1)
        for col in ("acknowledged_at", "resolved_at"):
            assert not c[col] or ts(c[col]) < as_of.to_pydatetime().replace(tzinfo=ts(c[col]).tzinfo), c
        if c["status"] == "resolved":
            assert ts(c["received_at"]) <= ts(c["acknowledged_at"]) <= ts(c["resolved_at"])
            assert c["outcome"]
        else:
            assert not c["resolved_at"] and not c["outcome"]
    for deliveries in seen.values():
        batches = [b for b, _ in deliveries]
        assert batches == sorted(set(batches))  # at most once per batch, in order
        assert month(deliveries[0][1]["received_at"]) == batches[0]
        states = [c["status"] for _, c in deliveries]
        assert len(set(states)) == len(states)  # re-delivered only when it changed
    assert any(len(d) > 1 for d in seen.values())
