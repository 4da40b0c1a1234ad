"""One patient while they are being simulated: who they are, what is decided about them
once (hypertension and its onset, their usual blood pressure), what they are doing now
(busy until, last facility) and the records written so far.

Also the records every kind of encounter writes for a patient (a diagnosis, an injury,
vital signs), so that outpatient, emergency and inpatient care draw them alike.
"""

from __future__ import annotations

import random
from typing import Any

from pipelines.generate import codes as C
from pipelines.generate import resources as R
from pipelines.generate.clock import DAY, HOUR
from pipelines.generate.ids import rint
from pipelines.generate.model import Facility

#: Share of patients with hypertension whose blood pressure is controlled (< 140/90).
HYPERTENSION_CONTROLLED = 0.72

# (batch index, file name, payload): payload is a FHIR resource dict or a CSV row list.
Item = tuple[int, str, Any]


class PatientState:
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
        self.htn_onset = 0  # set by the simulator for a patient with hypertension
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

    # ---- records --------------------------------------------------------------------------------

    def diagnosis(self, eid: str, dx: C.Dx, start: int, end: int, poa: str | None) -> dict[str, Any]:
        """A diagnosis of the record of care (SNOMED CT) made at this encounter: a chronic one
        with its onset years before (hypertension with the patient's own onset), an acute one
        days before and abated at the encounter's end."""
        rng = self.rng
        if dx is self.htn:
            onset = self.htn_onset
        elif dx.chronic:
            onset = max(self.birth + DAY, start - (1 + rint(rng, 3649)) * DAY)
        else:
            onset = max(self.birth + DAY, start - rint(rng, 3 * DAY))
        recorded = start + 30 + rint(rng, min(6 * HOUR, max(1, end - start - 30)))
        abatement = None if dx.chronic else end
        code = (C.SNOMED, dx.code, dx.display)
        return R.condition(rng, self.pid, eid, code, onset=onset, recorded=recorded, abatement=abatement, poa=poa)

    def injury(self, eid: str, code: C.Code, onset: int, seen: int, poa: str) -> dict[str, Any]:
        """An active injury (ICD-10-CM, as the ward codes pressure injuries and fall injuries),
        recorded within hours of being seen."""
        onset = max(onset, self.birth + DAY)
        recorded = max(seen, onset) + rint(self.rng, 12 * HOUR)
        return R.condition(self.rng, self.pid, eid, code, onset=onset, recorded=recorded, poa=poa)

    def vitals(self, eid: str, batch: int, at: int) -> None:
        """A blood-pressure panel and a heart rate taken together."""
        rng = self.rng
        systolic, diastolic = self.bp_reading()
        bpm = int(round(self.hr + rng.gauss(0, 8)))
        self.items.append((batch, "Observation.ndjson", R.blood_pressure(rng, self.pid, eid, at, systolic, diastolic)))
        self.items.append((batch, "Observation.ndjson", R.heart_rate(rng, self.pid, eid, at, bpm)))


__all__ = ["HYPERTENSION_CONTROLLED", "Item", "PatientState"]
