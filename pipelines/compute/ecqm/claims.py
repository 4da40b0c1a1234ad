"""Claims as CQMCommon reads them: the diagnoses and procedures of an active claim linked
to an encounter, present-on-admission, and the principal diagnosis and procedure.

``claim_diagnoses.encounter_id`` links a Claim.diagnosis to the encounter of the claim item
that points at it (else the claim's first item); CQL keeps a diagnosis whose sequence is
in ``diagnosisSequence`` of an item referencing the encounter. The two agree unless a
claim lists diagnoses that no item points at. Claim.diagnosis.onAdmission is matched
against the POA value sets with the CMS POA code system (``tables.POA_SYSTEM``), the only
system those value sets contain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.compute.ecqm.columns import any_per_row, eq, strs
from pipelines.compute.ecqm.retrieve import Retrieve
from pipelines.strings import isin
from pipelines.tables import POA_SYSTEM

PRINCIPAL_DIAGNOSIS = "principal"  # ex-diagnosistype
PRIMARY_PROCEDURE = "primary"  # ex-procedure-type


def active(frame: pd.DataFrame) -> np.ndarray:
    """Rows of active claims (use = claim)."""
    return eq(frame["status"], "active") & eq(frame["use"], "claim")


def linked_claim_diagnoses(subjects: pd.DataFrame, r: Retrieve) -> pd.DataFrame:
    """CQMCommon ``claimDiagnosis()``: diagnoses of active claims linked to each subject
    encounter, with ``__row`` (subject position), ``present_on_admission``,
    ``claim_diagnosis_id`` and ``condition_id``."""
    cols = ["encounter_id", "claim_diagnosis_id", "condition_id", "present_on_admission"]
    table = r.table("claim_diagnoses")
    cd = r.once("active claim diagnoses", lambda: table.loc[active(table), cols])
    left = pd.DataFrame({"__row": np.arange(len(subjects)), "encounter_id": subjects["encounter_id"].to_numpy()})
    return left.merge(cd, on="encounter_id", how="inner").reset_index(drop=True)


def poa_in(linked: pd.DataFrame, r: Retrieve, name: str) -> np.ndarray:
    """Claim.diagnosis.onAdmission in a POA value set (null never matches)."""
    system = pd.Series(POA_SYSTEM, index=linked.index, dtype="string")
    return r.vs.mask(name, system, strs(linked["present_on_admission"]))


def diagnosis_code_in(linked: pd.DataFrame, r: Retrieve, name: str, *, via_condition: bool) -> np.ndarray:
    """Claim.diagnosisCodeableConcept in the value set, or (``via_condition``, as CQMCommon's
    ``diagnosis.getCondition().code``) the code of the Condition that diagnosisReference names."""
    hit = isin(linked["claim_diagnosis_id"], r.ids_in("claim_diagnoses", name))
    if via_condition:
        hit |= isin(linked["condition_id"], r.ids_in("conditions", name))
    return hit


def diagnosis_present_on_admission(subjects: pd.DataFrame, r: Retrieve, diagnoses: str, poa: str) -> np.ndarray:
    """CQMCommon ``isDiagnosisPresentOnAdmission(diagnoses, poa)``: a linked claim diagnosis whose
    POA indicator is in ``poa`` and whose code (or referenced Condition's code) is in ``diagnoses``."""
    linked = linked_claim_diagnoses(subjects, r)
    ok = poa_in(linked, r, poa) & diagnosis_code_in(linked, r, diagnoses, via_condition=True)
    return any_per_row(len(subjects), linked.loc[ok, "__row"].to_numpy())


def principal_diagnosis(encounter_ids: pd.Series, r: Retrieve, names: tuple[str, ...]) -> np.ndarray:
    """CQMCommon ``hasPrincipalDiagnosisOf``: the claim diagnosis typed principal, on an active
    claim whose item points at the encounter; coded, or a referenced Condition."""
    cd = r.table("claim_diagnoses")
    principal = active(cd) & eq(cd["diagnosis_type"], PRINCIPAL_DIAGNOSIS)
    coded = r.in_valueset(cd, "claim_diagnoses", names)
    referenced = isin(cd["condition_id"], r.ids_in("conditions", names))
    return isin(encounter_ids, strs(cd.loc[principal & (coded | referenced), "encounter_id"]))


def principal_procedure(encounter_ids: pd.Series, r: Retrieve, names: tuple[str, ...]) -> np.ndarray:
    """``hasPrincipalProcedureOf``: the claim procedure typed primary whose sequence an item
    for the encounter lists; its code, or the referenced Procedure's code, is in a set."""
    cp = r.table("claim_procedures")
    primary = active(cp) & eq(cp["procedure_type"], PRIMARY_PROCEDURE)
    coded = r.in_valueset(cp, "claim_procedures", names)
    referenced = isin(cp["procedure_id"], r.ids_in("procedures", names))
    return isin(encounter_ids, strs(cp.loc[primary & (coded | referenced), "encounter_id"]))


__all__ = [
    "PRIMARY_PROCEDURE",
    "PRINCIPAL_DIAGNOSIS",
    "active",
    "diagnosis_code_in",
    "diagnosis_present_on_admission",
    "linked_claim_diagnoses",
    "poa_in",
    "principal_diagnosis",
    "principal_procedure",
]
