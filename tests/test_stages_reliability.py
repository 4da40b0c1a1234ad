"""Never publish a wrong figure (issue 11): the monthly job on a home that already holds
three months, on SQLite and on the real PostgreSQL server, against careless operators
and broken deliveries (defects 1 to 5).

The tests of one backend share one warehouse and run in file order on one worker: first
those that must change nothing, then those that load a new delivery.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateSchema, DropSchema

from pipelines import stages
from pipelines.config import Settings, load_settings
from pipelines.errors import OutputError, ValidationFailed
from pipelines.generate import generate
from pipelines.load import batch_records, make_engine, read_results, read_table, table_counts
from pipelines.tables import REPLACEMENT

PG_URL = os.environ.get("CAREQI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MONTHS = ["2026-08", "2026-09", "2026-10"]
KEYS = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
HOSTILE_WARD = "=cmd|' /C calc'!A0"  # in the complaints register's ward column
HOSTILE_LOCATION = "@SUM(1+1)*cmd"  # an Encounter.location reference id


def _postgres_url(tmp_schema: str) -> str:
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(CreateSchema(tmp_schema))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL required in CI but unreachable: {exc.orig}")
        pytest.skip(f"PostgreSQL unreachable: {exc.orig}")
    finally:
        admin.dispose()
    return make_url(PG_URL).update_query_dict({"options": f"-csearch_path={tmp_schema}"}).render_as_string(False)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", marks=pytest.mark.xdist_group("reliability-sqlite")),
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.xdist_group("reliability-postgres")]),
    ],
)
def home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Three loaded months of a small generated system, with the CMS value sets when the
    shared reference copies are there; the last month reported and exported."""
    root = tmp_path_factory.mktemp(f"reliability-{request.param}")
    env = {"CAREQI_HOME": str(root / "home")}
    valuesets = sorted((load_settings().shared_data_dir / "ecqm-qicore-2025").glob("*/valuesets"))
    if valuesets:
        env["CAREQI_VALUESET_DIR"] = os.pathsep.join(str(v) for v in valuesets)
    schema = f"careqi_rel_{uuid.uuid4().hex[:10]}"
    if request.param == "postgres":
        env["CAREQI_WAREHOUSE_URL"] = _postgres_url(schema)
    settings = load_settings(env)
    generate(settings.incoming_dir, patients=200, months=3, seed=23, end_period=MONTHS[-1], defect_rate=0.0)
    for month in MONTHS:
        stages.run_period(month, settings, report=month == MONTHS[-1])
    yield settings
    if request.param == "postgres":
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True))
        admin.dispose()


