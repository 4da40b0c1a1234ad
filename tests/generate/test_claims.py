"""Institutional claims and present-on-admission, read back from the files alone.

Every inpatient stay is billed once; every claim diagnosis states POA; hospital-acquired
harms (falls with injury, pressure injuries) appear on the bill as not present on
admission at rates like real hospitals' (a few per 1,000 bed days), and harms patients
arrive with appear as present. The codes are classified by the generator's terminology
groups, whose membership of the indicators' value sets ``test_terminology`` checks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from pipelines.generate import GenerateSummary
from pipelines.generate import codes as C
from tests.generate.helpers import claim_diagnoses, claim_encounter, clean_resources, ref_id, ts

PRESENT = {"Y", "W"}  # present on admission, or clinically undetermined
ABSENT = {"N", "U"}  # not present on admission, or documentation insufficient
PRESSURE_INJURY = {c[1] for c in (*C.PRESSURE_INJURY_STAGE_2_PLUS, *C.PRESSURE_INJURY_DEEP_TISSUE)}
FALLS = {c[1] for c in C.FALL_CAUSES}
INJURIES = {c[1] for c in (*C.MODERATE_INJURIES, *C.MAJOR_INJURIES)}


class Bills:
    """Inpatient stays and their claims, from a run's clean records."""

    def __init__(self, root: Path) -> None:
        self.stays = {
            e["id"]: (b, e) for b, e in clean_resources(root, "Encounter.ndjson") if e["class"]["code"] == "IMP"
        }
        self.claims: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for b, claim in clean_resources(root, "Claim.ndjson"):
            self.claims[claim_encounter(claim)].append((b, claim))
        self.bed_days = sum(
            (ts(e["period"]["end"]) - ts(e["period"]["start"])) / timedelta(days=1) for _, e in self.stays.values()
        )
        falls = set(_pairs(C.AE_FALL))
        self.falls: dict[str, int] = Counter(
            ref_id(a["encounter"])
            for _, a in clean_resources(root, "AdverseEvent.ndjson")
            if (a["event"]["coding"][0]["system"], a["event"]["coding"][0]["code"]) in falls
        )

    def diagnoses(self, eid: str) -> list[tuple[str, str, str]]:
        return [d for _, claim in self.claims.get(eid, []) for d in claim_diagnoses(claim)]

    def stays_with(self, codes: set[str], poa: set[str]) -> set[str]:
        return {eid for eid in self.stays if any(c in codes and p in poa for _, c, p in self.diagnoses(eid))}


def _pairs(codes: tuple[C.Code, ...]) -> list[tuple[str, str]]:
    return [(s, c) for s, c, _ in codes]


@pytest.fixture(scope="module")
def bills(population_run: tuple[Path, GenerateSummary]) -> Bills:
    return Bills(population_run[0])


@pytest.fixture(scope="module")
def big_bills(comparison_run: tuple[Path, GenerateSummary]) -> Bills:
    return Bills(comparison_run[0])


def test_every_inpatient_stay_is_billed_once_on_an_institutional_claim(
    clean_run: tuple[Path, GenerateSummary],
) -> None:
    root, _ = clean_run
    bills = Bills(root)
    assert len(bills.stays) > 50
    assert set(bills.claims) == set(bills.stays), "a claim for every stay, and only for stays"
    for eid, billed in bills.claims.items():
        assert len(billed) == 1, eid
        (batch, claim), (stay_batch, stay) = billed[0], bills.stays[eid]
        assert batch == stay_batch  # created at discharge, delivered with the stay
        assert (claim["status"], claim["use"], claim["type"]["coding"][0]["code"]) == (
            "active",
            "claim",
            "institutional",
        )
        assert ref_id(claim["patient"]) == ref_id(stay["subject"])
        assert ref_id(claim["provider"]) == ref_id(stay["serviceProvider"])
        assert claim["billablePeriod"] == {"start": stay["period"]["start"][:10], "end": stay["period"]["end"][:10]}
        diagnoses = claim["diagnosis"]
        assert [d["sequence"] for d in diagnoses] == list(range(1, len(diagnoses) + 1))
        assert diagnoses[0]["type"][0]["coding"][0]["code"] == "principal"
        assert diagnoses[0]["onAdmission"]["coding"][0]["code"] == "Y"
        assert all("type" not in d for d in diagnoses[1:])
        assert all(d["diagnosisCodeableConcept"]["coding"][0]["system"] == C.ICD10CM for d in diagnoses)
        # the room-and-board line points at every diagnosis and names the stay
        assert claim["item"][0]["diagnosisSequence"] == [d["sequence"] for d in diagnoses]
        assert all(ref_id(item["encounter"][0]) == eid for item in claim["item"])
        codes = [c for _, c, _ in claim_diagnoses(claim)]
        assert len(codes) == len(set(codes)), "a code is listed once"
        for proc in claim.get("procedure", []):
            assert proc["procedureCodeableConcept"]["coding"][0]["system"] == C.ICD10PCS
            assert stay["period"]["start"] <= proc["date"] <= stay["period"]["end"]


