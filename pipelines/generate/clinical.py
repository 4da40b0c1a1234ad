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
1,000 bed-days). Every stay is billed on an institutional Claim whose diagnoses carry
present-on-admission indicators (:mod:`pipelines.generate.claims`). About a quarter of
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
from pipelines.generate.claims import StayCoding, institutional_claim
from pipelines.generate.clock import DAY, HOUR, batch_index, day_start, iso, iso_date, season, weekday
from pipelines.generate.feedback import complaint_deliveries, survey_row
from pipelines.generate.ids import new_id, rint
from pipelines.generate.model import Facility, Ward

YEAR = int(365.25 * DAY)
#: Admissions start this long before the first reported month, so that stays and
#: re-admissions straddling the window's start look like a continuing service.
LOOKBACK = 60 * DAY
#: Hypertension reviews (office visits) per year for a patient with hypertension.
HYPERTENSION_REVIEWS_PER_YEAR = 2.5
#: Share of patients with hypertension whose blood pressure is controlled (< 140/90).
HYPERTENSION_CONTROLLED = 0.72

# (file name, payload): payload is a FHIR resource dict or a CSV row list.
Item = tuple[int, str, Any]

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
    items: list[Item]


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


def _pick(rng: random.Random, options: tuple[C.Code, ...]) -> C.Code:
    return options[rint(rng, len(options))]


def _office_visit(rng: random.Random) -> C.Code:
    """The CPT evaluation-and-management code of a clinic visit: mostly established
    patients at the low and moderate levels."""
    u = rng.random()
    if u < 0.12:
        return C.OFFICE_VISITS_NEW[0 if u < 0.07 else 1]
    established = C.OFFICE_VISITS_ESTABLISHED
    return established[0 if u < 0.2 else 1 if u < 0.6 else 2 if u < 0.93 else 3]


