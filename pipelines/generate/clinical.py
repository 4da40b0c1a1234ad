"""One synthetic patient's life in hospital over the reporting window.

Each patient is simulated on their own random stream (seeded from the run seed and
the patient's index), so a patient's records do not depend on anyone else's and the
run can stream patient by patient in bounded memory.

Rates are set so that every indicator has a non-degenerate value at a few thousand
patients a year (targets, per year: 15-25% of patients admitted; 10-15% of discharges
re-admitted as an emergency within 30 days; 80-90% of admissions receiving VTE
prophylaxis by the day after admission; 3-6 inpatient falls per 1,000 bed-days;
hospital-acquired stage 2+ pressure injuries in 1-3% of stays). Admissions and falls
carry mild winter seasonality.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from pipelines.generate import codes as C
from pipelines.generate.clock import DAY, HOUR, batch_index, day_start, iso, iso_date, season, weekday
from pipelines.generate.feedback import complaint_deliveries, survey_row
from pipelines.generate.ids import new_id, rint
from pipelines.generate.model import Facility, Ward
from pipelines.tables import HARM_EXTENSION, POA_EXTENSION, POA_SYSTEM

YEAR = int(365.25 * DAY)
#: Admissions start this long before the first reported month, so that stays and
#: re-admissions straddling the window's start look like a continuing service.
LOOKBACK = 60 * DAY

# (file name, payload): payload is a FHIR resource dict or a CSV row list.
Item = tuple[int, str, Any]

_AGE_BANDS = ((0, 18, 0.20), (18, 45, 0.33), (45, 65, 0.26), (65, 80, 0.14), (80, 100, 0.07))


@dataclass(frozen=True)
class World:
    facilities: tuple[Facility, ...]
    terms: C.Terminology
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


def _cc(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return {"coding": [coding]}


_CLASS = {k: {"system": C.ACT_CODE, "code": k, "display": v} for k, v in C.CLASS_DISPLAY.items()}
_PRIORITY = {k: _cc(C.ACT_PRIORITY, k, v) for k, v in C.PRIORITY_DISPLAY.items()}
_TYPE = {k: [_cc(C.SNOMED, code, disp)] for k, (code, disp) in C.ENCOUNTER_TYPES.items()}
_SERVICE = {k: _cc(C.SERVICE_SYSTEM, k, v) for k, v in C.SERVICES.items()}
_ACTIVE = _cc(C.CONDITION_CLINICAL, "active")
_RESOLVED = _cc(C.CONDITION_CLINICAL, "resolved")
_CONFIRMED = _cc(C.CONDITION_VER, "confirmed")
_ENC_DX = [_cc(C.CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")]
_VITALS = [_cc(C.OBS_CATEGORY, "vital-signs", "Vital Signs")]
_BP_CODE = _cc(C.LOINC, "85354-9", "Blood pressure panel with all children optional")
_SYS_CODE = _cc(C.LOINC, "8480-6", "Systolic blood pressure")
_DIA_CODE = _cc(C.LOINC, "8462-4", "Diastolic blood pressure")
_HR_CODE = _cc(C.LOINC, "8867-4", "Heart rate")
_POA = {k: [{"url": POA_EXTENSION, "valueCodeableConcept": _cc(POA_SYSTEM, k)}] for k in ("Y", "N", "U", "W")}

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


def _ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


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
        htn = rng.random() < (0.02 if age < 30 else 0.15 if age < 50 else 0.35 if age < 70 else 0.55)
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
        events.sort()
        i = 0
        while i < len(events) and s.death is None:
            t, kind = events[i]
            i += 1
            if t < s.busy_until:
                continue
            if kind == "AMB":
                self._outpatient(s, t)
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
        type_key: str,
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
            "type": _TYPE[type_key],
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

    def _outpatient(self, s: _PatientState, t: int) -> None:
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
        service = (
            "cardiology" if u < 0.22 else "orthopaedics" if u < 0.42 else "surgery" if u < 0.6 else
            "elderly-care" if (u < 0.7 and s.age >= 70) else "general-medicine"
        )  # fmt: skip
        ward = fac.clinics[service]
        eid, batch, enc = self._encounter(s, "AMB", "AMB", start, end, fac, ward, None, "gp", "home")
        s.busy_until = end
        if batch < 0:
            return
        items = s.items
        items.append((batch, "Encounter.ndjson", enc))
        if s.htn and rng.random() < 0.7:
            items.append((batch, "Condition.ndjson", self._condition(s, eid, C.HYPERTENSION, start, end, None)))
        elif rng.random() < 0.4:
            dx = C.OUTPATIENT_DX[rint(rng, len(C.OUTPATIENT_DX))]
            items.append((batch, "Condition.ndjson", self._condition(s, eid, dx, start, end, None)))
        if rng.random() < 0.85:
            items.append((batch, "Observation.ndjson", self._bp(s, eid, start + 5 + rint(rng, 10))))
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
        eid, batch, enc = self._encounter(s, "EMER", "EMER", t, end, fac, ward, "EM", None, disposition)
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
            items.append((batch, "Observation.ndjson", self._bp(s, eid, at)))
            items.append((batch, "Observation.ndjson", self._hr(s, eid, at)))
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
                else ("general-medicine")
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
                "none"
                if u < 0.6
                else "low"
                if u < 0.88
                else "moderate"
                if u < 0.96
                else ("severe" if u < 0.994 else "death")
            )
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
            s, "IMP", priority, start, end, fac, ward, priority, admit_source, disposition
        )
        if died:
            s.death = end
        harmed = any(h != "none" for _, h in falls)
        if batch >= 0:
            self._inpatient_records(s, eid, batch, enc, fac, ward, service, priority, start, end, falls)
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

    def _inpatient_records(
        self,
        s: _PatientState,
        eid: str,
        batch: int,
        enc: dict[str, Any],
        fac: Facility,
        ward: Ward,
        service: str,
        priority: str,
        start: int,
        end: int,
        falls: list[tuple[int, str]],
    ) -> None:
        rng = s.rng
        terms = self.w.terms
        items = s.items
        items.append((batch, "Encounter.ndjson", enc))
        cond = "Condition.ndjson"
        dxs = C.PRINCIPAL_DX[service]
        items.append((batch, cond, self._condition(s, eid, dxs[rint(rng, len(dxs))], start, end, "Y")))
        for _ in range(rng.choice((0, 1, 1, 2))):
            dx = C.COMORBIDITIES[rint(rng, len(C.COMORBIDITIES))]
            u = rng.random()
            poa = "Y" if u < 0.9 else "U" if u < 0.96 else "W"
            items.append((batch, cond, self._condition(s, eid, dx, start, end, poa)))
        if s.htn:
            items.append((batch, cond, self._condition(s, eid, C.HYPERTENSION, start, end, "Y")))
        elderly = s.age >= 75
        bed_days = (end - start) / DAY
        # pressure injury already present on admission (care homes, long lies)
        if rng.random() < (0.05 if elderly else 0.012):
            code = C.PRESSURE_ULCER_STAGE_1 if rng.random() < 0.3 else self._pick(rng, terms.pressure_injury)
            items.append((batch, cond, self._pressure_injury(s, eid, code, start - rint(rng, 5 * DAY), "Y")))
        # hospital-acquired pressure injury: needs time in bed
        if bed_days >= 2 and rng.random() < 0.036 * (1.5 if elderly else 1.0) * min(2.0, bed_days / 5):
            onset = start + 2 * DAY + rint(rng, max(1, end - start - 2 * DAY))
            code = C.PRESSURE_ULCER_STAGE_1 if rng.random() < 0.15 else self._pick(rng, terms.pressure_injury)
            items.append((batch, cond, self._pressure_injury(s, eid, code, onset, "N")))
            if rng.random() < 0.6:
                harm = "low" if rng.random() < 0.7 else "moderate"
                ae = self._adverse_event(s, eid, ward, self._pick(rng, terms.ae_pressure_injury), onset, harm)
                items.append((batch, "AdverseEvent.ndjson", ae))

        # procedures
        p_proc = {"surgery": 0.7, "orthopaedics": 0.95 if priority == "EL" else 0.6, "cardiology": 0.5}
        if rng.random() < p_proc.get(service, 0.5):
            px = C.PROCEDURES[service][rint(rng, len(C.PROCEDURES[service]))]
            at = min(end - HOUR, start + 2 * HOUR + rint(rng, max(1, min(end - start - 3 * HOUR, 2 * DAY))))
            items.append((batch, "Procedure.ndjson", self._procedure(s, eid, C.SNOMED, px[0], px[1], at, px[2])))

        # VTE prophylaxis: most by the day after admission, some late, some never
        u = rng.random()
        first_day = (0 if rng.random() < 0.6 else 1) if u < 0.9 else 2 + rint(rng, 3) if u < 0.95 else -1
        if first_day >= 0:
            dose = day_start(start) + first_day * DAY + 17 * HOUR + rint(rng, 3 * HOUR)
            if first_day == 0 and dose < start + 30:
                dose = start + 30 + rint(rng, 150)
            if rng.random() < 0.78:
                code = self._pick(rng, terms.vte_pharmacological)
                n = 0
                while dose < end and n < 10:
                    items.append((batch, "MedicationAdministration.ndjson", self._med(s, eid, code, dose)))
                    dose += DAY - 30 + rint(rng, 61)
                    n += 1
            elif dose < end:
                sys_, code_, disp = self._pick(rng, terms.vte_mechanical)
                items.append((batch, "Procedure.ndjson", self._procedure(s, eid, sys_, code_, disp, dose, 0)))
        if rng.random() < 0.4:
            at = start + 60 + rint(rng, max(1, end - start - 60))
            items.append((batch, "MedicationAdministration.ndjson", self._med(s, eid, C.PARACETAMOL, at)))

        # vital signs: on arrival, then every morning (first week)
        obs = "Observation.ndjson"
        at = start + 20 + rint(rng, 40)
        items.append((batch, obs, self._bp(s, eid, at)))
        items.append((batch, obs, self._hr(s, eid, at)))
        morning = day_start(start) + DAY + 8 * HOUR
        n = 0
        while morning < end and n < 7:
            at = morning + rint(rng, 60)
            items.append((batch, obs, self._bp(s, eid, at)))
            items.append((batch, obs, self._hr(s, eid, at)))
            morning += DAY
            n += 1

        # incidents
        for at, harm in falls:
            ae = self._adverse_event(s, eid, ward, self._pick(rng, terms.ae_fall), at, harm)
            items.append((batch, "AdverseEvent.ndjson", ae))
        if rng.random() < 0.012 * min(3.0, max(0.5, bed_days / 4)):
            u = rng.random()
            harm = "none" if u < 0.7 else "low" if u < 0.95 else "moderate"
            at = start + rint(rng, max(1, end - start))
            code = self._pick(rng, terms.ae_medication_error)
            items.append((batch, "AdverseEvent.ndjson", self._adverse_event(s, eid, ward, code, at, harm)))
        if rng.random() < 0.01:
            at = start + rint(rng, max(1, end - start))
            harm = "none" if rng.random() < 0.6 else "low"
            items.append((batch, "AdverseEvent.ndjson", self._adverse_event(s, eid, ward, C.AE_OTHER, at, harm)))

    def _complaint(self, s: _PatientState, batch: int, fac: Facility, ward: Ward, end: int) -> None:
        for batch_no, row in complaint_deliveries(s.rng, fac, ward, end, self.w.window_end, self.w.bounds):
            s.items.append((batch_no, "complaints.csv", row))

    # ---- resources ----------------------------------------------------------------------------------

    @staticmethod
    def _pick(rng: random.Random, options: tuple[C.Code, ...]) -> C.Code:
        return options[rint(rng, len(options))]

    def _condition(self, s: _PatientState, eid: str, dx: C.Dx, start: int, end: int, poa: str | None) -> dict[str, Any]:
        rng = s.rng
        code, display, chronic = dx
        if chronic:
            onset = max(s.birth + DAY, start - (1 + rint(rng, 3649)) * DAY)
        else:
            onset = max(s.birth + DAY, start - rint(rng, 3 * DAY))
        r: dict[str, Any] = {"resourceType": "Condition", "id": new_id(rng)}
        if poa:
            r["extension"] = _POA[poa]
        r["clinicalStatus"] = _ACTIVE if chronic else _RESOLVED
        r["verificationStatus"] = _CONFIRMED
        r["category"] = _ENC_DX
        r["code"] = _cc(C.SNOMED, code, display)
        r["subject"] = _ref("Patient", s.pid)
        r["encounter"] = _ref("Encounter", eid)
        r["onsetDateTime"] = iso(onset)
        if not chronic:
            r["abatementDateTime"] = iso(end)
        r["recordedDate"] = iso(start + 30 + rint(rng, min(6 * HOUR, max(1, end - start - 30))))
        return r

    def _pressure_injury(self, s: _PatientState, eid: str, code: C.Code, onset: int, poa: str) -> dict[str, Any]:
        rng = s.rng
        onset = max(onset, s.birth + DAY)
        return {
            "resourceType": "Condition",
            "id": new_id(rng),
            "extension": _POA[poa],
            "clinicalStatus": _ACTIVE,
            "verificationStatus": _CONFIRMED,
            "category": _ENC_DX,
            "code": _cc(*code),
            "subject": _ref("Patient", s.pid),
            "encounter": _ref("Encounter", eid),
            "onsetDateTime": iso(onset),
            "recordedDate": iso(onset + rint(rng, 12 * HOUR)),
        }

    def _procedure(
        self, s: _PatientState, eid: str, system: str, code: str, display: str, at: int, minutes: int
    ) -> dict[str, Any]:
        r: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": new_id(s.rng),
            "status": "completed",
            "code": _cc(system, code, display),
            "subject": _ref("Patient", s.pid),
            "encounter": _ref("Encounter", eid),
        }
        if minutes:
            r["performedPeriod"] = {"start": iso(at), "end": iso(at + minutes)}
        else:
            r["performedDateTime"] = iso(at)
        return r

    def _med(self, s: _PatientState, eid: str, code: C.Code, at: int) -> dict[str, Any]:
        return {
            "resourceType": "MedicationAdministration",
            "id": new_id(s.rng),
            "status": "completed",
            "medicationCodeableConcept": _cc(*code),
            "subject": _ref("Patient", s.pid),
            "context": _ref("Encounter", eid),
            "effectiveDateTime": iso(at),
            "dosage": {"route": _cc(*C.route_for(code[1]))},
        }

    def _bp(self, s: _PatientState, eid: str, at: int) -> dict[str, Any]:
        rng = s.rng
        sys_ = int(round(s.sbp + rng.gauss(0, 9)))
        dia = int(round(min(sys_ - 20, s.dbp + rng.gauss(0, 6))))
        return {
            "resourceType": "Observation",
            "id": new_id(rng),
            "status": "final",
            "category": _VITALS,
            "code": _BP_CODE,
            "subject": _ref("Patient", s.pid),
            "encounter": _ref("Encounter", eid),
            "effectiveDateTime": iso(at),
            "component": [
                {"code": _SYS_CODE, "valueQuantity": _mmhg(sys_)},
                {"code": _DIA_CODE, "valueQuantity": _mmhg(dia)},
            ],
        }

    def _hr(self, s: _PatientState, eid: str, at: int) -> dict[str, Any]:
        rng = s.rng
        return {
            "resourceType": "Observation",
            "id": new_id(rng),
            "status": "final",
            "category": _VITALS,
            "code": _HR_CODE,
            "subject": _ref("Patient", s.pid),
            "encounter": _ref("Encounter", eid),
            "effectiveDateTime": iso(at),
            "valueQuantity": {
                "value": int(round(s.hr + rng.gauss(0, 8))),
                "unit": "/min",
                "system": C.UCUM,
                "code": "/min",
            },
        }

    def _adverse_event(
        self, s: _PatientState, eid: str, ward: Ward, code: C.Code, at: int, harm: str
    ) -> dict[str, Any]:
        rng = s.rng
        return {
            "resourceType": "AdverseEvent",
            "id": new_id(rng),
            "extension": [{"url": HARM_EXTENSION, "valueCode": harm}],
            "actuality": "actual",
            "event": _cc(*code),
            "subject": _ref("Patient", s.pid),
            "encounter": _ref("Encounter", eid),
            "date": iso(at),
            "recordedDate": iso(at + 10 + rint(rng, 24 * HOUR)),
            "location": {"reference": f"Location/{ward.id}", "display": ward.name},
            "severity": _cc(C.AE_SEVERITY, C.SEVERITY_FOR_HARM[harm]),
            "outcome": _cc(C.AE_OUTCOME, C.OUTCOME_FOR_HARM[harm]),
        }


def _mmhg(v: int) -> dict[str, Any]:
    return {"value": v, "unit": "mm[Hg]", "system": C.UCUM, "code": "mm[Hg]"}


class _PatientState:
    """Mutable per-patient simulation state (one instance per patient, then dropped)."""

    __slots__ = (
        "pid", "age", "birth", "home", "frailty", "age_f", "htn", "rng", "items", "busy_until", "death",
        "last_facility", "sbp", "dbp", "hr",
    )  # fmt: skip

    def __init__(
        self,
        pid: str,
        age: float,
        birth: int,
        home: Facility,
        frailty: float,
        age_f: float,
        htn: bool,
        rng: random.Random,
    ) -> None:
        self.pid = pid
        self.age = age
        self.birth = birth
        self.home = home
        self.frailty = frailty
        self.age_f = age_f
        self.htn = htn
        self.rng = rng
        self.items: list[Item] = []
        self.busy_until = 0
        self.death: int | None = None
        self.last_facility: Facility | None = None
        over = max(0.0, age - 40)
        self.sbp = 116 + 0.4 * over + (16 if htn else 0) + rng.gauss(0, 6)
        self.dbp = 74 + 0.1 * over + (8 if htn else 0) + rng.gauss(0, 4)
        self.hr = 76 + rng.gauss(0, 7)


__all__ = ["LOOKBACK", "PatientRecords", "Simulator", "World"]
