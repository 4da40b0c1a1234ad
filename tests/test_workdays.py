"""Working-day calendars: public holidays per facility, weekends, config errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import load_settings
from pipelines.errors import ConfigError
from pipelines.workdays import WorkingCalendars, check_region, check_workweek


def _days(*values: str) -> np.ndarray:
    return np.array(values, dtype="datetime64[D]")


def test_english_christmas_and_boxing_day_substitute_are_not_working_days() -> None:
    cal = WorkingCalendars()  # GB-ENG
    # Thursday 24 December 2026 -> Tuesday 29th: the 25th and the Boxing Day holiday (Monday 28th) skipped.
    assert cal.days_between(_days("2026-12-24"), _days("2026-12-29")).tolist() == [1]
    assert cal.deadline(_days("2026-12-24"), 2).tolist() == _days("2026-12-30").tolist()


def test_a_facility_keeps_its_own_calendar() -> None:
    cal = WorkingCalendars(facilities={"edinburgh": "GB-SCT"})
    start, end = _days("2026-12-31", "2026-12-31"), _days("2027-01-05", "2027-01-05")
    facility = pd.Series(["london", "edinburgh"])
    # England: 1 January only; Scotland: 1 and 2 January (the 2nd a Saturday, moved to Monday 4th).
    assert cal.days_between(start, end, facility).tolist() == [2, 1]


def test_no_holidays_counts_monday_to_friday() -> None:
    cal = WorkingCalendars(default="none")
    assert cal.days_between(_days("2026-12-24"), _days("2026-12-29")).tolist() == [3]
    # A reply on Saturday to a Friday complaint took 0 working days; an earlier end counts back.
    assert cal.days_between(_days("2026-12-04", "2026-12-09"), _days("2026-12-05", "2026-12-07")).tolist() == [0, -2]


def test_a_deadline_in_the_next_year_sees_that_years_holidays() -> None:
    cal = WorkingCalendars()
    # Wednesday 30 December 2026 + 2 working days: 31st, then 1 January is a holiday -> Monday 4th.
    assert cal.deadline(_days("2026-12-30"), 2).tolist() == _days("2027-01-04").tolist()


def test_workweek_setting() -> None:
    cal = WorkingCalendars(default="none", workweek=check_workweek("sun,mon tue wed thu"))
    # Friday and Saturday off: Thursday 3 Dec 2026 -> Sunday 6th is working day 1.
    assert cal.deadline(_days("2026-12-03"), 1).tolist() == _days("2026-12-06").tolist()


def test_settings_read_the_calendar_from_the_environment() -> None:
    s = load_settings({"CAREQI_HOLIDAYS": "us-ny", "CAREQI_FACILITY_HOLIDAYS": "f1=GB-WLS"})
    assert s.working_calendars.default == "US-NY"
    assert s.working_calendars.region_of("f1") == "GB-WLS"
    assert load_settings({}).working_calendars.default == "GB-ENG"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CAREQI_HOLIDAYS": "XX"}, "unknown country"),
        ({"CAREQI_HOLIDAYS": "GB-XYZ"}, "no subdivision"),
        ({"CAREQI_FACILITY_HOLIDAYS": "f1"}, "facility_id=CC-SUB"),
        ({"CAREQI_WORKWEEK": "Funday"}, "day names"),
    ],
)
def test_bad_calendar_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_check_region_normalises_case() -> None:
    assert check_region("gb-eng", "x") == "GB-ENG"
    assert check_region("None", "x") == "none"
