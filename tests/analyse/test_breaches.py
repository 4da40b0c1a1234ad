"""Complaints open past a deadline: the rules come from the indicator catalogue."""

from __future__ import annotations

import pandas as pd

from pipelines.analyse.breaches import breach_summary, open_breaches, service_levels
from pipelines.compute import load_indicators
from pipelines.compute.model import DayCount
from pipelines.tables import TABLES, conform
from pipelines.workdays import WorkingCalendars
from tests.indicators._cases import INDICATORS_DIR

LEVELS = service_levels(load_indicators(INDICATORS_DIR))


def _complaints(rows: list[dict]) -> pd.DataFrame:
    df, bad = conform(pd.DataFrame(rows), TABLES["complaints"])
    assert (bad == "").all()
    return df


def test_the_deadlines_are_the_complaint_indicators() -> None:
    rules = {lv.indicator_id: (lv.start, lv.done, lv.days, lv.by) for lv in LEVELS}
    assert rules == {
        "complaint_ack_2_working_days": ("received_at", "acknowledged_at", 2, DayCount.WORKING),
        "complaint_resolved_25_working_days": ("received_at", "resolved_at", 25, DayCount.WORKING),
    }


def test_breaches_around_the_christmas_holidays() -> None:
    complaints = _complaints(
        [
            # Thursday 24 Dec 2026: the 2nd working day is Wednesday 30th (25th and 28th are holidays).
            {"complaint_id": "c1", "facility_id": "f1", "ward_id": "w1", "status": "open",
             "received_at": "2026-12-24T10:00:00"},
            # the same, acknowledged (late) on the 31st
            {"complaint_id": "c2", "facility_id": "f1", "ward_id": "w1", "status": "acknowledged",
             "received_at": "2026-12-24T10:00:00", "acknowledged_at": "2026-12-31T09:00:00"},
            # withdrawn: owes no response.
            {"complaint_id": "c3", "facility_id": "f1", "status": "resolved", "outcome": "withdrawn",
             "received_at": "2026-12-01T10:00:00"},
            # received 2 Nov, acknowledged, open: its 25th working day was 7 December.
            {"complaint_id": "c4", "facility_id": "f1", "ward_id": "w2", "status": "acknowledged",
             "received_at": "2026-11-02T10:00:00", "acknowledged_at": "2026-11-03T10:00:00"},
            # resolved without an acknowledgement ever recorded: owes nothing any more.
            {"complaint_id": "c5", "facility_id": "f1", "status": "resolved", "outcome": "upheld",
             "received_at": "2026-12-01T10:00:00", "resolved_at": "2026-12-20T10:00:00"},
        ]
    )  # fmt: skip
    ack = "complaint_ack_2_working_days"
    on_29th = open_breaches(complaints, LEVELS, "2026-12-29")
    assert set(on_29th["complaint_id"]) == {"c4"}  # c1 and c2 still have a working day left
    # The 30th, their last day allowed, ends without an acknowledgement: both are late, as the
    # month's backlog indicator would count them.
    on_30th = open_breaches(complaints, LEVELS, "2026-12-30", previous=on_29th)
    got = set(zip(on_30th["indicator_id"], on_30th["complaint_id"], strict=True))
    assert got == {(ack, "c1"), (ack, "c2"), ("complaint_resolved_25_working_days", "c4")}
    c1 = on_30th[on_30th["complaint_id"] == "c1"].iloc[0]
    assert c1["due_on"] == pd.Timestamp("2026-12-30") and c1["days_overdue"] == 0 and bool(c1["new"])
    assert not bool(on_30th[on_30th["complaint_id"] == "c4"].iloc[0]["new"])  # listed the day before
    on_31st = open_breaches(complaints, LEVELS, "2026-12-31", previous=on_30th)
    assert set(on_31st["complaint_id"]) == {"c1", "c4"}  # c2 acknowledged that morning
    # New Year's Day is not a working day: c1 is still one working day overdue.
    on_1st = open_breaches(complaints, LEVELS, "2027-01-01", previous=on_31st)
    assert on_1st[on_1st["complaint_id"] == "c1"].iloc[0]["days_overdue"] == 1


def test_an_acknowledgement_later_that_day_clears_the_breach() -> None:
    complaints = _complaints(
        [{"complaint_id": "c1", "facility_id": "f1", "status": "acknowledged",
          "received_at": "2026-10-05T10:00:00", "acknowledged_at": "2026-10-08T16:00:00"}]
    )  # fmt: skip
    assert len(open_breaches(complaints, LEVELS, "2026-10-06")) == 0  # due Wednesday 7th
    assert set(open_breaches(complaints, LEVELS, "2026-10-07")["complaint_id"]) == {"c1"}  # not acked by then
    assert len(open_breaches(complaints, LEVELS, "2026-10-08")) == 0  # acknowledged on the 8th
    unacked = complaints.assign(acknowledged_at=pd.NaT)
    assert set(open_breaches(unacked, LEVELS, "2026-10-08")["complaint_id"]) == {"c1"}


def test_a_facility_calendar_moves_the_deadline() -> None:
    complaints = _complaints(
        [{"complaint_id": "c1", "facility_id": "edinburgh", "status": "open", "received_at": "2026-08-28T09:00:00"},
         {"complaint_id": "c2", "facility_id": None, "status": "open", "received_at": "2026-10-01T09:00:00"}]
    )  # fmt: skip
    # England: 31 August is a bank holiday, due Wednesday 2 September; Scotland works it, due Tuesday 1st.
    assert set(open_breaches(complaints, LEVELS, "2026-09-01")["complaint_id"]) == set()
    scottish = WorkingCalendars(facilities={"edinburgh": "GB-SCT"})
    # A complaint without a facility takes the system's calendar (and does not break the lookup).
    assert set(open_breaches(complaints, LEVELS, "2026-09-01", calendars=scottish)["complaint_id"]) == {"c1"}


def test_summary_has_counts_and_no_complaint_ids() -> None:
    complaints = _complaints(
        [{"complaint_id": "secret-id-1", "facility_id": "f1", "ward_id": "w1", "status": "open",
          "received_at": "2026-10-01T10:00:00"}]
    )  # fmt: skip
    summary = breach_summary(open_breaches(complaints, LEVELS, "2026-10-20"), LEVELS)
    assert summary["open"] == 1 and summary["new"] == 1
    assert summary["by_rule"]["complaint_ack_2_working_days"]["open"] == 1
    assert summary["by_ward"] == [{"facility_id": "f1", "ward_id": "w1", "open": 1}]
    assert "secret-id-1" not in repr(summary)