def _fall_injury(rng: random.Random, harm: str) -> C.Code | None:
    """What a fall of this harm level injured: nothing, a bruise, a laceration or a fracture."""
    if harm == "none":
        return None
    if harm == "low":
        return _pick(rng, C.MINOR_INJURIES)
    if harm == "moderate":
        return _pick(rng, C.MODERATE_INJURIES) if rng.random() < 0.65 else C.WRIST_FRACTURE
    return _pick(rng, C.MAJOR_INJURIES)


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
        state = _PatientState(pid, age, birth, home, frailty, age_f, htn, rng)
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

    def _life(self, s: _PatientState) -> None:
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
        s: _PatientState,
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

    def _pick_facility(self, s: _PatientState) -> Facility:
        return s.home if s.rng.random() < 0.88 else self._facility(s.rng)

    def _outpatient(self, s: _PatientState, t: int, *, review: bool) -> None:
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
            items.append((batch, "Condition.ndjson", self._condition(s, eid, s.htn, start, end, None)))
        elif rng.random() < 0.4:
            dx = C.OUTPATIENT_DX[rint(rng, len(C.OUTPATIENT_DX))]
            items.append((batch, "Condition.ndjson", self._condition(s, eid, dx, start, end, None)))
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

    def _emergency(self, s: _PatientState, t: int, *, admitted: bool, fac: Facility | None = None) -> int:
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
            items.append((batch, "Condition.ndjson", self._condition(s, eid, dx, t, end, None)))
        if rng.random() < 0.9:
            at = t + 10 + rint(rng, 30)
            self._vitals(s, eid, batch, at)
        if not admitted and rng.random() < 0.02:
            self._complaint(s, batch, fac, ward, end)
        return end

    def _inpatient_service(self, s: _PatientState, priority: str) -> str:
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

    def _inpatient(self, s: _PatientState, t: int, *, readmission: bool) -> int | None:
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
            coding = StayCoding()
            self._stay_diagnoses(s, eid, batch, ward, priority, start, end, coding)
            self._stay_care(s, eid, batch, service, priority, start, end, coding)
            self._stay_incidents(s, eid, batch, ward, start, end, falls, coding)
            claim = institutional_claim(rng, s.pid, eid, (fac.id, fac.name), start, end, coding)
            s.items.append((batch, "Claim.ndjson", claim))
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

    # ---- one stay's records -------------------------------------------------------------------------

    def _stay_diagnoses(
        self,
        s: _PatientState,
        eid: str,
        batch: int,
        ward: Ward,
        priority: str,
        start: int,
        end: int,
        coding: StayCoding,
    ) -> None:
        """The diagnoses the stay records and the claim lists, with present-on-admission:
        the principal (and the fall that caused an injury before admission), comorbidities,
        hypertension, and pressure injuries present on admission or acquired in hospital."""
        rng = s.rng
        items = s.items
        cond = "Condition.ndjson"
        elderly = s.age >= 75
        dxs = C.PRINCIPAL_DX[ward.service]
        principal = dxs[rint(rng, len(dxs))]
        items.append((batch, cond, self._condition(s, eid, principal, start, end, "Y")))
        coding.diagnosis(principal.icd10, "Y")
        if priority != "EL" and principal.code in C.FALL_INJURY_DX:
            # most such fractures come from a fall at home; in younger patients also from sport or the road
            if rng.random() < (0.9 if s.age >= 65 else 0.5):
                coding.diagnosis(_pick(rng, C.FALL_CAUSES), _poa(rng, "Y"))
        elif priority != "EL" and elderly and rng.random() < 0.04:
            # a fall at home before an admission for something else: bruised, not badly hurt
            injury = _pick(rng, C.MINOR_INJURIES)
            onset = start - HOUR - rint(rng, 2 * DAY)
            items.append((batch, cond, self._injury(s, eid, injury, onset, start, "Y")))
            coding.diagnosis(_pick(rng, C.FALL_CAUSES), "Y")
            coding.diagnosis(injury, "Y")
        for _ in range(rng.choice((0, 1, 1, 2))):
            dx = C.COMORBIDITIES[rint(rng, len(C.COMORBIDITIES))]
            u = rng.random()
            poa = "Y" if u < 0.9 else "U" if u < 0.96 else "W"
            items.append((batch, cond, self._condition(s, eid, dx, start, end, poa)))
            coding.diagnosis(dx.icd10, poa)
        if s.htn is not None:
            items.append((batch, cond, self._condition(s, eid, s.htn, start, end, "Y")))
            coding.diagnosis(s.htn.icd10, "Y")
        bed_days = (end - start) / DAY
        # pressure injury already present on admission (care homes, long lies)
        if rng.random() < (0.05 if elderly else 0.012):
            code = C.PRESSURE_ULCER_STAGE_1 if rng.random() < 0.3 else _pressure_injury(rng)
            poa = "Y" if rng.random() < 0.9 else "W"
            items.append((batch, cond, self._injury(s, eid, code, start - rint(rng, 5 * DAY), start, poa)))
            coding.diagnosis(code, poa)
        # hospital-acquired pressure injury: needs time in bed
        if bed_days >= 2 and rng.random() < 0.026 * (1.5 if elderly else 1.0) * min(2.0, bed_days / 5):
            onset = start + 2 * DAY + rint(rng, max(1, end - start - 2 * DAY))
            code = C.PRESSURE_ULCER_STAGE_1 if rng.random() < 0.15 else _pressure_injury(rng)
            poa = "N" if rng.random() < 0.9 else "U"
            items.append((batch, cond, self._injury(s, eid, code, onset, onset, poa)))
            coding.diagnosis(code, poa)
            if rng.random() < 0.6:
                harm = "low" if rng.random() < 0.7 else "moderate"
                staged = code in C.PRESSURE_INJURY_STAGE_2_PLUS and rng.random() < 0.5
                ae_code = C.AE_PRESSURE_INJURY_STAGE_2 if staged else C.AE_PRESSURE_ULCER
                ae = R.adverse_event(rng, s.pid, eid, (ward.id, ward.name), ae_code, onset, harm)
                items.append((batch, "AdverseEvent.ndjson", ae))

    def _stay_care(
        self,
        s: _PatientState,
        eid: str,
        batch: int,
        service: str,
        priority: str,
        start: int,
        end: int,
        coding: StayCoding,
    ) -> None:
        """Procedures (coded on the claim when billable), VTE prophylaxis, paracetamol and vital signs."""
        rng = s.rng
        items = s.items
        pid = s.pid
        p_proc = {"surgery": 0.7, "orthopaedics": 0.95 if priority == "EL" else 0.6, "cardiology": 0.5}
        if rng.random() < p_proc.get(service, 0.5):
            px = C.PROCEDURES[service][rint(rng, len(C.PROCEDURES[service]))]
            at = min(end - HOUR, start + 2 * HOUR + rint(rng, max(1, min(end - start - 3 * HOUR, 2 * DAY))))
            proc = R.procedure(rng, pid, eid, (C.SNOMED, px.code, px.display), at, px.minutes)
            items.append((batch, "Procedure.ndjson", proc))
            if px.icd10pcs is not None:
                coding.procedure(px.icd10pcs, at)

        # VTE prophylaxis: most by the day after admission, some late, some never
        u = rng.random()
        first_day = (0 if rng.random() < 0.6 else 1) if u < 0.9 else 2 + rint(rng, 3) if u < 0.95 else -1
        if first_day >= 0:
            dose = day_start(start) + first_day * DAY + 17 * HOUR + rint(rng, 3 * HOUR)
            if first_day == 0 and dose < start + 30:
                dose = start + 30 + rint(rng, 150)
            if rng.random() < 0.78:
                code = _pick(rng, C.VTE_PHARMACOLOGICAL)
                n = 0
                while dose < end and n < 10:
                    items.append(
                        (
                            batch,
                            "MedicationAdministration.ndjson",
                            R.medication_administration(rng, pid, eid, code, dose),
                        )
                    )
                    dose += DAY - 30 + rint(rng, 61)
                    n += 1
            elif dose < end:
                device = _pick(rng, C.VTE_MECHANICAL)
                items.append((batch, "Procedure.ndjson", R.procedure(rng, pid, eid, device, dose, 0)))
        if rng.random() < 0.4:
            at = start + 60 + rint(rng, max(1, end - start - 60))
            items.append(
                (
                    batch,
                    "MedicationAdministration.ndjson",
                    R.medication_administration(rng, pid, eid, C.PARACETAMOL, at),
                )
            )

        # vital signs: on arrival, then every morning (first week)
        self._vitals(s, eid, batch, start + 20 + rint(rng, 40))
        morning = day_start(start) + DAY + 8 * HOUR
        n = 0
        while morning < end and n < 7:
            self._vitals(s, eid, batch, morning + rint(rng, 60))
            morning += DAY
            n += 1

    def _stay_incidents(
        self,
        s: _PatientState,
        eid: str,
        batch: int,
        ward: Ward,
        start: int,
        end: int,
        falls: list[tuple[int, str]],
        coding: StayCoding,
    ) -> None:
        """Incident reports: falls (with the injury recorded and coded on the claim, not
        present on admission), medication errors and other incidents."""
        rng = s.rng
        items = s.items
        pid = s.pid
        where = (ward.id, ward.name)
        for at, harm in falls:
            items.append(
                (batch, "AdverseEvent.ndjson", R.adverse_event(rng, pid, eid, where, _pick(rng, C.AE_FALL), at, harm))
            )
            poa = _poa(rng, "N")
            coding.diagnosis(_pick(rng, C.FALL_CAUSES), poa)
            injury = _fall_injury(rng, harm)
            if injury is not None:
                items.append((batch, "Condition.ndjson", self._injury(s, eid, injury, at, at + 20, poa)))
                coding.diagnosis(injury, poa)
        bed_days = (end - start) / DAY
        if rng.random() < 0.012 * min(3.0, max(0.5, bed_days / 4)):
            u = rng.random()
            harm = "none" if u < 0.7 else "low" if u < 0.95 else "moderate"
            at = start + rint(rng, max(1, end - start))
            code = _pick(rng, C.AE_MEDICATION_ERROR)
            items.append((batch, "AdverseEvent.ndjson", R.adverse_event(rng, pid, eid, where, code, at, harm)))
        if rng.random() < 0.01:
            at = start + rint(rng, max(1, end - start))
            harm = "none" if rng.random() < 0.6 else "low"
            items.append((batch, "AdverseEvent.ndjson", R.adverse_event(rng, pid, eid, where, C.AE_OTHER, at, harm)))

    def _complaint(self, s: _PatientState, batch: int, fac: Facility, ward: Ward, end: int) -> None:
        for batch_no, row in complaint_deliveries(s.rng, fac, ward, end, self.w.window_end, self.w.bounds):
            s.items.append((batch_no, "complaints.csv", row))

    # ---- records ------------------------------------------------------------------------------------

    def _condition(self, s: _PatientState, eid: str, dx: C.Dx, start: int, end: int, poa: str | None) -> dict[str, Any]:
        """A diagnosis of the record of care (SNOMED CT) made at this encounter: a chronic one
        with its onset years before (hypertension with the patient's own onset), an acute one
        days before and abated at the encounter's end."""
        rng = s.rng
        if dx is s.htn:
            onset = s.htn_onset
        elif dx.chronic:
            onset = max(s.birth + DAY, start - (1 + rint(rng, 3649)) * DAY)
        else:
            onset = max(s.birth + DAY, start - rint(rng, 3 * DAY))
        recorded = start + 30 + rint(rng, min(6 * HOUR, max(1, end - start - 30)))
        code = (C.SNOMED, dx.code, dx.display)
        return R.condition(
            rng, s.pid, eid, code, onset=onset, recorded=recorded, abatement=None if dx.chronic else end, poa=poa
        )

    def _injury(self, s: _PatientState, eid: str, code: C.Code, onset: int, seen: int, poa: str) -> dict[str, Any]:
        """An active injury (ICD-10-CM, as the ward codes pressure injuries and fall injuries),
        recorded within hours of being seen."""
        rng = s.rng
        onset = max(onset, s.birth + DAY)
        recorded = max(seen, onset) + rint(rng, 12 * HOUR)
        return R.condition(rng, s.pid, eid, code, onset=onset, recorded=recorded, poa=poa)

    def _vitals(self, s: _PatientState, eid: str, batch: int, at: int) -> None:
        rng = s.rng
        systolic, diastolic = s.bp_reading()
        s.items.append((batch, "Observation.ndjson", R.blood_pressure(rng, s.pid, eid, at, systolic, diastolic)))
        s.items.append(
            (batch, "Observation.ndjson", R.heart_rate(rng, s.pid, eid, at, int(round(s.hr + rng.gauss(0, 8)))))
        )


