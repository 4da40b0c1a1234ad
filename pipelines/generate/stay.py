"""The records of one inpatient stay, and the claim that bills it.

Timing and harms (when the patient was admitted and discharged, whether and how badly
they fell) are decided by the simulator; this writes what the stay leaves behind: the
diagnoses with present-on-admission, procedures, VTE prophylaxis, vital signs, incident
reports, and the institutional Claim listing what the coder abstracted from all of it
(:mod:`pipelines.generate.claims`).

Present on admission, as the record and the bill state it: the principal diagnosis and
chronic conditions Y; a pressure injury or a fall the patient arrived with Y (sometimes
W, clinically undetermined); one that arose in hospital N (sometimes U, documentation
insufficient). Rates (per stay): pressure injury on arrival 5% of the over-75s and 1% of
others; hospital-acquired 2-6% of stays of two days or more, growing with the stay, a
quarter of them deep tissue injuries and one in seven stage 1 (counted by no indicator).
"""

from __future__ import annotations

import random

from pipelines.generate import codes as C
from pipelines.generate import resources as R
from pipelines.generate.claims import StayCoding, institutional_claim
from pipelines.generate.clock import DAY, HOUR, day_start
from pipelines.generate.ids import rint
from pipelines.generate.model import Facility, Ward
from pipelines.generate.patient import PatientState

COND = "Condition.ndjson"
ADVERSE = "AdverseEvent.ndjson"
MEDS = "MedicationAdministration.ndjson"


def pick(rng: random.Random, options: tuple[C.Code, ...]) -> C.Code:
    return options[rint(rng, len(options))]


def stay_records(
    s: PatientState,
    eid: str,
    batch: int,
    fac: Facility,
    ward: Ward,
    priority: str,
    start: int,
    end: int,
    falls: list[tuple[int, str]],
) -> None:
    """Append the stay's records and its claim to the patient's items (the Encounter itself
    is the caller's). ``falls``: (when, harm level) of each fall during the stay."""
    coding = StayCoding()
    _diagnoses(s, eid, batch, ward, priority, start, end, coding)
    _care(s, eid, batch, ward.service, priority, start, end, coding)
    _incidents(s, eid, batch, ward, start, end, falls, coding)
    s.items.append(
        (batch, "Claim.ndjson", institutional_claim(s.rng, s.pid, eid, (fac.id, fac.name), start, end, coding))
    )


def _diagnoses(
    s: PatientState, eid: str, batch: int, ward: Ward, priority: str, start: int, end: int, coding: StayCoding
) -> None:
    """The principal diagnosis (and the fall behind an injury the patient arrived with),
    comorbidities, hypertension, and pressure injuries present on admission or acquired."""
    rng = s.rng
    items = s.items
    elderly = s.age >= 75
    emergency = priority != "EL"
    dxs = C.PRINCIPAL_DX[ward.service]
    principal = dxs[rint(rng, len(dxs))]
    items.append((batch, COND, s.diagnosis(eid, principal, start, end, "Y")))
    coding.diagnosis(principal.icd10, "Y")
    if emergency and principal.code in C.FALL_INJURY_DX:
        # most such fractures come from a fall at home; in younger patients also from sport or the road
        if rng.random() < (0.9 if s.age >= 65 else 0.5):
            coding.diagnosis(pick(rng, C.FALL_CAUSES), _poa(rng, "Y"))
    elif emergency and elderly and rng.random() < 0.04:
        # a fall at home before an admission for something else: bruised, not badly hurt
        injury = pick(rng, C.MINOR_INJURIES)
        items.append((batch, COND, s.injury(eid, injury, start - HOUR - rint(rng, 2 * DAY), start, "Y")))
        coding.diagnosis(pick(rng, C.FALL_CAUSES), "Y")
        coding.diagnosis(injury, "Y")
    for _ in range(rng.choice((0, 1, 1, 2))):
        dx = C.COMORBIDITIES[rint(rng, len(C.COMORBIDITIES))]
        u = rng.random()
        poa = "Y" if u < 0.96 else "U" if u < 0.985 else "W"
        items.append((batch, COND, s.diagnosis(eid, dx, start, end, poa)))
        coding.diagnosis(dx.icd10, poa)
    if s.htn is not None:
        items.append((batch, COND, s.diagnosis(eid, s.htn, start, end, "Y")))
        coding.diagnosis(s.htn.icd10, "Y")
    bed_days = (end - start) / DAY
    # pressure injury already present on admission (care homes, long lies)
    if rng.random() < (0.05 if elderly else 0.012):
        code = C.PRESSURE_ULCER_STAGE_1 if rng.random() < 0.3 else _pressure_injury(rng)
        poa = "Y" if rng.random() < 0.9 else "W"
        items.append((batch, COND, s.injury(eid, code, start - rint(rng, 5 * DAY), start, poa)))
        coding.diagnosis(code, poa)
    # hospital-acquired pressure injury: needs time in bed
    if bed_days >= 2 and rng.random() < 0.026 * (1.5 if elderly else 1.0) * min(2.0, bed_days / 5):
        onset = start + 2 * DAY + rint(rng, max(1, end - start - 2 * DAY))
        code = C.PRESSURE_ULCER_STAGE_1 if rng.random() < 0.15 else _pressure_injury(rng)
        poa = "N" if rng.random() < 0.9 else "U"
        items.append((batch, COND, s.injury(eid, code, onset, onset, poa)))
        coding.diagnosis(code, poa)
        if rng.random() < 0.6:  # and reported as an incident
            harm = "low" if rng.random() < 0.7 else "moderate"
            staged = code in C.PRESSURE_INJURY_STAGE_2_PLUS and rng.random() < 0.5
            reported = C.AE_PRESSURE_INJURY_STAGE_2 if staged else C.AE_PRESSURE_ULCER
            items.append(
                (batch, ADVERSE, R.adverse_event(rng, s.pid, eid, (ward.id, ward.name), reported, onset, harm))
            )