def _state(settings: Settings) -> dict[str, object]:
    """Everything a wrong run could change: every result, every count, every output byte."""
    engine = make_engine(settings.warehouse_url)
    try:
        results = read_results(engine).sort_values(KEYS).reset_index(drop=True)
        counts = table_counts(engine)
    finally:
        engine.dispose()
    files = {}
    for folder in (settings.reports_dir, settings.exports_dir):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                files[str(path.relative_to(settings.home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"results": results, "counts": counts, "files": files}


def _assert_unchanged(before: dict[str, object], settings: Settings) -> None:
    after = _state(settings)
    pd.testing.assert_frame_equal(before["results"], after["results"])  # type: ignore[arg-type]
    assert after["counts"] == before["counts"]
    assert after["files"] == before["files"]


def _delivery(settings: Settings, tmp_path: Path, name: str) -> Path:
    """A copy of October's delivery to spoil."""
    target = tmp_path / name
    shutil.copytree(settings.incoming_dir / MONTHS[-1], target)
    return target


def _rewrite_ndjson(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    path.write_bytes(b"\n".join(orjson.dumps(change(r)) for r in lines) + b"\n")


# ------------------------------------------------------------ changes nothing
@pytest.mark.parametrize("spoil", ["empty_folder", "no_encounters", "garbage_encounters"])
def test_an_empty_or_broken_delivery_never_replaces_a_loaded_month(home: Settings, tmp_path: Path, spoil: str) -> None:
    """Regression (defect 1): an empty folder, a batch without Encounter.ndjson, or an
    Encounter.ndjson of 400 garbage lines replaced October (its encounters became 0, the
    revision window recomputed September) and overwrote the exports, with exit 0."""
    before = _state(home)
    if spoil == "empty_folder":
        source = tmp_path / "empty"
        source.mkdir()
    else:
        source = _delivery(home, tmp_path, spoil)
        (source / "Encounter.ndjson").unlink()
        if spoil == "garbage_encounters":
            (source / "Encounter.ndjson").write_text("".join(f"garbage line {i} {{\n" for i in range(400)))
    with pytest.raises(ValidationFailed, match="nothing replaced"):
        stages.run_period(MONTHS[-1], home, input_dir=source)
    _assert_unchanged(before, home)


def test_outputs_are_published_whole_or_not_at_all(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (defect 5): on a nearly full disk index.html was cut at 100 KB and the
    export set held 4 of 7 MeasureReports, the last truncated - looking complete."""
    from pipelines import outputs

    before = _state(home)
    real = outputs.write_file
    written: list[Path] = []

    def full_disk(path: Path, data: bytes) -> Path:
        if len(written) == 3:
            path.write_bytes(data[: len(data) // 2])  # a partial file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        return real(path, data)

    monkeypatch.setattr(outputs, "write_file", full_disk)
    with pytest.raises(OutputError, match="No space left on device; nothing was replaced"):
        stages.export_stage(MONTHS[-1], home)
    written.clear()
    written.extend([Path("a"), Path("b"), Path("c")])
    with pytest.raises(OutputError, match="nothing was replaced"):
        stages.report_stage(MONTHS[-1], home)
    _assert_unchanged(before, home)
    leftovers = [p.name for d in (home.reports_dir, home.exports_dir) for p in d.iterdir() if p.name.startswith(".")]
    assert leftovers == []


# ------------------------------------------------------------ loads new deliveries
def test_an_indicator_not_computed_this_time_never_keeps_its_old_figure(home: Settings) -> None:
    """Regression (defect 2): rerun without the value sets, the eCQMs were logged "not
    computed" but their old rows went out in the CSV, the MeasureReports and the report."""
    if not home.valueset_dirs:
        pytest.skip("the CMS value sets (CAREQI_SHARED_DATA/ecqm-qicore-2025) are not available")
    engine = make_engine(home.warehouse_url)
    before = read_results(engine, periods=[MONTHS[-1]])
    ecqms = sorted(i for i in before["indicator_id"].unique() if i.startswith("cms"))
    assert ecqms and (before.loc[before["indicator_id"].isin(ecqms), "state"] != "not_computed").all()
    without = replace(home, valueset_dirs=())
    outcome = stages.run_period(MONTHS[-1], without)
    assert set(outcome["compute"]["not_computed"]) == set(ecqms)
    after = read_results(engine, periods=MONTHS)
    engine.dispose()
    for iid in ecqms:
        rows = after[after["indicator_id"] == iid]
        for month in MONTHS:  # October and the revision months it recomputed
            got = rows[rows["period"] == month]
            assert got["state"].tolist() == ["not_computed"], (iid, month)
            assert got["measure_score"].isna().all()
    csv_rows = pd.read_csv(outcome["export"]["csv"][0], dtype=str, keep_default_na=False)
    for iid in ecqms:
        row = csv_rows[csv_rows["indicator_id"] == iid]
        assert row["state"].tolist() == ["not_computed"] and row["measure_score"].tolist() == [""]
        folder = home.exports_dir / MONTHS[-1]
        bundle = orjson.loads((folder / f"careqi-measurereports-{MONTHS[-1]}.bundle.json").read_bytes())
        report_id = f"{iid.replace('_', '-')}-{MONTHS[-1]}"
        (report,) = [e["resource"] for e in bundle["entry"] if e["resource"]["id"] == report_id]
        assert report["status"] == "error" and "measureScore" not in report["group"][0]
    html = Path(outcome["report"]).read_text(encoding="utf-8")
    assert html.count("Not computed") >= len(ecqms)


def test_hostile_text_in_a_delivery_is_stored_safely_and_exported_inert(home: Settings, tmp_path: Path) -> None:
    """Regressions (defects 3 and 4): a ward id of =cmd|' /C calc'!A0 became a live
    formula in the regulator CSV; one NUL in a survey comment (or \\u0000 in a JSON
    string) failed the whole month on PostgreSQL while SQLite accepted it."""
    source = _delivery(home, tmp_path, "hostile")

    def hostile_ward(r: dict) -> dict:
        for loc in r.get("location") or []:
            loc["location"] = {**loc["location"], "reference": f"Location/{HOSTILE_LOCATION}"}
        if r.get("serviceType"):
            r["serviceType"]["coding"][0]["code"] = r["serviceType"]["coding"][0]["code"] + "\u0000"
        return r

    _rewrite_ndjson(source / "Encounter.ndjson", hostile_ward)
    surveys = (source / "survey_responses.csv").read_bytes().splitlines()
    header = surveys[0].split(b",")
    col = header.index(b"comment")
    fixed = [surveys[0]]
    for line in surveys[1:]:
        fields = line.split(b",")
        if len(fields) == len(header):
            fields[col] = b"nul\x00in a comment"
        fixed.append(b",".join(fields))
    (source / "survey_responses.csv").write_bytes(b"\n".join(fixed) + b"\n")
    complaints = pd.read_csv(source / "complaints.csv", dtype=str, keep_default_na=False)
    # a small month may have no complaint at all: one received in October is added, so
    # the hostile ward reaches the export whatever the generator drew
    raised = {"complaint_id": "hostile-ward-complaint", "facility_id": "org-northfield", "service": "general-medicine"}
    raised |= {"channel": "phone", "category": "staff_attitude", "severity": "moderate", "status": "resolved"}
    raised |= {"received_at": "2026-10-05T10:00:00+00:00", "acknowledged_at": "2026-10-06T09:00:00+00:00"}
    raised |= {"resolved_at": "2026-10-20T12:00:00+00:00", "outcome": "upheld"}
    complaints = pd.concat([complaints, pd.DataFrame([raised])], ignore_index=True).fillna("")
    complaints["ward_id"] = HOSTILE_WARD
    complaints.to_csv(source / "complaints.csv", index=False)

    outcome = stages.run_period(MONTHS[-1], home, input_dir=source)

    engine = make_engine(home.warehouse_url)
    try:
        encounters = read_table(engine, "encounters", upto_batch=MONTHS[-1])
        comments = read_table(engine, "survey_responses", upto_batch=MONTHS[-1])
    finally:
        engine.dispose()
    october = encounters[encounters["batch"] == MONTHS[-1]]
    assert (october["ward_id"] == HOSTILE_LOCATION).sum() > 0
    assert october["service"].dropna().str.endswith(REPLACEMENT).all()
    assert (comments.loc[comments["batch"] == MONTHS[-1], "comment"] == f"nul{REPLACEMENT}in a comment").any()
    cells = pd.read_csv(outcome["export"]["csv"][0], dtype=str, keep_default_na=False).to_numpy().ravel()
    assert {f"'{HOSTILE_WARD}", f"'{HOSTILE_LOCATION}"} <= set(cells)
    assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in cells if c)


def test_an_intended_empty_table_is_accepted_when_declared(home: Settings, tmp_path: Path) -> None:
    """The rare true case (say the observations system was down all month): refused as a
    missing feed, accepted when the operator declares the table empty, and recorded with
    the batch."""
    source = _delivery(home, tmp_path, "no_observations")
    (source / "Observation.ndjson").write_bytes(b"")
    stages.extract_stage(MONTHS[-1], home, input_dir=source)
    with pytest.raises(ValidationFailed, match="observations: nothing accepted"):
        stages.validate_stage(MONTHS[-1], home)
    stages.run_period(MONTHS[-1], home, input_dir=source, empty_tables=["observations"], report=False)
    engine = make_engine(home.warehouse_url)
    try:
        record = batch_records(engine).set_index("batch").loc[MONTHS[-1]]
    finally:
        engine.dispose()
    assert record["accepted_as"] == "declared empty: observations"
