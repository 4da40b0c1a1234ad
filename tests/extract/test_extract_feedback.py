from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pandas as pd
import pytest

from pipelines.errors import ExtractError
from pipelines.extract import extract_batch
from pipelines.tables import TABLES

SURVEY_COLUMNS = [c.name for c in TABLES["survey_responses"].columns]


def _csv(columns: list[str], rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _survey(rid: str, **values: str) -> dict[str, str]:
    base = {
        "response_id": rid,
        "encounter_id": "e1",
        "facility_id": "fac1",
        "mode": "web",
        "completed_on": "2026-01-20",
        "recommend": "4",
        "overall_rating": "9",
        "q_empathy": "5",
        "comment": 'Kind staff, "quiet" ward,\nthank you',
    }
    return {**base, **values}


def test_survey_csv_is_typed_and_an_unreadable_date_row_is_quarantined(tmp_path: Path) -> None:
    rows = [_survey("r1"), _survey("r2", completed_on="2026-02-30"), _survey("r3", recommend="")]
    (tmp_path / "survey_responses.csv").write_text(_csv([*SURVEY_COLUMNS, "extra_col"], rows))
    result = extract_batch(tmp_path)
    surveys = result.tables["survey_responses"]
    assert list(surveys["response_id"]) == ["r1", "r3"]
    first = surveys.iloc[0]
    assert first["completed_on"] == pd.Timestamp("2026-01-20")
    assert first["recommend"] == 4 and first["overall_rating"] == 9
    assert first["comment"] == 'Kind staff, "quiet" ward,\nthank you'
    assert pd.isna(surveys.iloc[1]["recommend"]) and pd.isna(first["ward_id"])
    assert "extra_col" not in surveys.columns
    assert list(surveys["source_line"]) == [1, 3]  # data rows, header excluded
    (bad,) = result.quarantine.itertuples()
    assert (bad.table_name, bad.record_id, bad.source_file, bad.source_line) == (
        "survey_responses",
        "r2",
        "survey_responses.csv",
        2,
    )
    assert bad.reasons == "unreadable datetime64[us] value in completed_on"
    assert result.rows_read["survey_responses"] == 3


def test_non_integer_score_is_quarantined_not_rounded(tmp_path: Path) -> None:
    rows = [_survey("r1", overall_rating="7.5"), _survey("r2", q_empathy="abc")]
    (tmp_path / "survey_responses.csv").write_text(_csv(SURVEY_COLUMNS, rows))
    result = extract_batch(tmp_path)
    assert result.tables["survey_responses"].empty
    assert sorted(result.quarantine["reasons"]) == [
        "unreadable Int64 value in overall_rating",
        "unreadable Int64 value in q_empathy",
    ]


def test_missing_required_column_is_a_clear_error(tmp_path: Path) -> None:
    columns = [c for c in SURVEY_COLUMNS if c != "facility_id"]
    (tmp_path / "survey_responses.csv").write_text(_csv(columns, [_survey("r1")]))
    with pytest.raises(ExtractError, match="lacks required column.*facility_id"):
        extract_batch(tmp_path)


def test_missing_optional_column_reads_as_null(tmp_path: Path) -> None:
    columns = [c for c in SURVEY_COLUMNS if c != "comment"]
    (tmp_path / "survey_responses.csv").write_text(_csv(columns, [_survey("r1")]))
    result = extract_batch(tmp_path)
    assert result.tables["survey_responses"]["comment"].isna().all()
    assert len(result.tables["survey_responses"]) == 1


def test_row_with_wrong_field_count_is_quarantined(tmp_path: Path) -> None:
    text = _csv(SURVEY_COLUMNS, [_survey("r1")]) + "r2,e2,fac1\n"
    (tmp_path / "survey_responses.csv").write_text(text)
    result = extract_batch(tmp_path)
    assert list(result.tables["survey_responses"]["response_id"]) == ["r1"]
    (bad,) = result.quarantine.itertuples()
    assert bad.record_id == "r2" and bad.reasons.startswith("malformed CSV row: expected 20 fields, found 3")
    assert bad.source_line == 2


def test_gzipped_complaints_with_bom_are_read(tmp_path: Path) -> None:
    columns = [c.name for c in TABLES["complaints"].columns]
    row = {
        "complaint_id": "k1",
        "facility_id": "fac1",
        "channel": "email",
        "severity": "high",
        "received_at": "2026-01-03T09:15:00+00:00",
        "resolved_at": "2026-01-20T10:00:00+01:00",
        "status": "resolved",
    }
    data = ("\ufeff" + _csv(columns, [row])).encode()
    (tmp_path / "complaints.csv.gz").write_bytes(gzip.compress(data))
    result = extract_batch(tmp_path)
    complaint = result.tables["complaints"].iloc[0]
    assert complaint["complaint_id"] == "k1"
    assert complaint["resolved_at"] == pd.Timestamp("2026-01-20 09:00:00")
    assert complaint["source_file"] == "complaints.csv.gz"


def test_empty_csv_or_non_utf8_header_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "complaints.csv").write_bytes(b"")
    with pytest.raises(ExtractError, match="empty"):
        extract_batch(tmp_path)
    (tmp_path / "complaints.csv").write_bytes("complaint_id,facility_id,Hôpital\nk1,f1,x\n".encode("latin-1"))
    with pytest.raises(ExtractError, match="UTF-8"):
        extract_batch(tmp_path)
