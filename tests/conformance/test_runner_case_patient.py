"""Every record of a test case belongs to the case's Patient, as the reference engine reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipelines.conformance import run_deck
from pipelines.conformance.deck import read_deck
from pipelines.conformance.runner import attribute_to_case_patient
from pipelines.extract import extract_paths
from tests.conformance.conftest import PROC_IN_SET, Case, DeckFactory, counts


def _break_encounter_subject(case_file: Path) -> None:
    """The Encounter's subject loses the last character of the Patient id (as in a CMS108 case)."""
    bundle = json.loads(case_file.read_text(encoding="utf-8"))
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Encounter":
            resource["subject"]["reference"] = resource["subject"]["reference"][:-1]
    case_file.write_text(json.dumps(bundle), encoding="utf-8")


def _malformed_deck(make_deck: DeckFactory) -> tuple[Path, object]:
    cases = [
        Case(
            "NUMERPass-SubjectIdTruncated",
            counts(1, num=1),
            encounters=[("enc-a", "2026-03-01T10:00:00Z", "2026-03-04T10:00:00Z")],
            procedures=[("proc-a", "enc-a", PROC_IN_SET)],
        ),
        Case(
            "NUMERPass-WellFormed",
            counts(1, num=1),
            encounters=[("enc-b", "2026-04-01T10:00:00Z", "2026-04-03T10:00:00Z")],
            procedures=[("proc-b", "enc-b", PROC_IN_SET)],
        ),
    ]
    deck, settings = make_deck(cases)
    (first, _) = sorted((deck / "testcases").glob("*/*.json"))
    _break_encounter_subject(first)
    return deck, settings


def test_a_record_with_a_malformed_subject_still_counts_for_the_bundles_patient(make_deck: DeckFactory) -> None:
    # The indicator reads the age through encounters.patient_id -> patients: with the
    # truncated reference the stay would have no birth date and leave the population.
    deck, settings = _malformed_deck(make_deck)
    run = run_deck(deck, settings)
    assert run.ok, [(r.title, r.expected, r.computed) for r in run.mismatches]
    assert len(run.matched) == 2


def test_rows_are_attributed_to_the_patient_of_their_own_case(make_deck: DeckFactory) -> None:
    deck_dir, _ = _malformed_deck(make_deck)
    deck = read_deck(deck_dir)
    extracted = extract_paths([c.path for c in deck.cases], root=deck_dir / "testcases")
    raw = extracted.tables["encounters"].set_index("encounter_id")["patient_id"]
    tables = attribute_to_case_patient(extracted.tables, deck.cases)
    owner = {c.case: c.patient_id for c in deck.cases}
    for name in ("encounters", "procedures", "codings"):
        df = tables[name]
        if "patient_id" in df.columns:
            assert (df["patient_id"] == df["source_file"].map(owner)).all(), name
    enc = tables["encounters"].set_index("encounter_id")
    assert raw["enc-a"] != enc.at["enc-a", "patient_id"] == owner[enc.at["enc-a", "source_file"]]
    assert raw["enc-b"] == enc.at["enc-b", "patient_id"]
    pd.testing.assert_frame_equal(tables["patients"], extracted.tables["patients"])
    assert extracted.tables["encounters"].at[0, "patient_id"] == raw.iloc[0]  # the extract result is not modified


def test_a_case_without_a_single_patient_keeps_its_references() -> None:
    frame = pd.DataFrame({"encounter_id": ["e1"], "patient_id": ["p-own"], "source_file": ["x/case.json"]}).astype(
        "string"
    )
    out = attribute_to_case_patient({"encounters": frame}, [])
    assert out["encounters"]["patient_id"].tolist() == ["p-own"]
