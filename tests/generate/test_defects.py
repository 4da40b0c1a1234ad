from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from pipelines.generate import GenerateSummary
from pipelines.generate import defects as D
from pipelines.generate.feedback import COMPLAINT_COLUMNS, SURVEY_COLUMNS
from tests.generate.helpers import NDJSON, clean_resources, clean_rows, resource_problems, row_problems

RECORD_FILES = [n for n in NDJSON if n not in ("Organization.ndjson", "Location.ndjson")]


@pytest.mark.parametrize("name", RECORD_FILES)
def test_each_applicable_defect_breaks_a_resource_in_exactly_that_way(
    clean_run: tuple[Path, GenerateSummary], name: str
) -> None:
    root, _ = clean_run
    rng = random.Random(0)
    resources = [r for _, r in clean_resources(root, name)][:60]
    assert resources
    tried: set[str] = set()
    for res in resources:
        clean = orjson.dumps(res)
        assert resource_problems(clean, set()) == set()
        for kind in D.resource_kinds(res):
            line, rid = D.break_resource(res, kind, rng)
            earlier = {clean} if kind == D.DUPLICATE else set()
            assert resource_problems(line, earlier) == {kind}, (name, kind, line[:200])
            assert rid == (None if kind == D.MISSING_FIELD and name == "Patient.ndjson" else res["id"])
            tried.add(kind)
    with_codes = ("Patient.ndjson", "Encounter.ndjson", "Condition.ndjson", "AdverseEvent.ndjson", "Claim.ndjson")
    expected = set(D.KINDS) if name in with_codes else set(D.KINDS) - {D.UNKNOWN_CODE}
    assert tried == expected


@pytest.mark.parametrize(
    ("name", "columns"), [("survey_responses.csv", SURVEY_COLUMNS), ("complaints.csv", COMPLAINT_COLUMNS)]
)
def test_each_applicable_defect_breaks_a_feedback_row_in_exactly_that_way(
    clean_run: tuple[Path, GenerateSummary], name: str, columns: list[str]
) -> None:
    root, _ = clean_run
    rng = random.Random(0)
    table = name.removesuffix(".csv")
    rows = [r for _, r in clean_rows(root, name)][:40]
    assert rows
    tried: set[str] = set()
    for row in rows:
        typed = {c: (row[c] or None) for c in columns}
        raw = tuple(row[c] for c in columns)
        assert row_problems(name, row, raw, set()) == set()
        for kind in D.row_kinds(table, typed):
            broken = D.break_row(table, typed, kind, rng)
            as_text = {c: "" if v is None else str(v) for c, v in broken.items()}
            out = tuple(as_text[c] for c in columns)
            earlier = {raw} if kind == D.DUPLICATE else set()
            assert row_problems(name, as_text, out, earlier) == {kind}, (name, kind, out)
            tried.add(kind)
    assert tried == set(D.KINDS) - {D.MALFORMED_JSON}


def test_impossible_date_never_lands_on_a_leap_day_that_2199_lacks() -> None:
    assert D.future("2024-02-29") == "2199-02-28"
    assert D.future("2026-10-03T14:05:00+00:00") == "2199-10-03T14:05:00+00:00"
    assert D.feb30("2026-10-03T14:05:00+00:00") == "2026-02-30T14:05:00+00:00"
