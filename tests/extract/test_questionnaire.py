"""QuestionnaireResponses read through a survey file: no code per survey."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pandas as pd
import pytest

from pipelines.extract import extract_batch
from pipelines.surveys import load_surveys

REPO = Path(__file__).resolve().parents[2]
OUR_QUESTIONNAIRE = "http://careqi.org/fhir/Questionnaire/inpatient-experience"


def _qr(rid: str, **extra: object) -> dict:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "questionnaire": OUR_QUESTIONNAIRE + "|1.0",
        "status": "completed",
        "authored": "2026-10-14T21:30:00+01:00",
        "encounter": {"reference": "Encounter/e1"},
        "item": [
            {"linkId": "global", "item": [
                {"linkId": "recommend", "answer": [{"valueCoding": {"code": "probably-yes"}}]},
                {"linkId": "overall-rating", "answer": [{"valueInteger": 8}]},
            ]},
            {"linkId": "servqual", "item": [
                {"linkId": "perceived-reliability", "answer": [{"valueInteger": 4}]},
                {"linkId": "expected-reliability", "answer": [{"valueInteger": 5}]},
                {"linkId": "perceived-empathy"},  # skipped: no answer
            ]},
            {"linkId": "comment", "answer": [{"valueString": "Kind <b>staff</b>."}]},
        ],
        **extra,
    }  # fmt: skip


def _encounter() -> dict:
    return {"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "IMP"},
            "subject": {"reference": "Patient/p1"}, "serviceProvider": {"reference": "Organization/fac-a"},
            "location": [{"location": {"reference": "Location/ward-1"}}],
            "period": {"start": "2026-10-01T10:00:00Z", "end": "2026-10-05T10:00:00Z"}}  # fmt: skip


def _write(folder: Path, name: str, resources: list[dict]) -> None:
    (folder / name).write_bytes(b"\n".join(orjson.dumps(r) for r in resources) + b"\n")


def test_a_return_fills_its_columns_and_takes_its_encounters_facility(tmp_path: Path) -> None:
    _write(tmp_path, "Encounter.ndjson", [_encounter()])
    _write(tmp_path, "QuestionnaireResponse.ndjson", [
        _qr("r1"),
        _qr("r2", status="in-progress"),
        _qr("r3", questionnaire="http://example.org/Questionnaire/unknown"),
        _qr("r4", author={"reference": "Organization/fac-b"}),
        {**_qr("r5"), "status": None},
        _qr("r6", item="not a list of items"),
    ])  # fmt: skip
    result = extract_batch(tmp_path, surveys=load_surveys(REPO / "surveys"))
    surveys = result.tables["survey_responses"].set_index("response_id")
    r1 = surveys.loc["r1"]
    assert (r1["recommend"], r1["overall_rating"], r1["q_reliability"], r1["e_reliability"]) == (3, 8, 4, 5)
    assert pd.isna(r1["q_empathy"])  # a skipped item stays blank
    assert r1["comment"] == "Kind <b>staff</b>."
    assert r1["facility_id"] == "fac-a"  # from Encounter e1 in the same delivery
    assert str(r1["completed_on"]).startswith("2026-10-14")
    assert surveys.loc["r4", "facility_id"] == "fac-b"  # stated by the response itself
    assert "r2" not in surveys.index  # a form still in progress is not a return
    assert any(k.startswith("QuestionnaireResponse not returned") for k in result.ignored)
    q = result.quarantine.set_index("record_id")
    assert "no survey file maps Questionnaire" in q.loc["r3", "reasons"]
    assert "status" in q.loc["r5", "reasons"]  # quarantined with the reason, never silently dropped
    assert "r6" in surveys.index or "r6" in q.index  # an odd shape is read or quarantined, never a crash
    assert result.rows_read["survey_responses"] == 5  # r1, r3-r6: read = accepted + quarantined


def test_without_survey_files_every_return_is_quarantined_not_dropped(tmp_path: Path) -> None:
    _write(tmp_path, "QuestionnaireResponse.ndjson", [_qr("r1")])
    result = extract_batch(tmp_path)
    assert result.tables["survey_responses"].empty
    assert result.quarantine["record_id"].tolist() == ["r1"]


def test_the_hl7_examples_through_a_mapping_file(tmp_path: Path, shared_data: Path) -> None:
    """The HL7 R4 examples: a Glasgow coma score scored by its answers' ordinalValue, a form in
    progress, and a response naming no Questionnaire."""
    examples = shared_data / "fhir-r4-examples" / "examples"
    surveys_dir = tmp_path / "surveys"
    surveys_dir.mkdir()
    (surveys_dir / "gcs.yaml").write_text(
        "id: gcs\ntitle: Glasgow coma score (test mapping)\nquestionnaire: Questionnaire/gcs\n"
        "answers: {'1.1': q_reliability, '1.2': q_responsiveness, '1.3': q_assurance}\n"
    )
    delivery = tmp_path / "in"
    delivery.mkdir()
    for name in ("gcs", "ussg-fht-answers", ""):
        src = examples / f"questionnaireresponse-example{'-' + name if name else ''}.json"
        shutil.copy(src, delivery / src.name)
    result = extract_batch(delivery, surveys=load_surveys(surveys_dir))
    rows = result.tables["survey_responses"]
    gcs = rows.set_index("response_id").loc["gcs"]
    assert (gcs["q_reliability"], gcs["q_responsiveness"], gcs["q_assurance"]) == (4, 5, 4)
    q = result.quarantine.set_index("record_id")
    assert q.loc["3141", "reasons"] == "the response names no Questionnaire"
    assert "ussg-fht" not in set(rows["response_id"])  # in progress


def test_a_survey_file_naming_an_unknown_column_is_a_clear_error(tmp_path: Path) -> None:
    from pipelines.errors import ConfigError

    (tmp_path / "bad.yaml").write_text("id: x\ntitle: X\nquestionnaire: Q/x\nanswers: {a: no_such_column}\n")
    with pytest.raises(ConfigError, match="no_such_column"):
        load_surveys(tmp_path)


@pytest.mark.parametrize(
    ("stars", "message"),
    [("[90, 80, 70, 60]", "ascending"), ("[60, 70, 80]", "4 ascending"), ("[60, 70, 80, 190]", "between 0 and 100")],
)
def test_star_cut_points_are_checked(tmp_path: Path, stars: str, message: str) -> None:
    from pipelines.errors import ConfigError

    (tmp_path / "s.yaml").write_text(
        f"id: s\ntitle: S\nscales: {{recommend: recommend}}\nstars: {{recommend: {stars}}}\n"
    )
    with pytest.raises(ConfigError, match=message):
        load_surveys(tmp_path)
