"""Building blocks shared by the CMS eCQM indicators (``indicators/cms*.py``).

Each eCQM's population functions re-express the published CQL as vectorised pandas over
the tidy tables; the pieces several measures share live here, named after the CQL they
stand for: the coding lookup over ``codings`` (a CodeableConcept is in a value set when ANY
coding is), CQMCommon ``hospitalizationWithObservation()``, and the claim diagnoses linked
to an encounter (CQMCommon ``claimDiagnosis()``) with their present-on-admission flags.

Choices the tidy tables force, documented once here:

* Timestamps are the facility's local wall-clock time (``pipelines.localtime``; UTC
  unless configured). CQL compares offset-aware DateTimes and takes ``date from`` in the
  value's own offset; the CMS test decks use ``+00:00`` throughout and are read in UTC, so
  the stored date is the local date for them. Age is whole years from the birth date to
  the local date on which the encounter starts.
* "ends during day of Measurement Period" is ``period.start <= end_at < period.end``.
* A CodeableConcept is in a value set when ANY of its codings is (``codings`` table), with
  the record's first coding as a fallback for frames that carry no ``codings`` rows.
* ``claim_diagnoses.encounter_id`` links a Claim.diagnosis to the encounter of the claim
  item that points at it (else the claim's first item); CQL keeps a diagnosis whose
  sequence is in ``diagnosisSequence`` of an item referencing the encounter. The two agree
  unless a claim lists diagnoses that no item points at.
* Claim.diagnosis.onAdmission is matched against the POA value sets with the CMS POA code
  system (``tables.POA_SYSTEM``), the only system those value sets contain.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from pipelines.compute.engine import completed_years
from pipelines.compute.model import Period
from pipelines.compute.valuesets import ValueSetIndex
from pipelines.errors import MissingValueSets
from pipelines.tables import POA_SYSTEM, TABLES, coding_record_keys, empty_frame, latest_delivery, record_keys

VS = "http://cts.nlm.nih.gov/fhir/ValueSet/"
ENCOUNTER_INPATIENT = VS + "2.16.840.1.113883.3.666.5.307"
EMERGENCY_DEPARTMENT_VISIT = VS + "2.16.840.1.113883.3.117.1.7.1.292"
OBSERVATION_SERVICES = VS + "2.16.840.1.113762.1.4.1111.143"
POA_YES = VS + "2.16.840.1.113762.1.4.1147.197"  # Present on Admission or Clinically Undetermined (Y, W)
POA_NO = VS + "2.16.840.1.113762.1.4.1147.198"  # Not Present On Admission or Documentation Insufficient (N, U)
FINAL_STATUSES = ("final", "amended", "corrected")
HOUR = pd.Timedelta(hours=1)

#: Elements of a Claim.diagnosis whose codings are not the diagnosis itself.
_CLAIM_DX_NON_CODE_ELEMENTS = ("type", "onAdmission", "packageCode")


def require_valuesets(valuesets: ValueSetIndex, needed: Mapping[str, str], measure: str) -> None:
    """Fail with every missing VSAC expansion named, rather than on the first lookup: the
    expansions are licensed content supplied through CAREQI_VALUESET_DIR, never shipped."""
    missing = [f"{name} ({url})" for name, url in needed.items() if url not in valuesets]
    if missing:
        raise MissingValueSets(
            f"{measure} needs {len(missing)} value set(s) that are not loaded: {'; '.join(missing)} "
            "(supply the VSAC expansions through CAREQI_VALUESET_DIR)",
            [url for url in needed.values() if url not in valuesets],
        )


# ------------------------------------------------------------------------ tables
#: Latest-delivery views already computed, keyed by the identity of the source frame (a
#: measure's functions ask for the same table many times; deduplicating 300k codings on
#: every call dominated the run). The source frame is kept alongside, so a recycled id can
#: never return a stale result.
_LATEST: OrderedDict[tuple[int, str], tuple[pd.DataFrame, pd.DataFrame]] = OrderedDict()
_LATEST_SIZE = 16  # about one evaluation's tables: older entries would only pin memory


def table(data: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """One row per record id, the latest delivery winning (as the engine does for subjects)."""
    df = data.get(name)
    if df is None:
        return empty_frame(TABLES[name])
    hit = _LATEST.get((id(df), name))
    if hit is not None and hit[0] is df:
        return hit[1]
    latest = latest_delivery(df, name)
    _LATEST[(id(df), name)] = (df, latest)
    while len(_LATEST) > _LATEST_SIZE:
        _LATEST.popitem(last=False)
    return latest


def record_codes(
    data: Mapping[str, pd.DataFrame],
    table_name: str,
    *,
    elements: Iterable[str] | None = None,
    exclude_elements: Iterable[str] = (),
    first: tuple[str, str] | None = ("code_system", "code"),
) -> pd.DataFrame:
    """(record_id, system, code) for every coding of a record's coded element.

    ``record_id`` is :func:`tables.record_keys` (``Type/id`` in tables holding several
    resource types), so compare it with ``record_keys`` of the frame, not its raw id.

    ``elements`` selects ``codings.element`` values (None: all but ``exclude_elements``);
    ``first`` names the record's own (system, code) columns, always included so that a
    record is matched even when no ``codings`` rows were supplied for it.
    """
    parts = []
    codings = table(data, "codings")
    c = codings[codings["table_name"] == table_name]
    if elements is not None:
        c = c[c["element"].isin(list(elements))]
    if exclude_elements:
        c = c[~c["element"].isin(list(exclude_elements))]
    parts.append(pd.DataFrame({"record_id": coding_record_keys(c), "system": c["system"], "code": c["code"]}))
    if first is not None:
        src = table(data, table_name)
        system_col, code_col = first
        keys = record_keys(table_name, src)
        parts.append(pd.DataFrame({"record_id": keys, "system": src[system_col], "code": src[code_col]}))
    out = pd.concat(parts, ignore_index=True).astype("string")
    return out.dropna(subset=["record_id", "code"]).drop_duplicates(ignore_index=True)


def ids_in_valueset(codes: pd.DataFrame, valuesets: ValueSetIndex, ref: str) -> pd.Index:
    """Record ids with at least one coding in the value set."""
    hit = valuesets.mask(ref, codes["system"], codes["code"])
    return pd.Index(codes.loc[hit, "record_id"].unique())


def encounter_ids_of_type(data: Mapping[str, pd.DataFrame], valuesets: ValueSetIndex, ref: str) -> pd.Index:
    """Encounters whose Encounter.type has a coding in the value set (the CQL retrieve's code path)."""
    codes = record_codes(data, "encounters", elements=("type",), first=("type_system", "type_code"))
    return ids_in_valueset(codes, valuesets, ref)


# --------------------------------------------------------------- encounter timing
def age_at_start(subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame]) -> np.ndarray:
    """AgeInYearsAt(date from start of Encounter.period): NaN when birth date or start is unknown."""
    patients = table(data, "patients")[["patient_id", "birth_date"]]
    birth = subjects[["patient_id"]].merge(patients, on="patient_id", how="left")["birth_date"]
    return completed_years(birth.reset_index(drop=True), subjects["start_at"].dt.normalize().reset_index(drop=True))