def test_every_claim_diagnosis_states_present_on_admission(bills: Bills) -> None:
    poa = Counter(p for eid in bills.stays for _, _, p in bills.diagnoses(eid))
    assert set(poa) == {"Y", "N", "U", "W"}
    assert sum(poa.values()) > 2 * len(bills.stays)
    assert poa["Y"] > 0.8 * sum(poa.values())
    assert poa["N"] > poa["U"] and poa["Y"] > poa["W"]


def test_hospital_acquired_pressure_injuries_a_few_per_1000_bed_days(bills: Bills) -> None:
    acquired = bills.stays_with(PRESSURE_INJURY, ABSENT)
    present = bills.stays_with(PRESSURE_INJURY, PRESENT)
    assert 1.0 <= 1000 * len(acquired) / bills.bed_days <= 8.0
    assert 0.005 <= len(acquired) / len(bills.stays) <= 0.05
    assert present and len(present) < 2 * len(acquired) + 10
    deep = {c[1] for c in C.PRESSURE_INJURY_DEEP_TISSUE}
    assert bills.stays_with(deep, ABSENT), "deep tissue injuries occur"


def test_pressure_injuries_on_the_claim_agree_with_the_record(population_run: tuple[Path, GenerateSummary]) -> None:
    root, _ = population_run
    bills = Bills(root)
    recorded: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for _, c in clean_resources(root, "Condition.ndjson"):
        code = c["code"]["coding"][0]["code"]
        if code in PRESSURE_INJURY:
            recorded[ref_id(c["encounter"])].add((code, c["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]))
    checked = 0
    for eid in bills.stays:
        billed = {(c, p) for _, c, p in bills.diagnoses(eid) if c in PRESSURE_INJURY}
        if eid in recorded and billed:
            assert billed <= recorded[eid], eid
            checked += 1
    assert checked > 10


def test_falls_with_moderate_or_major_injury_below_one_per_1000_bed_days(big_bills: Bills) -> None:
    b = big_bills
    harmed = b.stays_with(FALLS, ABSENT) & b.stays_with(INJURIES, ABSENT)
    assert 0.1 <= 1000 * len(harmed) / b.bed_days <= 2.0
    assert all(b.falls[eid] for eid in harmed), "an injury from a fall in hospital has its incident report"
    falls = sum(b.falls.values())
    assert 2.0 <= 1000 * falls / b.bed_days <= 8.0
    assert len(harmed) < 0.3 * falls  # most falls cause no or minor harm


def test_every_fall_in_hospital_is_coded_not_present_on_admission(big_bills: Bills) -> None:
    b = big_bills
    arrived = b.stays_with(FALLS, PRESENT)  # a code is listed once: a fall before admission may stand for both
    fell = {eid for eid in b.falls if eid in b.stays} - arrived
    assert len(fell) > 20
    assert fell <= b.stays_with(FALLS, ABSENT)


def test_some_patients_arrive_after_a_fall(big_bills: Bills) -> None:
    """Hip and wrist fractures admitted from home, and falls before an admission for
    something else: the fall is on the claim as present on admission (CMS1017 excludes them)."""
    b = big_bills
    arrived = b.stays_with(FALLS, PRESENT)
    assert 0.01 <= len(arrived) / len(b.stays) <= 0.12
    hip = {c[1] for c in C.HIP_FRACTURES}
    assert arrived & b.stays_with(hip, PRESENT)
