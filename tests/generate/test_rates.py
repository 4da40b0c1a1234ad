"""Indicator-shaped rates computed independently from the files, against the brief's targets."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from statistics import median

import pytest

from pipelines.config import PROJECT_ROOT
from pipelines.generate import GenerateSummary
from pipelines.tables import POA_EXTENSION
from tests.generate.helpers import clean_resources, clean_rows, ref_id, ts

VS = PROJECT_ROOT / "indicators" / "valuesets"


def _codes(*names: str) -> set[tuple[str, str]]:
    out = set()
    for n in names:
        for c in json.loads((VS / f"{n}.json").read_text())["expansion"]["contains"]:
            out.add((c["system"], c["code"]))
    return out


def _coding(concept: dict) -> tuple[str, str]:
    c = concept["coding"][0]
    return c["system"], c["code"]


class Stays:
    """Inpatient stays with bed-days and facility/ward, read back from a run."""

    def __init__(self, root: Path) -> None:
        self.encounters = [e for _, e in clean_resources(root, "Encounter.ndjson")]
        self.ip = [e for e in self.encounters if e["class"]["code"] == "IMP"]
        self.by_id = {e["id"]: e for e in self.ip}
        self.bed_days = {
            e["id"]: (ts(e["period"]["end"]) - ts(e["period"]["start"])) / timedelta(days=1) for e in self.ip
        }
        self.adverse = [a for _, a in clean_resources(root, "AdverseEvent.ndjson")]
        falls = _codes("adverse-event-fall")
        self.falls = [a for a in self.adverse if _coding(a["event"]) in falls]

    def falls_per_1000(self, keep) -> float:  # type: ignore[no-untyped-def]
        days = sum(d for i, d in self.bed_days.items() if keep(self.by_id[i]))
        n = sum(
            1 for a in self.falls if ref_id(a["encounter"]) in self.by_id and keep(self.by_id[ref_id(a["encounter"])])
        )
        return 1000 * n / days


@pytest.fixture(scope="module")
def stays(population_run: tuple[Path, GenerateSummary]) -> Stays:
    return Stays(population_run[0])


def test_share_of_patients_admitted_in_a_year(stays: Stays) -> None:
    share = len({ref_id(e["subject"]) for e in stays.ip}) / 2000
    assert 0.12 <= share <= 0.28


def test_emergency_readmission_within_30_days(stays: Stays) -> None:
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for e in stays.ip:
        by_patient[ref_id(e["subject"])].append(e)
    index = readmitted = 0
    for eps in by_patient.values():
        eps.sort(key=lambda e: e["period"]["start"])
        for cur, nxt in zip(eps, [*eps[1:], None], strict=True):
            disposition = cur["hospitalization"]["dischargeDisposition"]["coding"][0]["code"]
            if disposition in ("exp", "other-hcf"):
                continue
            index += 1
            if nxt is not None and nxt["priority"]["coding"][0]["code"] in ("EM", "UR"):
                gap = ts(nxt["period"]["start"]) - ts(cur["period"]["end"])
                readmitted += timedelta(0) <= gap <= timedelta(days=30)
    assert index > 300
    assert 0.07 <= readmitted / index <= 0.2


def test_vte_prophylaxis_by_the_day_after_admission(population_run: tuple[Path, GenerateSummary], stays: Stays) -> None:
    root, _ = population_run
    pharm = _codes("vte-pharmacological-prophylaxis") | _codes("vte-low-dose-unfractionated-heparin")
    mech = _codes("vte-mechanical-prophylaxis")
    first: dict[str, object] = {}
    for _, m in clean_resources(root, "MedicationAdministration.ndjson"):
        if _coding(m["medicationCodeableConcept"]) in pharm:
            eid, t = ref_id(m["context"]), ts(m["effectiveDateTime"])
            first[eid] = min(first.get(eid, t), t)  # type: ignore[type-var]
    for _, p in clean_resources(root, "Procedure.ndjson"):
        if _coding(p["code"]) in mech:
            eid, t = ref_id(p["encounter"]), ts(p["performedDateTime"])
            first[eid] = min(first.get(eid, t), t)  # type: ignore[type-var]
    timely = sum(
        1
        for e in stays.ip
        if e["id"] in first and (first[e["id"]].date() - ts(e["period"]["start"]).date()).days <= 1  # type: ignore[attr-defined]
    )
    never = sum(1 for e in stays.ip if e["id"] not in first)
    assert 0.72 <= timely / len(stays.ip) <= 0.95
    assert never > 0 and len(first) > timely  # some never, some late


def test_falls_per_1000_bed_days_with_graded_harm(stays: Stays) -> None:
    assert 2.0 <= stays.falls_per_1000(lambda e: True) <= 8.0
    assert len(stays.falls) >= 5


def test_most_falls_cause_no_or_low_harm_but_some_worse(big: Stays) -> None:
    harms = Counter(a["extension"][0]["valueCode"] for a in big.falls)
    assert harms["none"] + harms["low"] > 3 * (harms["moderate"] + harms["severe"] + harms["death"])
    assert harms["moderate"] > 0 and harms["severe"] > 0


def test_pressure_injuries_hospital_acquired_and_present_on_admission(
    population_run: tuple[Path, GenerateSummary], stays: Stays
) -> None:
    root, _ = population_run
    stage2 = _codes("pressure-injury-stage-2-plus")
    poa: dict[str, set[str]] = defaultdict(set)
    for _, c in clean_resources(root, "Condition.ndjson"):
        if _coding(c["code"]) in stage2:
            ext = next(x for x in c["extension"] if x["url"] == POA_EXTENSION)
            poa[ext["valueCodeableConcept"]["coding"][0]["code"]].add(ref_id(c["encounter"]))
    hapi = len(poa["N"] & set(stays.by_id)) / len(stays.ip)
    assert 0.005 <= hapi <= 0.05
    assert poa["Y"]


def test_other_incidents_and_blood_pressure(population_run: tuple[Path, GenerateSummary], stays: Stays) -> None:
    root, _ = population_run
    med_errors = _codes("adverse-event-medication-error")
    assert any(_coding(a["event"]) in med_errors for a in stays.adverse)
    bp = [o for _, o in clean_resources(root, "Observation.ndjson") if _coding(o["code"])[1] == "85354-9"]
    assert len(bp) > 1000
    for o in bp[:500]:
        sys_, dia = (c["valueQuantity"]["value"] for c in o["component"])
        assert 60 < sys_ < 260 and 30 < dia < sys_


def test_survey_returns_and_complaints(population_run: tuple[Path, GenerateSummary], stays: Stays) -> None:
    root, _ = population_run
    surveys = [s for _, s in clean_rows(root, "survey_responses.csv")]
    assert 0.15 <= len(surveys) / len(stays.ip) <= 0.35
    top_box = sum(s["recommend"] == "4" for s in surveys) / len(surveys)
    assert 0.6 <= top_box <= 0.82
    # items move with the recommend answer
    mean_item = {r: median(int(s["q_empathy"]) for s in surveys if s["recommend"] == r) for r in ("4", "2")}
    assert mean_item["4"] > mean_item["2"]
    complaints = [c for _, c in clean_rows(root, "complaints.csv")]
    assert 0.005 <= len(complaints) / len(stays.encounters) <= 0.03
    acked = [c for c in complaints if c["acknowledged_at"]]
    assert median((ts(c["acknowledged_at"]) - ts(c["received_at"])).days for c in acked) <= 4


@pytest.fixture(scope="module")
def big(comparison_run: tuple[Path, GenerateSummary]) -> Stays:
    return Stays(comparison_run[0])


def test_riverside_and_its_hotspot_ward_fall_more(big: Stays) -> None:
    def at(fac: str):  # type: ignore[no-untyped-def]
        return lambda e: ref_id(e["serviceProvider"]) == fac

    riverside = big.falls_per_1000(at("org-riverside"))
    others = big.falls_per_1000(lambda e: ref_id(e["serviceProvider"]) != "org-riverside")
    assert riverside > 1.3 * others
    tyne = big.falls_per_1000(lambda e: ref_id(e["location"][0]["location"]) == "loc-riverside-ward-tyne")
    assert tyne > riverside


def test_riverside_patients_are_less_satisfied_and_wait_longer_for_replies(
    comparison_run: tuple[Path, GenerateSummary],
) -> None:
    root, _ = comparison_run
    top: dict[bool, list[bool]] = defaultdict(list)
    for _, s in clean_rows(root, "survey_responses.csv"):
        top[s["facility_id"] == "org-riverside"].append(s["recommend"] == "4")
    assert sum(top[True]) / len(top[True]) < sum(top[False]) / len(top[False]) - 0.05
    slow: dict[bool, list[bool]] = defaultdict(list)
    for _, c in clean_rows(root, "complaints.csv"):
        if c["acknowledged_at"]:
            slow[c["facility_id"] == "org-riverside"].append(
                ts(c["acknowledged_at"]) - ts(c["received_at"]) > timedelta(days=5)
            )
    assert sum(slow[True]) / len(slow[True]) > 2 * sum(slow[False]) / len(slow[False])


def test_admissions_peak_in_winter(big: Stays) -> None:
    per_month = Counter(e["period"]["start"][5:7] for e in big.ip if e["priority"]["coding"][0]["code"] != "EL")
    winter = per_month["12"] + per_month["01"] + per_month["02"]
    summer = per_month["06"] + per_month["07"] + per_month["08"]
    assert winter > 1.1 * summer