def inpatient_encounter(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], period: Period, valuesets: ValueSetIndex
) -> np.ndarray:
    """CQMCommon "Inpatient Encounter": type in Encounter Inpatient, finished, ending in the period."""
    typed = subjects["encounter_id"].isin(encounter_ids_of_type(data, valuesets, ENCOUNTER_INPATIENT))
    finished = subjects["status"].eq("finished")
    end = subjects["end_at"]
    in_period = end.ge(period.start) & end.lt(period.end)
    ok = typed & finished & in_period
    return ok.to_numpy(dtype=bool, na_value=False)


def _latest_ending_before(anchor: pd.DataFrame, candidates: pd.DataFrame, start_col: str) -> pd.Series:
    """Start of the candidate encounter (same patient) that ends 1 hour or less on or before
    ``anchor[start_col]``, the latest-ending one when several do; NaT when none does."""
    left = anchor[["__row", "patient_id", start_col]].dropna(subset=["patient_id", start_col])
    m = left.merge(candidates, on="patient_id", how="inner")
    ok = m["c_end"].le(m[start_col]) & m["c_end"].ge(m[start_col] - HOUR)
    m = m[ok.fillna(False).to_numpy(dtype=bool)]
    m = m.sort_values(["__row", "c_end"], kind="stable").drop_duplicates("__row", keep="last")
    out = pd.Series(pd.NaT, index=anchor["__row"], dtype="datetime64[us]")
    out.loc[m["__row"].to_numpy()] = m["c_start"].to_numpy()
    return out.reset_index(drop=True)


