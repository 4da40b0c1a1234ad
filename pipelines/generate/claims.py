"""The institutional Claim a hospital bills for one inpatient stay (FHIR R4 ``Claim``).

The bill is where present-on-admission lives: every ``Claim.diagnosis`` carries the CMS
POA indicator in ``onAdmission`` (Y present, N not present, U documentation
insufficient, W clinically undetermined), which is what CMS826 (pressure injury) and
CMS1017 (falls with injury) read to tell harm that arose during the stay from harm the
patient arrived with. The shape follows the CMS MADiE test decks and the CARIN Blue
Button institutional profile: type ``institutional``, the principal diagnosis first and
typed ``principal``, ICD-10-CM diagnoses and ICD-10-PCS procedures, one room-and-board
line whose ``diagnosisSequence`` lists every diagnosis and whose ``encounter`` names the
stay (how CQMCommon links a claim to its encounter), plus an operating-room line for
the procedures. Provider, insurance and ``productOrService`` are filled in, so the claim
validates as R4 without the tolerance the decks need.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pipelines.generate import codes as C
from pipelines.generate.clock import iso, iso_date
from pipelines.generate.ids import new_id
from pipelines.generate.resources import ON_ADMISSION, POA_CODES, coded, ref

_TYPE = coded(C.CLAIM_INSTITUTIONAL)
_PRIORITY = coded(C.CLAIM_PRIORITY)
_PRINCIPAL = [coded(C.PRINCIPAL_DIAGNOSIS)]
_PRIMARY = [coded(C.PRIMARY_PROCEDURE)]
_NOT_APPLICABLE = coded(C.NOT_APPLICABLE)
_ROOM_AND_BOARD = coded(C.REVENUE_ROOM_AND_BOARD)
_OPERATING_ROOM = coded(C.REVENUE_OPERATING_ROOM)
_INSURANCE = [{"sequence": 1, "focal": True, "coverage": {"display": "Primary health cover"}}]


@dataclass
class StayCoding:
    """What the coder abstracts from one stay, in order: diagnoses with their POA
    indicator (the principal first) and procedures with when they were done. A code is
    listed once; the first statement of it stands."""

    diagnoses: list[tuple[C.Code, str]] = field(default_factory=list)
    procedures: list[tuple[C.Code, int]] = field(default_factory=list)

    def diagnosis(self, code: C.Code, poa: str) -> None:
        if poa not in POA_CODES:
            raise ValueError(f"present-on-admission must be one of {POA_CODES}, got {poa!r}")
        if all(code != listed for listed, _ in self.diagnoses):
            self.diagnoses.append((code, poa))

    def procedure(self, code: C.Code, at: int) -> None:
        self.procedures.append((code, at))


def institutional_claim(
    rng: random.Random,
    pid: str,
    eid: str,
    provider: tuple[str, str],
    start: int,
    end: int,
    coding: StayCoding,
) -> dict[str, Any]:
    """The claim for the stay ``eid`` of patient ``pid`` at ``provider`` (organization id,
    name), admitted at ``start`` and discharged at ``end`` (minutes), created at discharge."""
    if not coding.diagnoses:
        raise ValueError("an institutional claim needs at least its principal diagnosis")
    encounter = [ref("Encounter", eid)]
    diagnoses = []
    for n, (code, poa) in enumerate(coding.diagnoses, 1):
        entry: dict[str, Any] = {"sequence": n, "diagnosisCodeableConcept": coded(code)}
        if n == 1:
            entry["type"] = _PRINCIPAL
        entry["onAdmission"] = ON_ADMISSION[poa]
        diagnoses.append(entry)
    admitted, discharged = iso_date(start), iso_date(end)
    items: list[dict[str, Any]] = [
        {
            "sequence": 1,
            "diagnosisSequence": list(range(1, len(diagnoses) + 1)),
            "revenue": _ROOM_AND_BOARD,
            "productOrService": _NOT_APPLICABLE,
            "servicedPeriod": {"start": admitted, "end": discharged},
            "encounter": encounter,
        }
    ]
    claim: dict[str, Any] = {
        "resourceType": "Claim",
        "id": new_id(rng),
        "status": "active",
        "type": _TYPE,
        "use": "claim",
        "patient": ref("Patient", pid),
        "billablePeriod": {"start": admitted, "end": discharged},
        "created": iso(end),
        "provider": ref("Organization", provider[0], provider[1]),
        "priority": _PRIORITY,
        "diagnosis": diagnoses,
    }
    if coding.procedures:
        procedures = []
        for n, (code, at) in enumerate(coding.procedures, 1):
            proc: dict[str, Any] = {"sequence": n}
            if n == 1:
                proc["type"] = _PRIMARY
            proc["date"] = iso(at)
            proc["procedureCodeableConcept"] = coded(code)
            procedures.append(proc)
        claim["procedure"] = procedures
        items.append(
            {
                "sequence": 2,
                "procedureSequence": list(range(1, len(procedures) + 1)),
                "revenue": _OPERATING_ROOM,
                "productOrService": _NOT_APPLICABLE,
                "servicedDate": iso_date(coding.procedures[0][1]),
                "encounter": encounter,
            }
        )
    claim["insurance"] = _INSURANCE
    claim["item"] = items
    return claim


__all__ = ["StayCoding", "institutional_claim"]
