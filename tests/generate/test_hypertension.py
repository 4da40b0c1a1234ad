"""Adults with essential hypertension, seen in office visits with their blood pressure taken.

Read back from the files alone, in the shape CMS165 asks about over calendar year 2026
(the window's months in it): adults aged 18-85 at its end with essential hypertension
and an office visit (CPT evaluation and management) during it, and whether the most
recent office reading day shows control (lowest systolic < 140 and lowest diastolic < 90).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from pipelines.generate import GenerateSummary
from pipelines.generate import codes as C
from tests.generate.helpers import clean_resources, ref_id

YEAR_END = date(2026, 12, 31)
OFFICE = {c[1] for c in (*C.OFFICE_VISITS_ESTABLISHED, *C.OFFICE_VISITS_NEW)}


def _age(birth: str) -> int:
    b = date.fromisoformat(birth)
    return YEAR_END.year - b.year - ((YEAR_END.month, YEAR_END.day) < (b.month, b.day))


class Hypertension:
    def __init__(self, root: Path) -> None:
        self.age = {p["id"]: _age(p["birthDate"]) for _, p in clean_resources(root, "Patient.ndjson")}
        self.onsets: dict[str, set[str]] = defaultdict(set)
        self.secondary: set[str] = set()
        for _, c in clean_resources(root, "Condition.ndjson"):
            code = c["code"]["coding"][0]["code"]
            if code == C.ESSENTIAL_HYPERTENSION.code:
                self.onsets[ref_id(c["subject"])].add(c["onsetDateTime"])
            elif code == C.SECONDARY_HYPERTENSION.code:
                self.secondary.add(ref_id(c["subject"]))
        self.office: dict[str, str] = {}  # encounter id -> patient, office visits in 2026
        for _, e in clean_resources(root, "Encounter.ndjson"):
            coding = e["type"][0]["coding"][0]
            if coding["system"] == C.CPT and coding["code"] in OFFICE and e["period"]["start"][:4] == "2026":
                self.office[e["id"]] = ref_id(e["subject"])
        # the lowest systolic and diastolic on each patient's days of office readings
        self.days: dict[str, dict[str, list[int]]] = defaultdict(dict)
        for _, o in clean_resources(root, "Observation.ndjson"):
            if o["code"]["coding"][0]["code"] != C.BP_PANEL[1] or ref_id(o["encounter"]) not in self.office:
                continue
            systolic, diastolic = (c["valueQuantity"]["value"] for c in o["component"])
            low = self.days[ref_id(o["subject"])].setdefault(o["effectiveDateTime"][:10], [999, 999])
            low[0], low[1] = min(low[0], systolic), min(low[1], diastolic)
        self.adults = {p for p, a in self.age.items() if 18 <= a <= 85}
        self.population = self.adults & set(self.onsets) & set(self.office.values())

    def controlled(self, pid: str) -> bool:
        days = self.days.get(pid)
        if not days:
            return False
        systolic, diastolic = days[max(days)]
        return systolic < 140 and diastolic < 90


@pytest.fixture(scope="module")
def htn(population_run: tuple[Path, GenerateSummary]) -> Hypertension:
    return Hypertension(population_run[0])


def test_a_quarter_of_adults_have_essential_hypertension_and_are_seen_in_office_visits(htn: Hypertension) -> None:
    assert len(htn.population) >= 200
    with_visits = htn.adults & set(htn.office.values())
    assert 0.15 <= len(htn.population) / len(with_visits) <= 0.45
    # reviewed two or three times a year: nearly all of them are seen in the year
    assert len(htn.population) >= 0.8 * len(htn.adults & set(htn.onsets))


def test_about_two_thirds_are_controlled_on_their_most_recent_reading(htn: Hypertension) -> None:
    measured = [p for p in htn.population if p in htn.days]
    assert len(measured) >= 0.95 * len(htn.population)
    rate = sum(htn.controlled(p) for p in htn.population) / len(htn.population)
    assert 0.55 <= rate <= 0.8


def test_hypertension_has_one_onset_per_patient_before_the_window(
    htn: Hypertension, population_run: tuple[Path, GenerateSummary]
) -> None:
    _, summary = population_run
    assert all(len(onsets) == 1 for onsets in htn.onsets.values())
    assert all(next(iter(o))[:7] < summary.batches[0] for o in htn.onsets.values())


def test_secondary_hypertension_is_a_rare_near_miss(htn: Hypertension) -> None:
    assert htn.secondary and not htn.secondary & set(htn.onsets)
    assert len(htn.secondary) < 0.15 * len(htn.onsets)
