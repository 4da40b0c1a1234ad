"""One synthetic patient's life in hospital over the reporting window.

Each patient is simulated on their own random stream (seeded from the run seed and
the patient's index), so a patient's records do not depend on anyone else's and the
run can stream patient by patient in bounded memory.

Rates are set so that every indicator, the CMS eCQMs included, has a non-degenerate
value at a few thousand patients a year (targets, per year: 15-25% of patients
admitted; 10-15% of discharges re-admitted as an emergency within 30 days; 80-90% of
admissions receiving VTE prophylaxis by the day after admission; 3-6 inpatient falls per
1,000 bed-days, about one in eight of them with a moderate or major injury;
hospital-acquired stage 2+ or deep tissue pressure injuries in 1-3% of stays, a few per
1,000 bed-days). What a stay leaves behind, including the institutional Claim whose
diagnoses carry present-on-admission indicators, is :mod:`pipelines.generate.stay`'s;
who the patient is and their usual blood pressure, :mod:`pipelines.generate.patient`'s.
About a quarter of
adults have hypertension, nearly all of it essential, and are reviewed in office visits
two or three times a year with a blood-pressure reading; about two thirds of them are
controlled (below 140/90). Admissions and falls carry mild winter seasonality.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from pipelines.generate import codes as C
from pipelines.generate import resources as R
from pipelines.generate.clock import DAY, HOUR, batch_index, day_start, iso, iso_date, season, weekday
from pipelines.generate.feedback import complainant_key, complaint_deliveries, survey_row
from pipelines.generate.ids import new_id, rint
from pipelines.generate.model import Facility, Ward
from pipelines.generate.patient import Item, PatientState
from pipelines.generate.stay import stay_records

YEAR = int(365.25 * DAY)
#: Admissions start this long before the first reported month, so that stays and
#: re-admissions straddling the window's start look like a continuing service.
LOOKBACK = 60 * DAY
#: Hypertension reviews (office visits) per year for a patient with hypertension.
HYPERTENSION_REVIEWS_PER_YEAR = 2.5

_AGE_BANDS = ((0, 18, 0.20), (18, 45, 0.33), (45, 65, 0.26), (65, 80, 0.14), (80, 100, 0.07))


@dataclass(frozen=True)
class World:
    facilities: tuple[Facility, ...]
    bounds: list[int]  # month starts + end of window, minutes
    seed: int

    @property
    def window_start(self) -> int:
        return self.bounds[0]

    @property
    def window_end(self) -> int:
        return self.bounds[-1]


@dataclass
class PatientRecords:
    patient: dict[str, Any]
    death: int | None
    items: list[Item]  # (batch index, file name, FHIR resource or CSV row)


_cc = R.cc
_CLASS = {k: {"system": C.ACT_CODE, "code": k, "display": v} for k, v in C.CLASS_DISPLAY.items()}
_PRIORITY = {k: _cc(C.ACT_PRIORITY, k, v) for k, v in C.PRIORITY_DISPLAY.items()}
_SERVICE = {k: _cc(C.SERVICE_SYSTEM, k, v) for k, v in C.SERVICES.items()}

_FIRST_NAMES = {
    "male": ("James", "Oliver", "Mohammed", "Harry", "George", "Arjun", "Thomas", "Daniel", "Kwame", "Liam"),
    "female": ("Olivia", "Amelia", "Isla", "Priya", "Grace", "Sophie", "Aisha", "Emily", "Chloe", "Mei"),
}
_FAMILY = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Patel", "Khan", "Evans", "Thomas",
    "Roberts", "Walker", "Wright", "Okafor", "Nowak", "Murphy", "Hughes", "Chen", "Green", "Hall",
)  # fmt: skip
_STREETS = ("High Street", "Station Road", "Church Lane", "Mill Road", "Park Avenue", "Victoria Street")
_TOWNS = ("Northfield", "Riverside", "Ashby", "Kingsford", "Elmbridge")


def _office_visit(rng: random.Random) -> C.Code:
    """The CPT evaluation-and-management code of a clinic visit: mostly established
    patients at the low and moderate levels."""
    u = rng.random()
    if u < 0.12:
        return C.OFFICE_VISITS_NEW[0 if u < 0.07 else 1]
    established = C.OFFICE_VISITS_ESTABLISHED
    return established[0 if u < 0.2 else 1 if u < 0.6 else 2 if u < 0.93 else 3]


class Simulator:
    """Turns a patient index into that patient's resources and feedback rows."""

    def __init__(self, world: World) -> None:
        self.w = world
        facs = world.facilities
        total = sum(f.weight for f in facs)
        self._fac_weights = tuple((f, f.weight / total) for f in facs)

    # ---- population ---------------------------------------------------------------------------------

    def _facility(self, rng: random.Random) -> Facility:
        u = rng.random()
        acc = 0.0
        for f, wt in self._fac_weights:
            acc += wt
            if u < acc:
                return f
        return self._fac_weights[-1][0]

    def simulate(self, index: int) -> PatientRecords:
        w = self.w
        rng = random.Random(w.seed * 4_294_967_296 + index)
        pid = new_id(rng)
        u = rng.random()
        gender = "male" if u < 0.49 else "female" if u < 0.985 else "other" if u < 0.993 else "unknown"
        u = rng.random()
        acc = 0.0
        band = _AGE_BANDS[-1]
        for band in _AGE_BANDS:
            acc += band[2]
            if u < acc:
                break
        age = rng.uniform(band[0], band[1])
        birth = w.window_end - int(age * YEAR)
        birth -= birth % DAY
        home = self._facility(rng)
        frailty = rng.gammavariate(0.6, 1 / 0.6)
        age_f = 0.3 if age < 18 else 0.55 if age < 45 else 1.0 if age < 65 else 1.9 if age < 80 else 2.9
        p_htn = 0.005 if age < 18 else 0.04 if age < 30 else 0.15 if age < 50 else 0.35 if age < 70 else 0.55
        htn = None
        if rng.random() < p_htn:
            htn = C.ESSENTIAL_HYPERTENSION if rng.random() < 0.95 else C.SECONDARY_HYPERTENSION
        names = _FIRST_NAMES["male" if gender == "male" else "female"]
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [
                {
                    "use": "usual",
                    "type": _cc(C.IDENTIFIER_TYPE, "MR", "Medical record number"),
                    "system": C.MRN_SYSTEM,
                    "value": f"MRN{10_000_000 + rint(rng, 90_000_000)}",
                }
            ],
            "name": [
                {
                    "use": "official",
                    "family": _FAMILY[rint(rng, len(_FAMILY))],
                    "given": [names[rint(rng, len(names))]],
                }
            ],
            "telecom": [{"system": "phone", "value": f"01632 {960000 + rint(rng, 1000)}", "use": "home"}],
            "gender": gender,
            "birthDate": iso_date(birth),
            "address": [
                {
                    "use": "home",
                    "line": [f"{rng.randint(1, 199)} {_STREETS[rint(rng, len(_STREETS))]}"],
                    "city": _TOWNS[rint(rng, len(_TOWNS))],
                    "postalCode": f"ZZ{rng.randint(1, 99)} {rng.randint(1, 9)}XX",
                    "country": "GB",
                }
            ],
            "managingOrganization": {"reference": f"Organization/{home.id}", "display": home.name},
        }
        state = PatientState(pid, age, birth, home, frailty, age_f, htn, rng)
        if htn is not None:
            # diagnosed before the window (and after childhood): one onset for every record of it
            years = rng.uniform(0.3, max(0.5, min(20.0, age - 16.0)))
            state.htn_onset = max(birth + 10 * YEAR, w.window_start - LOOKBACK - int(years * YEAR))
        self._life(state)
        return PatientRecords(patient, state.death, state.items)

    # ---- timeline -----------------------------------------------------------------------------------

    def _arrivals(
        self,
        rng: random.Random,
        start: int,
        per_year: float,
        amp: float,
        kind: str,
        out: list[tuple[int, str]],
    ) -> None:
        """Poisson arrivals by thinning, so the rate can follow the seasons."""
        if per_year <= 0:
            return
        peak = per_year * (1.0 + amp) / YEAR
        t = start
        end = self.w.window_end
        while True:
            t += int(rng.expovariate(peak)) + 1
            if t >= end:
                return
            if amp and rng.random() * (1.0 + amp) > season(t, amp):
                continue
            out.append((t, kind))

    def _life(self, s: PatientState) -> None:
        rng = s.rng
        start = max(self.w.window_start - LOOKBACK, s.birth + DAY)
        events: list[tuple[int, str]] = []
        self._arrivals(rng, start, 0.25 * s.age_f * s.frailty, 0.12, "IMP", events)
        self._arrivals(rng, start, 1.6 * (0.6 + 0.4 * s.age_f) * (0.5 + 0.5 * s.frailty), 0.0, "AMB", events)
        self._arrivals(rng, start, 0.28 * (0.5 + 0.5 * s.frailty), 0.08, "EMER", events)
        if s.htn is not None and s.age >= 18:
            self._arrivals(rng, max(start, s.htn_onset), HYPERTENSION_REVIEWS_PER_YEAR, 0.0, "HTN", events)
        events.sort()
        i = 0
        while i < len(events) and s.death is None:
            t, kind = events[i]
            i += 1
            if t < s.busy_until:
                continue
            if kind in ("AMB", "HTN"):
                self._outpatient(s, t, review=kind == "HTN")
            elif kind == "EMER":
                self._emergency(s, t, admitted=False)
            else:
                readmit_at = self._inpatient(s, t, readmission=kind == "READMIT")
                if readmit_at is not None:
                    # keep the queue sorted: insert after every event at or before the readmission
                    j = i
                    while j < len(events) and events[j][0] <= readmit_at:
                        j += 1
                    events.insert(j, (readmit_at, "READMIT"))

    # ---- encounters ---------------------------------------------------------------------------------

    def _encounter(
        self,
        s: PatientState,
        cls: str,
        type_code: C.Code,
        start: int,
        end: int,
        fac: Facility,
        ward: Ward,
        priority: str | None,
        admit_source: str | None,
        disposition: str | None,
    ) -> tuple[str, int, dict[str, Any]]:
        eid = new_id(s.rng)
        enc: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": _CLASS[cls],
            "type": [R.coded(type_code)],
            "serviceType": _SERVICE[ward.service],
        }
        if priority:
            enc["priority"] = _PRIORITY[priority]
        enc["subject"] = {"reference": f"Patient/{s.pid}"}
        enc["period"] = {"start": iso(start), "end": iso(end)}
        hosp: dict[str, Any] = {}
        if admit_source:
            hosp["admitSource"] = _cc(C.ADMIT_SOURCE, admit_source)
        if disposition:
            hosp["dischargeDisposition"] = _cc(C.DISCHARGE_DISPOSITION, disposition)
        if hosp:
            enc["hospitalization"] = hosp
        enc["location"] = [
            {"location": {"reference": f"Location/{ward.id}", "display": ward.name}, "status": "completed"}
        ]
        enc["serviceProvider"] = {"reference": f"Organization/{fac.id}", "display": fac.name}
        return eid, batch_index(self.w.bounds, end), enc

    def _pick_facility(self, s: PatientState) -> Facility:
        return s.home if s.rng.random() < 0.88 else self._facility(s.rng)

    def _outpatient(self, s: PatientState, t: int, *, review: bool) -> None:
        """A clinic office visit; ``review``: a hypertension review (general medicine or
        cardiology), where the diagnosis is always recorded and the blood pressure nearly always taken."""
        rng = s.rng
        day = day_start(t)
        while weekday(day) >= 5:
            day += DAY
        start = day + 8 * HOUR + 30 + rint(rng, 8 * HOUR)
        if start < s.busy_until:
            return
        end = start + 15 + rint(rng, 45)
        fac = self._pick_facility(s)
        u = rng.random()
        if review:
            service = "cardiology" if u < 0.2 else "general-medicine"
        else:
            service = (
                "cardiology" if u < 0.22 else "orthopaedics" if u < 0.42 else "surgery" if u < 0.6 else
                "elderly-care" if (u < 0.7 and s.age >= 70) else "general-medicine"
            )  # fmt: skip
        ward = fac.clinics[service]
        eid, batch, enc = self._encounter(s, "AMB", _office_visit(rng), start, end, fac, ward, None, "gp", "home")
        s.busy_until = end
        if batch < 0:
            return
        items = s.items
        items.append((batch, "Encounter.ndjson", enc))
        if s.htn is not None and (review or rng.random() < 0.7):
            items.append((batch, "Condition.ndjson", s.diagnosis(eid, s.htn, start, end, None)))
        elif rng.random() < 0.4:
            dx = C.OUTPATIENT_DX[rint(rng, len(C.OUTPATIENT_DX))]
            items.append((batch, "Condition.ndjson", s.diagnosis(eid, dx, start, end, None)))
        if rng.random() < (0.97 if s.htn is not None else 0.85):
            at = start + 5 + rint(rng, 10)
            systolic, diastolic = s.bp_reading()
            items.append((batch, "Observation.ndjson", R.blood_pressure(rng, s.pid, eid, at, systolic, diastolic)))
            if (systolic >= 140 or diastolic >= 90) and rng.random() < 0.5:
                # a high first reading is repeated after a few minutes' rest (both count that day)
                systolic, diastolic = s.bp_reading()
                bp = R.blood_pressure(rng, s.pid, eid, at + 5 + rint(rng, 5), systolic, diastolic)
                items.append((batch, "Observation.ndjson", bp))
        if rng.random() < 0.006:
            self._complaint(s, batch, fac, ward, end)

    def _emergency(self, s: PatientState, t: int, *, admitted: bool, fac: Facility | None = None) -> int:
        """An ED attendance starting at ``t``; returns when it ends (admission time if admitted)."""
        rng = s.rng
        fac = fac or self._pick_facility(s)
        ward = fac.ed
        assert ward is not None
        end = t + max(45, int(rng.lognormvariate(math.log(200), 0.5)))
        disposition = None if admitted else ("home" if rng.random() < 0.95 else "aadvice")
        ed_type = C.ENCOUNTER_TYPES["EMER"]
        eid, batch, enc = self._encounter(s, "EMER", ed_type, t, end, fac, ward, "EM", None, disposition)
        s.busy_until = end
        if batch < 0:
            return end
        items = s.items
        items.append((batch, "Encounter.ndjson", enc))
        if rng.random() < 0.8:
            dx = C.ED_DX[rint(rng, len(C.ED_DX))]
            items.append((batch, "Condition.ndjson", s.diagnosis(eid, dx, t, end, None)))
        if rng.random() < 0.9:
            at = t + 10 + rint(rng, 30)
            s.vitals(eid, batch, at)
        if not admitted and rng.random() < 0.02:
            self._complaint(s, batch, fac, ward, end)
        return end

    def _inpatient_service(self, s: PatientState, priority: str) -> str:
        u = s.rng.random()
        if priority == "EL":
            return (
                "surgery"
                if u < 0.45
                else "orthopaedics"
                if u < 0.8
                else "cardiology"
                if u < 0.95
                else "general-medicine"
            )
        if s.age >= 75:
            return (
                "elderly-care" if u < 0.45 else "general-medicine" if u < 0.7 else
                "cardiology" if u < 0.82 else "orthopaedics" if u < 0.92 else "surgery"
            )  # fmt: skip
        return (
            "general-medicine" if u < 0.45 else "surgery" if u < 0.65 else "cardiology" if u < 0.8 else
            "orthopaedics"
        )  # fmt: skip

    def _inpatient(self, s: PatientState, t: int, *, readmission: bool) -> int | None:
        """One admission; returns the time of a scheduled emergency re-admission, if any."""
        rng = s.rng
        w = self.w
        if readmission:
            priority = "EM" if rng.random() < 0.8 else "UR"
        else:
            u = rng.random()
            priority = "EM" if u < 0.6 else "UR" if u < 0.76 else "EL"
        service = self._inpatient_service(s, priority)
        fac = s.last_facility if (readmission and s.last_facility) else self._pick_facility(s)
        wards = fac.wards[service]
        ward = wards[rint(rng, len(wards))]
        if priority == "EL":
            day = day_start(t)
            while weekday(day) >= 5:
                day += DAY
            start = day + 7 * HOUR + rint(rng, 3 * HOUR)
            if start < s.busy_until:
                return None
            admit_source = "outp"
            los = rng.lognormvariate(math.log(2.3), 0.7)
        else:
            start = t
            if rng.random() < 0.75:
                start = self._emergency(s, t, admitted=True, fac=fac)
                admit_source = "emd"
            else:
                admit_source = "gp"
            los = rng.lognormvariate(math.log(3.6 * (1.3 if s.age >= 75 else 1.0)), 0.85)
        los = min(los, 45.0)
        end = day_start(start + int(los * DAY)) + 10 * HOUR + rint(rng, 8 * HOUR)
        if end < start + 4 * HOUR:
            end = start + 4 * HOUR + rint(rng, 8 * HOUR)
        p_die = 0.006 + (0.025 if s.age >= 75 else 0.0) + (0.02 if s.age >= 85 else 0.0)
        died = rng.random() < p_die
        if died:
            end = start + 2 * HOUR + rint(rng, max(1, end - start))
        s.busy_until = end
        s.last_facility = fac
        bed_days = (end - start) / DAY

        # harms decided first: a fatal fall ends the stay in death
        fall_rate = 0.003 * fac.falls_factor * ward.falls_factor * season(start, 0.1)
        fall_rate *= 1.6 if s.age >= 75 else 1.2 if s.age >= 65 else 0.4 if s.age < 18 else 0.8
        falls: list[tuple[int, str]] = []
        pos = rng.expovariate(fall_rate)
        while pos < bed_days:
            u = rng.random()
            harm = (
                "none" if u < 0.6 else "low" if u < 0.88 else "moderate" if u < 0.96 else
                "severe" if u < 0.994 else "death"
            )  # fmt: skip
            falls.append((start + int(pos * DAY), harm))
            if harm == "death":
                died = True
                end = max(end, falls[-1][0] + 3 * HOUR)
                s.busy_until = end
                break
            pos += rng.expovariate(fall_rate)

        if died:
            disposition = "exp"
        else:
            u = rng.random()
            elderly = s.age >= 75
            disposition = (
                "home" if u < (0.78 if elderly else 0.92) else "snf" if u < (0.88 if elderly else 0.94) else
                "rehab" if u < 0.95 else "other-hcf" if u < 0.98 else "aadvice"
            )  # fmt: skip
        eid, batch, enc = self._encounter(
            s, "IMP", C.ENCOUNTER_TYPES[priority], start, end, fac, ward, priority, admit_source, disposition
        )
        if died:
            s.death = end
        harmed = any(h != "none" for _, h in falls)
        if batch >= 0:
            s.items.append((batch, "Encounter.ndjson", enc))
            stay_records(s, eid, batch, fac, ward, priority, start, end, falls)
            if not died and rng.random() < 0.27:
                sv = survey_row(rng, eid, fac, ward, end, harmed, w.bounds)
                if sv is not None:
                    s.items.append((sv[0], "survey_responses.csv", sv[1]))
            if rng.random() < 0.05:
                self._complaint(s, batch, fac, ward, end)
        if died or disposition == "other-hcf":
            return None
        p = 0.07 * (1.3 if s.age >= 75 else 1.0) * (1.3 if s.frailty > 1.5 else 1.0)
        if rng.random() < p:
            gap = int(rng.triangular(1, 31, 1))
            return end + gap * DAY - rint(rng, 6 * HOUR)
        return None

    def _complaint(self, s: PatientState, batch: int, fac: Facility, ward: Ward, end: int) -> None:
        for batch_no, row in complaint_deliveries(
            s.rng, fac, ward, end, self.w.window_end, self.w.bounds, complainant_key(s.pid)
        ):
            s.items.append((batch_no, "complaints.csv", row))


__all__ = ["LOOKBACK", "PatientRecords", "Simulator", "World"]
