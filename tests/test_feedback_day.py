"""The daily feedback run without Airflow: ingest -> validate -> labels -> SLA breaches."""

from __future__ import annotations

import csv
import sys
import types
from pathlib import Path

import pytest

from pipelines import feedback_day
from pipelines.alerts import notify_breaches
from pipelines.config import Settings, load_settings
from pipelines.errors import ConfigError, ExtractError, ValidationFailed
from pipelines.generate import generate
from pipelines.generate.daily import write_feedback_days
from pipelines.load import make_engine
from pipelines.load.feedback import read_breaches, read_labels
from pipelines.tables import TABLES

COMPLAINT_HEADER = [c for c in TABLES["complaints"].column_names if c not in ("source_file", "source_line")]


def _delivery(folder: Path, complaints: list[dict[str, str]]) -> None:
    folder.mkdir(parents=True)
    with (folder / "complaints.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COMPLAINT_HEADER)
        w.writeheader()
        for row in complaints:
            w.writerow(row)


def _complaint(cid: str, received: str, **extra: str) -> dict[str, str]:
    return {
        "complaint_id": cid, "facility_id": "f1", "ward_id": "w1", "service": "medicine", "channel": "email",
        "category": "communication", "severity": "low", "received_at": received, "status": "open", **extra,
    }  # fmt: skip


def test_a_day_stores_breaches_labels_and_quarantines_bad_rows(settings: Settings) -> None:
    day = "2026-10-14"
    _delivery(
        feedback_day.day_input(settings, day),
        [
            _complaint("late", "2026-10-09T10:00:00", description="Nobody rang me back about my father."),
            _complaint("fresh", "2026-10-14T09:00:00", description="The ward was dirty."),
            _complaint("bad-date", "2026-13-45T10:00:00"),
            _complaint("ok", "2026-10-01T10:00:00", status="acknowledged", acknowledged_at="2026-10-02T10:00:00"),
        ],
    )
    summary = feedback_day.run_day(day, settings)
    # Friday 9th: 2nd working day Tuesday 13th, open on the 14th -> late. "ok" was acknowledged;
    # its 25 working days have not passed.
    assert summary["open"] == 1 and summary["new"] == 1
    assert summary["by_rule"]["complaint_ack_2_working_days"] == {
        "title": "Complaints acknowledged within 2 working days",
        "open": 1,
        "new": 1,
    }
    engine = make_engine(settings.warehouse_url)
    stored = read_breaches(engine, day=day)
    assert stored["complaint_id"].tolist() == ["late"]
    labels = read_labels(engine)
    assert set(labels["record_id"]) == {"late", "fresh"}  # texts only; the row with a bad date is quarantined
    staged = feedback_day.day_staging(settings, day)
    import pandas as pd

    q = pd.read_parquet(staged / "_quarantine.parquet")
    assert len(q) == 1 and "received_at" in q["reasons"].iloc[0]

    # The next day the same complaint is still late but no longer new; rerunning a day replaces it.
    nxt = "2026-10-15"
    _delivery(feedback_day.day_input(settings, nxt), [_complaint("late", "2026-10-09T10:00:00")])
    again = feedback_day.run_day(nxt, settings)
    assert (again["open"], again["new"]) == (1, 0)
    assert feedback_day.run_day(nxt, settings) == again
    assert len(read_breaches(engine)) == 2


def test_a_delivery_holding_clinical_files_is_refused(settings: Settings) -> None:
    day = "2026-10-14"
    folder = feedback_day.day_input(settings, day)
    _delivery(folder, [_complaint("a", "2026-10-09T10:00:00")])
    (folder / "Encounter.ndjson").write_text('{"resourceType": "Encounter", "id": "e1", "status": "finished"}\n')
    with pytest.raises(ExtractError, match="holds only"):
        feedback_day.ingest_day(day, settings)


def test_a_feed_of_garbage_fails_the_day_and_is_never_recorded(settings: Settings) -> None:
    day = "2026-10-14"
    _delivery(feedback_day.day_input(settings, day), [_complaint(f"x{i}", "not a date") for i in range(5)])
    with pytest.raises(ValidationFailed, match="fail ratio"):
        feedback_day.ingest_day(day, settings)
    with pytest.raises(ValidationFailed, match="failed validation"):
        feedback_day.record_day(day, settings)


def test_the_hook_gets_counts_and_a_broken_hook_is_only_logged(tmp_path: Path, monkeypatch) -> None:
    calls: list[dict] = []
    module = types.ModuleType("careqi_test_hooks")
    module.send = calls.append  # type: ignore[attr-defined]
    module.broken = lambda summary: 1 / 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "careqi_test_hooks", module)
    summary = {"day": "2026-10-14", "open": 2, "new": 1, "by_rule": {"r": {"title": "R", "open": 2, "new": 1}}}
    ok = load_settings({"CAREQI_HOME": str(tmp_path), "CAREQI_BREACH_HOOK": "careqi_test_hooks:send"})
    assert notify_breaches(summary, ok) is True and calls == [summary]
    broken = load_settings({"CAREQI_HOME": str(tmp_path), "CAREQI_BREACH_HOOK": "careqi_test_hooks:broken"})
    assert notify_breaches(summary, broken) is False
    assert notify_breaches({"open": 0}, ok) is False and len(calls) == 1
    with pytest.raises(ConfigError, match="module:function"):
        load_settings({"CAREQI_BREACH_HOOK": "no-colon"})


def test_generated_days_run_end_to_end(settings: Settings) -> None:
    generate(settings.incoming_dir, patients=400, months=2, seed=11, end_period="2026-10", defect_rate=0.0)
    (folder,) = write_feedback_days(settings.incoming_dir, "2026-10", days=["2026-10-20"])
    with (folder / "complaints.csv").open("a", newline="") as fh:  # one complaint certainly overdue
        csv.DictWriter(fh, fieldnames=COMPLAINT_HEADER).writerow(_complaint("stuck", "2026-10-01T10:00:00+00:00"))
    summary = feedback_day.run_day("2026-10-20", settings)
    assert summary["labelled"] > 0
    engine = make_engine(settings.warehouse_url)
    stored = read_breaches(engine, day="2026-10-20")
    assert "stuck" in set(stored["complaint_id"]) and len(stored) == summary["open"] >= 1