def hospitalization_start(
    subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame], valuesets: ValueSetIndex
) -> pd.Series:
    """Start of CQMCommon ``hospitalizationWithObservation()``: the start of an emergency
    department visit ending <= 1 hour before the (observation stay before the) encounter,
    else of an observation stay ending <= 1 hour before it, else of the encounter itself.
    The interval ends at the encounter's end."""
    enc = table(data, "encounters")
    finished = enc[enc["status"].eq("finished").fillna(False).to_numpy(dtype=bool)]

    def candidates(ref: str) -> pd.DataFrame:
        c = finished[finished["encounter_id"].isin(encounter_ids_of_type(data, valuesets, ref))]
        return pd.DataFrame({"patient_id": c["patient_id"], "c_start": c["start_at"], "c_end": c["end_at"]}).dropna(
            subset=["c_end"]
        )

    anchor = pd.DataFrame(
        {
            "__row": np.arange(len(subjects)),
            "patient_id": subjects["patient_id"].to_numpy(),
            "start_at": subjects["start_at"].to_numpy(),
        }
    )
    obs_start = _latest_ending_before(anchor, candidates(OBSERVATION_SERVICES), "start_at")
    anchor["visit_start"] = obs_start.fillna(anchor["start_at"]).astype("datetime64[us]")
    ed_start = _latest_ending_before(anchor, candidates(EMERGENCY_DEPARTMENT_VISIT), "visit_start")
    return ed_start.fillna(anchor["visit_start"]).astype("datetime64[us]")


# ------------------------------------------------------------- claim diagnoses
def linked_claim_diagnoses(subjects: pd.DataFrame, data: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """CQMCommon ``claimDiagnosis()``: diagnoses of active claims (use = claim) linked to each
    subject encounter, with ``__row`` (subject position), ``present_on_admission``,
    ``claim_diagnosis_id`` and ``condition_id``."""
    cd = table(data, "claim_diagnoses")
    active = cd["status"].eq("active") & cd["use"].eq("claim")
    cd = cd[active.fillna(False).to_numpy(dtype=bool)]
    left = pd.DataFrame({"__row": np.arange(len(subjects)), "encounter_id": subjects["encounter_id"].to_numpy()})
    cols = ["encounter_id", "claim_diagnosis_id", "condition_id", "present_on_admission"]
    return left.merge(cd[cols], on="encounter_id", how="inner").reset_index(drop=True)


def poa_in(linked: pd.DataFrame, valuesets: ValueSetIndex, ref: str) -> np.ndarray:
    """Claim.diagnosis.onAdmission in a POA value set (null never matches)."""
    system = pd.Series(POA_SYSTEM, index=linked.index, dtype="string")
    return valuesets.mask(ref, system, linked["present_on_admission"].astype("string"))


def diagnosis_code_in(
    linked: pd.DataFrame,
    data: Mapping[str, pd.DataFrame],
    valuesets: ValueSetIndex,
    ref: str,
    *,
    via_condition: bool,
) -> np.ndarray:
    """Claim.diagnosisCodeableConcept in the value set, or (``via_condition``, as CQMCommon's
    ``diagnosis.getCondition().code``) the code of the Condition that diagnosisReference names."""
    dx_codes = record_codes(data, "claim_diagnoses", exclude_elements=_CLAIM_DX_NON_CODE_ELEMENTS)
    hit = linked["claim_diagnosis_id"].isin(ids_in_valueset(dx_codes, valuesets, ref))
    if via_condition:
        cond_codes = record_codes(data, "conditions", elements=("code",))
        hit |= linked["condition_id"].isin(ids_in_valueset(cond_codes, valuesets, ref))
    return hit.to_numpy(dtype=bool, na_value=False)


def any_per_subject(n: int, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[np.asarray(rows, dtype=np.int64)] = True
    return out


def diagnosis_present_on_admission(
    subjects: pd.DataFrame,
    data: Mapping[str, pd.DataFrame],
    valuesets: ValueSetIndex,
    diagnoses: str,
    poa: str,
) -> np.ndarray:
    """CQMCommon ``isDiagnosisPresentOnAdmission(diagnoses, poa)``: a linked claim diagnosis whose
    POA indicator is in ``poa`` and whose code (or referenced Condition's code) is in ``diagnoses``."""
    linked = linked_claim_diagnoses(subjects, data)
    ok = poa_in(linked, valuesets, poa) & diagnosis_code_in(linked, data, valuesets, diagnoses, via_condition=True)
    return any_per_subject(len(subjects), linked.loc[ok, "__row"].to_numpy())


# ------------------------------------------------------------------- skin exams