def _pressure_injury(rng: random.Random) -> C.Code:
    """A stage 2+ or unstageable pressure injury (three in four), else a deep tissue injury."""
    if rng.random() < 0.25:
        return _pick(rng, C.PRESSURE_INJURY_DEEP_TISSUE)
    return _pick(rng, C.PRESSURE_INJURY_STAGE_2_PLUS)


def _poa(rng: random.Random, usual: str) -> str:
    """A present-on-admission indicator: ``usual`` (Y or N), sometimes the coder cannot tell:
    U (documentation insufficient) for something that arose in hospital, W (clinically
    undetermined) for something the patient came in with."""
    if rng.random() < 0.93:
        return usual
    return "U" if usual == "N" or rng.random() < 0.5 else "W"


class _PatientState:
    """Mutable per-patient simulation state (one instance per patient, then dropped)."""

    __slots__ = (
        "pid", "age", "birth", "home", "frailty", "age_f", "htn", "htn_onset", "rng", "items", "busy_until",
        "death", "last_facility", "sbp", "dbp", "hr",
    )  # fmt: skip

    def __init__(
        self,
        pid: str,
        age: float,
        birth: int,
        home: Facility,
        frailty: float,
        age_f: float,
        htn: C.Dx | None,
        rng: random.Random,
    ) -> None:
        self.pid = pid
        self.age = age
        self.birth = birth
        self.home = home
        self.frailty = frailty
        self.age_f = age_f
        self.htn = htn
        self.htn_onset = 0
        self.rng = rng
        self.items: list[Item] = []
        self.busy_until = 0
        self.death: int | None = None
        self.last_facility: Facility | None = None
        over = max(0.0, age - 40)
        if htn is not None:
            # treated hypertension: most patients are controlled, the rest run well above target
            controlled = rng.random() < HYPERTENSION_CONTROLLED
            self.sbp = (126.0 if controlled else 150.0) + 0.1 * over + rng.gauss(0, 5)
            self.dbp = (77.0 if controlled else 90.0) - 0.05 * over + rng.gauss(0, 4)
        else:
            self.sbp = 114 + 0.35 * over + rng.gauss(0, 6)
            self.dbp = 72 + 0.1 * over + rng.gauss(0, 4)
        self.hr = 76 + rng.gauss(0, 7)

    def bp_reading(self) -> tuple[int, int]:
        """One (systolic, diastolic) reading around the patient's usual pressure."""
        systolic = int(round(self.sbp + self.rng.gauss(0, 9)))
        diastolic = int(round(min(systolic - 20, self.dbp + self.rng.gauss(0, 6))))
        return systolic, diastolic


__all__ = ["LOOKBACK", "PatientRecords", "Simulator", "World"]
