"""Daily feedback deliveries derived from the generated months."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from pipelines.errors import ExtractError
from pipelines.generate.daily import CHANGED_DAYS, register_as_of, write_feedback_days


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_register_as_of_forgets_what_had_not_happened_yet() -> None:
    row = {"complaint_id": "c", "received_at": "2026-10-05T10:00:00", "acknowledged_at": "2026-10-07T09:00:00",
           "resolved_at": "2026-10-30T12:00:00", "outcome": "upheld", "status": "resolved"}  # fmt: skip
    assert register_as_of(row, "2026-10-04") is None
    on_6th = register_as_of(row, "2026-10-06")
    assert on_6th is not None
    assert (on_6th["acknowledged_at"], on_6th["resolved_at"], on_6th["outcome"], on_6th["status"]) == (
        "",
        "",
        "",
        "open",
    )
    assert register_as_of(row, "2026-10-07")["status"] == "acknowledged"  # type: ignore[index]
    assert register_as_of(row, "2026-10-30")["status"] == "resolved"  # type: ignore[index]
    # Resolved on 30 October: still sent for CHANGED_DAYS days, then no longer.
    assert register_as_of(row, f"2026-11-{CHANGED_DAYS - 1:02d}") is not None
    assert register_as_of(row, f"2026-11-{CHANGED_DAYS:02d}") is None


def test_daily_deliveries_agree_with_the_month(clean_run, tmp_path: Path) -> None:
    source, summary = clean_run
    out = tmp_path / "incoming"  # a copy: the generated run is shared by other tests
    shutil.copytree(source, out)
    month = summary.batches[-1]
    days = write_feedback_days(out, month, days=[f"{month}-10", f"{month}-20"])
    assert [p.name for p in days] == [f"{month}-10", f"{month}-20"]
    monthly = {r["response_id"]: r for r in _read(out / month / "survey_responses.csv")}
    for folder in days:
        surveys = _read(folder / "survey_responses.csv")
        assert all(r["completed_on"][:10] == folder.name for r in surveys)
        assert all(monthly[r["response_id"]] == r for r in surveys)
        for r in _read(folder / "complaints.csv"):
            assert r["received_at"][:10] <= folder.name
            assert not r["acknowledged_at"] or r["acknowledged_at"][:10] <= folder.name
    complaints = _read(days[1] / "complaints.csv")
    assert complaints, "a generated month has open complaints on the 20th"


def test_a_month_that_was_not_generated_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "2026-09").mkdir()
    with pytest.raises(ExtractError, match="no monthly batch 2026-10"):
        write_feedback_days(tmp_path, "2026-10")


def test_the_day_is_the_facilitys_local_day() -> None:
    row = {"complaint_id": "c", "received_at": "2026-07-09T23:30:00+00:00", "acknowledged_at": "", "resolved_at": "",
           "outcome": "", "status": "open"}  # fmt: skip
    assert register_as_of(row, "2026-07-09") is not None  # a UTC register: the 9th
    assert register_as_of(row, "2026-07-09", "Europe/London") is None  # 00:30 on the 10th in London
    assert register_as_of(row, "2026-07-10", "Europe/London") is not None


def test_a_defective_timestamp_is_passed_on_as_written() -> None:
    row = {"complaint_id": "c", "received_at": "2026-02-30T10:00:00+00:00", "acknowledged_at": "", "resolved_at": "",
           "outcome": "", "status": "open"}  # fmt: skip
    out = register_as_of(row, "2026-03-01", "Europe/London")
    assert out is not None and out["received_at"] == row["received_at"]  # validation quarantines it