def _care(
    s: PatientState, eid: str, batch: int, service: str, priority: str, start: int, end: int, coding: StayCoding
) -> None:
    """Procedures (coded on the claim when billable), VTE prophylaxis, paracetamol and vital signs."""
    rng = s.rng
    items = s.items
    pid = s.pid
    p_proc = {"surgery": 0.7, "orthopaedics": 0.95 if priority == "EL" else 0.6, "cardiology": 0.5}
    if rng.random() < p_proc.get(service, 0.5):
        px = C.PROCEDURES[service][rint(rng, len(C.PROCEDURES[service]))]
        at = min(end - HOUR, start + 2 * HOUR + rint(rng, max(1, min(end - start - 3 * HOUR, 2 * DAY))))
        items.append(
            (batch, "Procedure.ndjson", R.procedure(rng, pid, eid, (C.SNOMED, px.code, px.display), at, px.minutes))
        )
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
            code = pick(rng, C.VTE_PHARMACOLOGICAL)
            n = 0
            while dose < end and n < 10:
                items.append((batch, MEDS, R.medication_administration(rng, pid, eid, code, dose)))
                dose += DAY - 30 + rint(rng, 61)
                n += 1
        elif dose < end:
            device = pick(rng, C.VTE_MECHANICAL)
            items.append((batch, "Procedure.ndjson", R.procedure(rng, pid, eid, device, dose, 0)))
    if rng.random() < 0.4:
        at = start + 60 + rint(rng, max(1, end - start - 60))
        items.append((batch, MEDS, R.medication_administration(rng, pid, eid, C.PARACETAMOL, at)))

    # vital signs: on arrival, then every morning (first week)
    s.vitals(eid, batch, start + 20 + rint(rng, 40))
    morning = day_start(start) + DAY + 8 * HOUR
    n = 0
    while morning < end and n < 7:
        s.vitals(eid, batch, morning + rint(rng, 60))
        morning += DAY
        n += 1


def _incidents(
    s: PatientState,
    eid: str,
    batch: int,
    ward: Ward,
    start: int,
    end: int,
    falls: list[tuple[int, str]],
    coding: StayCoding,
) -> None:
    """Incident reports: falls (the injury recorded, and both coded on the claim as not
    present on admission), medication errors and other incidents."""
    rng = s.rng
    items = s.items
    pid = s.pid
    where = (ward.id, ward.name)
    for at, harm in falls:
        items.append((batch, ADVERSE, R.adverse_event(rng, pid, eid, where, pick(rng, C.AE_FALL), at, harm)))
        poa = _poa(rng, "N")
        coding.diagnosis(pick(rng, C.FALL_CAUSES), poa)
        injury = _fall_injury(rng, harm)
        if injury is not None:
            items.append((batch, COND, s.injury(eid, injury, at, at + 20, poa)))
            coding.diagnosis(injury, poa)
    bed_days = (end - start) / DAY
    if rng.random() < 0.012 * min(3.0, max(0.5, bed_days / 4)):
        u = rng.random()
        harm = "none" if u < 0.7 else "low" if u < 0.95 else "moderate"
        at = start + rint(rng, max(1, end - start))
        code = pick(rng, C.AE_MEDICATION_ERROR)
        items.append((batch, ADVERSE, R.adverse_event(rng, pid, eid, where, code, at, harm)))
    if rng.random() < 0.01:
        at = start + rint(rng, max(1, end - start))
        harm = "none" if rng.random() < 0.6 else "low"
        items.append((batch, ADVERSE, R.adverse_event(rng, pid, eid, where, C.AE_OTHER, at, harm)))


def _fall_injury(rng: random.Random, harm: str) -> C.Code | None:
    """What a fall of this harm level injured: nothing, a bruise, a laceration or a fracture
    (moderate and major injuries are the ones CMS1017 counts)."""
    if harm == "none":
        return None
    if harm == "low":
        return pick(rng, C.MINOR_INJURIES)
    if harm == "moderate":
        return pick(rng, C.MODERATE_INJURIES) if rng.random() < 0.65 else C.WRIST_FRACTURE
    return pick(rng, C.MAJOR_INJURIES)


def _pressure_injury(rng: random.Random) -> C.Code:
    """A stage 2+ or unstageable pressure injury (three in four), else a deep tissue injury."""
    if rng.random() < 0.25:
        return pick(rng, C.PRESSURE_INJURY_DEEP_TISSUE)
    return pick(rng, C.PRESSURE_INJURY_STAGE_2_PLUS)


def _poa(rng: random.Random, usual: str) -> str:
    """A present-on-admission indicator: ``usual`` (Y or N), sometimes the coder cannot tell:
    U (documentation insufficient) for something that arose in hospital, W (clinically
    undetermined) or U for something the patient came in with."""
    if rng.random() < 0.93:
        return usual
    return "U" if usual == "N" or rng.random() < 0.5 else "W"


__all__ = ["pick", "stay_records"]
