"""The eCQM toolkit's per-evaluation indices: they must answer exactly what a retrieve asked
afresh would, whatever was asked before (a whole table, a subset, another population)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.compute.ecqm import Retrieve, refine
from pipelines.compute.valuesets import CodedColumn, DeclaredValueSets, ValueSetIndex, coding_keys
from pipelines.load.snapshot import Snapshot
from tests.compute._frames import frames

SNOMED = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
INPATIENT = "https://example.org/ValueSet/inpatient"


def _retrieve(data: dict[str, pd.DataFrame]) -> Retrieve:
    index = ValueSetIndex()
    index.add(
        {
            "resourceType": "ValueSet",
            "url": INPATIENT,
            "expansion": {"contains": [{"system": SNOMED, "code": "183452005"}, {"system": ICD, "code": "X"}]},
        }
    )
    return Retrieve(Snapshot.of(data), DeclaredValueSets(index, {"Encounter Inpatient": INPATIENT}, {}))


def _encounters() -> dict[str, pd.DataFrame]:
    """e1 typed inpatient by its own coding, e2 only by a second coding, e3 not at all."""
    return frames(
        encounters=[
            {"encounter_id": "e1", "patient_id": "p1", "type_system": SNOMED, "type_code": "183452005"},
            {"encounter_id": "e2", "patient_id": "p2", "type_system": SNOMED, "type_code": "4525004"},
            {"encounter_id": "e3", "patient_id": "p2", "type_system": SNOMED, "type_code": "4525004"},
        ],
        codings=[
            {"coding_id": "c1", "table_name": "encounters", "record_id": "e2", "element": "type"}
            | {"system": ICD, "code": "X"},
            {"coding_id": "c2", "table_name": "encounters", "record_id": "e3", "element": "reasonCode"}
            | {"system": ICD, "code": "X"},
        ],
        patients=[{"patient_id": "p1", "birth_date": "1950-01-01"}],
    )


def test_coded_column_matches_system_and_code_together_and_nulls_never() -> None:
    systems = pd.Series([ICD, SNOMED, ICD, None, SNOMED], dtype="string")
    codes = pd.Series(["X", "X", None, "X", "Y"], dtype="string")
    column = CodedColumn(codes, systems)
    assert column.isin(coding_keys([(ICD, "X"), (SNOMED, "Y")])).tolist() == [True, False, False, False, True]
    alone = CodedColumn(codes)
    assert alone.isin(frozenset({"X"})).tolist() == [True, True, False, True, False]


def test_retrieve_over_a_subset_answers_as_over_the_table() -> None:
    r = _retrieve(_encounters())
    table = r.table("encounters")
    assert r.in_valueset(table, "encounters", "Encounter Inpatient").tolist() == [True, True, False]
    subset = table.iloc[[2, 1]].reset_index(drop=True)
    assert r.in_valueset(subset, "encounters", "Encounter Inpatient").tolist() == [False, True]
    # The whole table's answer, kept for the evaluation, is a copy the caller may change.
    again = r.in_valueset(table, "encounters", "Encounter Inpatient")
    again[:] = False
    assert r.in_valueset(table, "encounters", "Encounter Inpatient").tolist() == [True, True, False]


def test_lookup_reads_the_named_record_and_nothing_for_an_unknown_one() -> None:
    r = _retrieve(_encounters())
    birth = r.lookup("patients", pd.Series(["p2", "p1", None], dtype="string"), "birth_date")
    assert pd.isna(birth[0]) and birth[1] == pd.Timestamp("1950-01-01") and pd.isna(birth[2])


def test_per_record_computes_each_record_once_across_calls() -> None:
    r = _retrieve(_encounters())
    asked: list[list[str]] = []

    def of_patient_p2(frame: pd.DataFrame) -> np.ndarray:
        asked.append(frame["encounter_id"].tolist())
        return frame["patient_id"].eq("p2").to_numpy(dtype=bool)

    table = r.table("encounters")
    assert r.per_record("fact", table.iloc[[1, 0]], "encounter_id", of_patient_p2).tolist() == [True, False]
    assert r.per_record("fact", table, "encounter_id", of_patient_p2).tolist() == [False, True, True]
    assert asked == [["e2", "e1"], ["e3"]]


def test_refine_asks_the_costly_test_only_of_the_rows_kept() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3, 4]})
    seen: list[list[int]] = []

    def even(rows: pd.DataFrame) -> np.ndarray:
        seen.append(rows["x"].tolist())
        return (rows["x"] % 2 == 0).to_numpy()

    assert refine(np.array([True, True, False, True]), frame, even).tolist() == [False, True, False, True]
    assert seen == [[1, 2, 4]]
    assert refine(np.zeros(4, dtype=bool), frame, even).tolist() == [False] * 4 and len(seen) == 1
