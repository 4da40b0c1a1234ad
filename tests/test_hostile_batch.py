"""A hostile batch (issue 11): October's delivery again, with one record of every
malformed-input class appended to its files, run through the CLI on a home that already
holds September and October. Every hostile record must be quarantined where it is, with
a reason and without its personal data; the batch must balance; and since the good
records are the same as before, no figure may change. (The hostile records are dense in
so small a system, so this home tolerates a high quarantined share per table: the fail
ratio has tests of its own.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pandas as pd
import pytest

from pipelines import stages
from pipelines.cli import main
from pipelines.config import Settings, load_settings
from pipelines.generate import generate
from pipelines.load import make_engine, read_batch, read_results, read_table

KEYS = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
PERSONAL = ("Lovelace", "MRN-004711", "+44 20 7946 0018", "12 Acacia Avenue", "N1 9GU")
pytestmark = pytest.mark.xdist_group("hostile-batch")


ENV = {"CAREQI_QUARANTINE_FAIL_RATIO": "0.9"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings({**ENV, "CAREQI_HOME": str(tmp_path_factory.mktemp("hostile") / "home")})
    generate(settings.incoming_dir, patients=200, months=2, seed=31, end_period="2026-10", defect_rate=0.0)
    for month in ("2026-09", "2026-10"):
        stages.run_period(month, settings, report=False)
    return settings


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def _append(path: Path, extra: list[bytes]) -> list[int]:
    """Append raw lines; return their 1-based line numbers (data rows for a CSV)."""
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([*lines, *extra]) + b"\n")
    first = len(lines) + 1 if path.suffix == ".ndjson" else len(lines)  # CSV rows count after the header
    return [first + i for i in range(len(extra))]


def test_a_hostile_batch_quarantines_every_bad_record_and_changes_no_figure(
    home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**ENV, "CAREQI_HOME": str(home.home)}.items():
        monkeypatch.setenv(key, value)
    engine = make_engine(home.warehouse_url)
    before = read_results(engine).sort_values(KEYS).reset_index(drop=True)
    patients = read_table(engine, "patients", upto_batch="2026-10")
    source = tmp_path / "hostile"
    shutil.copytree(home.incoming_dir / "2026-10", source)

    enc_lines = _lines(source / "Encounter.ndjson")
    good_enc = orjson.loads(enc_lines[0])
    pid = good_enc["subject"]["reference"].split("/")[-1]
    born = patients.set_index("patient_id").loc[pid, "birth_date"]
    first_patient = _lines(source / "Patient.ndjson")[0]
    person = {
        **orjson.loads(first_patient),
        "id": "hostile-person",
        "identifier": [{"system": "https://hospital.example/mrn", "value": "MRN-004711"}],
        "name": [{"family": "Lovelace", "given": ["Ada"]}],
        "telecom": [{"system": "phone", "value": "+44 20 7946 0018"}],
        "address": [{"line": ["12 Acacia Avenue"], "postalCode": "N1 9GU"}],
    }

    def enc(eid: str, **change: object) -> bytes:
        return orjson.dumps({**good_enc, "id": eid, **change})

    expected: list[tuple[str, int]] = []
    patient_lines = _append(
        source / "Patient.ndjson",
        [
            b"\xef\xbb\xbf" + first_patient,  # a BOM: parsed, then a later copy of a delivered id
            orjson.dumps({**person, "gender": ["not", "a", "code"]}),  # fails FHIR validation
            orjson.dumps({**person, "id": "hostile-unborn", "birthDate": "2099-01-01"}),
            orjson.dumps({**person, "id": ""}),  # an empty id
            orjson.dumps(person)[:-30],  # a truncated line
        ],
    )
    expected += [("Patient.ndjson", n) for n in patient_lines]
    encounter_lines = _append(
        source / "Encounter.ndjson",
        [
            orjson.dumps({**good_enc, "id": "hostile-int-date", "period": {"start": 20261010}}),
            enc("hostile-four-years", period={"start": "2022-10-01T08:00:00Z", "end": "2026-10-03T08:00:00Z"}),
            enc("hostile-ghost", subject={"reference": "Patient/nobody"}, serviceType={"coding": [{"code": "\u0000"}]}),
            enc("hostile-before-birth", period={"start": (born - pd.Timedelta(days=3)).strftime("%Y-%m-%dT08:00:00Z")}),
            enc("hostile-2099", period={"start": "2099-10-01T08:00:00+00:00"}),
            enc_lines[1],  # the same encounter twice in one batch
        ],
    )  # fmt: skip
    expected += [("Encounter.ndjson", n) for n in encounter_lines]
    obs_lines = _lines(source / "Observation.ndjson")
    good_obs = orjson.loads(obs_lines[0])
    weight = {
        **good_obs,
        "id": "hostile-weight",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": {"value": -4, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }
    weight.pop("component", None)
    observation_lines = _append(
        source / "Observation.ndjson",
        [
            orjson.dumps(weight),
            orjson.dumps({**good_obs, "id": "hostile-no-stay", "encounter": {"reference": "Encounter/none"}}),
        ],
    )
    expected += [("Observation.ndjson", n) for n in observation_lines]
    survey = (source / "survey_responses.csv").read_bytes().splitlines()
    width = len(survey[0].split(b","))
    row = survey[1].split(b",")
    survey_lines = _append(
        source / "survey_responses.csv",
        [
            b",".join([b"hostile-huge", *row[1:-1], b"x" * 2_000_000]),
            b",".join([b"hostile-latin1", *row[1:-1], b"caf\xe9"]),
            b",".join([b"hostile-short"] + row[1 : width - 2]),
        ],
    )
    expected += [("survey_responses.csv", n) for n in survey_lines]
    complaint = (source / "complaints.csv").read_bytes().splitlines()
    if len(complaint) > 1:
        fields = complaint[1].split(b",")
        header = complaint[0].split(b",")
        fields[header.index(b"complaint_id")] = b"hostile-complaint"
        fields[header.index(b"received_at")] = b"2099-01-01T09:00:00+00:00"
        fields[header.index(b"ward_id")] = b"=cmd|' /C calc'!A0"
        expected += [("complaints.csv", n) for n in _append(source / "complaints.csv", [b",".join(fields)])]

    code = main(["run", "--period", "2026-10", "--input", str(source), "--no-report"])
    assert code == 0, capsys.readouterr().err

    recon = read_batch(engine, "reconciliation", "2026-10")
    assert (recon["rows_read"] == recon["rows_accepted"] + recon["rows_quarantined"]).all()
    assert recon["balanced"].all()
    quarantine = read_batch(engine, "quarantine", "2026-10")
    located = {(r.source_file, int(r.source_line)): r.reasons for r in quarantine.itertuples()}
    for where in expected:
        assert where in located, f"not quarantined: {where}"
        assert located[where].strip()
    text = " ".join(quarantine.astype("string").fillna("").to_numpy().ravel().tolist())
    for value in PERSONAL:
        assert value not in text, value

    after = read_results(engine).sort_values(KEYS).reset_index(drop=True)
    engine.dispose()
    pd.testing.assert_frame_equal(before, after)
