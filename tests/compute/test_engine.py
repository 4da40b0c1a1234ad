"""Engine behaviour that the per-indicator case files do not pin down."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.compute import evaluate, load_indicators, load_valuesets
from pipelines.compute import model as m
from pipelines.compute.dates import completed_years, day_difference
from pipelines.compute.model import DayCount, Period
from pipelines.errors import ConfigError
from pipelines.tables import INDICATOR_SUBJECTS
from tests.compute._frames import frames

ROOT = Path(__file__).resolve().parents[2] / "indicators"
INDICATORS = {i.id: i for i in load_indicators(ROOT)}
VALUESETS = load_valuesets([ROOT / "valuesets"])


def _ts(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), format="mixed"), dtype="datetime64[us]")


def test_working_days_skip_the_weekend_and_count_from_the_next_day() -> None:
    start = _ts("2026-03-06 16:00", "2026-03-06 09:00", "2026-03-07 10:00", "2026-03-02 09:00", None)
    end = _ts("2026-03-10 09:00", "2026-03-11 09:00", "2026-03-09 08:00", "2026-03-02 17:00", "2026-03-02")
    got = day_difference(start, end, DayCount.WORKING)
    assert got[:4].tolist() == [2.0, 3.0, 1.0, 0.0]  # Fri->Tue, Fri->Wed, Sat->Mon, same day
    assert np.isnan(got[4])


def test_calendar_days_ignore_time_of_day_and_elapsed_days_do_not() -> None:
    start, end = _ts("2026-03-02 23:00"), _ts("2026-03-03 01:00")
    assert day_difference(start, end, DayCount.CALENDAR).tolist() == [1.0]
    assert day_difference(start, end, DayCount.ELAPSED).tolist() == pytest.approx([2 / 24])


def test_age_in_completed_years_turns_on_the_birthday() -> None:
    birth = _ts("2008-03-02", "2008-03-03", "2000-02-29", None)
    at = _ts("2026-03-02", "2026-03-02", "2026-02-28", "2026-03-02")
    got = completed_years(birth, at)
    assert got[:3].tolist() == [18.0, 17.0, 25.0]
    assert np.isnan(got[3])


def test_period_must_be_a_month() -> None:
    assert Period.parse("2026-12").end == pd.Timestamp("2027-01-01")
    with pytest.raises(ConfigError):
        Period.parse("2026-13")


def test_output_has_the_indicator_subjects_contract() -> None:
    data = frames(
        encounters=[
            {
                "encounter_id": "e1",
                "patient_id": "p1",
                "class_code": "IMP",
                "start_at": "2026-03-01",
                "end_at": "2026-03-04",
                "facility_id": "f1",
                "ward_id": "w1",
                "service": "med",
            }
        ]
    )
    out = evaluate(INDICATORS["falls_with_injury"], data, "2026-03", VALUESETS)
    assert list(out.columns) == INDICATOR_SUBJECTS.column_names
    assert out.dtypes.astype(str).to_dict() == INDICATOR_SUBJECTS.dtypes
    assert out.iloc[0][["facility_id", "ward_id", "service"]].tolist() == ["f1", "w1", "med"]


def test_empty_warehouse_gives_an_empty_frame_for_every_indicator() -> None:
    for ind in INDICATORS.values():
        if ind.cms_id:  # eCQMs need the VSAC value sets: covered by tests/conformance
            continue
        out = evaluate(ind, {}, "2026-03", VALUESETS)
        assert out.empty and list(out.columns) == INDICATOR_SUBJECTS.column_names


def test_patient_resent_in_two_batches_is_counted_once() -> None:
    data = frames(
        patients=[
            {"patient_id": "p1", "birth_date": "1950-01-01"},
            {"patient_id": "p1", "birth_date": "1950-01-01"},
        ],
        encounters=[
            {
                "encounter_id": "e1",
                "patient_id": "p1",
                "class_code": "IMP",
                "start_at": "2026-03-01",
                "end_at": "2026-03-05",
            }
        ],
    )
    data["patients"]["batch"] = ["2026-02", "2026-03"]
    out = evaluate(INDICATORS["vte_prophylaxis"], data, "2026-03", VALUESETS)
    assert out["subject_id"].tolist() == ["e1"]


def test_duplicate_adverse_event_delivery_is_not_double_counted() -> None:
    fall = {
        "adverse_event_id": "ae1",
        "patient_id": "p1",
        "encounter_id": "e1",
        "code": "217082002",
        "code_system": "http://snomed.info/sct",
        "harm_level": "low",
        "occurred_at": "2026-03-03T10:00:00",
    }
    data = frames(
        encounters=[
            {
                "encounter_id": "e1",
                "patient_id": "p1",
                "class_code": "IMP",
                "start_at": "2026-03-01",
                "end_at": "2026-03-05",
            }
        ],
        adverse_events=[fall, fall],
    )
    out = evaluate(INDICATORS["falls_with_injury"], data, "2026-03", VALUESETS)
    assert out["numerator_events"].tolist() == [1]


def test_survey_subject_gets_patient_id_from_its_encounter() -> None:
    data = frames(
        encounters=[{"encounter_id": "e1", "patient_id": "p9"}],
        survey_responses=[
            {
                "response_id": "r1",
                "encounter_id": "e1",
                "facility_id": "f1",
                "completed_on": "2026-03-03",
                "recommend": 4,
            },
            {"response_id": "r2", "facility_id": "f1", "completed_on": "2026-03-03", "recommend": 2},
        ],
    )
    out = evaluate(INDICATORS["recommend_top_box"], data, "2026-03", VALUESETS).set_index("subject_id")
    assert out.loc["r1", "patient_id"] == "p9"
    assert pd.isna(out.loc["r2", "patient_id"])


def test_numerator_is_never_set_for_an_excluded_subject() -> None:
    data = frames(
        encounters=[
            {
                "encounter_id": "e1",
                "patient_id": "p1",
                "class_code": "IMP",
                "discharge_disposition": "aadvice",
                "start_at": "2026-03-01",
                "end_at": "2026-03-03",
            },
            {
                "encounter_id": "e2",
                "patient_id": "p1",
                "class_code": "IMP",
                "priority": "EM",
                "start_at": "2026-03-05",
                "end_at": "2026-04-03",
            },
        ],
    )
    row = evaluate(INDICATORS["readmission_30d_unplanned"], data, "2026-03", VALUESETS).iloc[0]
    assert bool(row["denominator_exclusion"]) and not bool(row["numerator"])


def test_a_population_nested_in_an_empty_one_is_not_evaluated() -> None:
    """An empty initial population leaves every later population empty without asking its
    criteria (an eCQM's exclusions read whole tables)."""
    asked: list[int] = []

    def exclusion(subjects: pd.DataFrame, *_: object) -> np.ndarray:
        asked.append(len(subjects))
        return np.ones(len(subjects), dtype=bool)

    base = INDICATORS["falls_with_injury"]
    populations = dict(base.populations)
    populations[m.Population.DENOMINATOR_EXCLUSION] = m.PopulationDef(
        m.Population.DENOMINATOR_EXCLUSION, "every subject", function=exclusion
    )
    indicator = replace(base, populations=populations)
    data = frames(encounters=[{"encounter_id": "e1", "patient_id": "p1", "class_code": "AMB"}])
    assert evaluate(indicator, data, "2026-03", VALUESETS).empty
    assert asked == []
