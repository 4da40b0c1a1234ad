from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from pipelines.errors import PeriodError
from pipelines.generate import GenerateSummary, generate
from pipelines.tables import PROVENANCE, TABLES
from tests.generate.helpers import (
    CSVS,
    NDJSON,
    batches,
    clean_resources,
    csv_rows,
    manifest,
    ndjson_lines,
    resource_problems,
    row_problems,
)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    args = dict(patients=300, months=3, seed=11, end_period="2026-01", defect_rate=0.02)
    a = generate(tmp_path / "a", **args)
    b = generate(tmp_path / "b", **args)
    other = generate(tmp_path / "c", **{**args, "seed": 12})
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert a == b
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert other.batches == a.batches


def test_batches_are_the_months_ending_at_end_period_across_a_year_boundary(tmp_path: Path) -> None:
    summary = generate(tmp_path, patients=5, months=3, end_period="2026-01")
    assert summary.batches == ["2025-11", "2025-12", "2026-01"]
    assert [b.name for b in batches(tmp_path)] == summary.batches


def test_every_batch_has_every_file_and_the_contract_csv_headers(
    population_run: tuple[Path, GenerateSummary],
) -> None:
    root, summary = population_run
    prov = {p for p, _ in PROVENANCE}
    expected_headers = {
        "survey_responses.csv": [c for c in TABLES["survey_responses"].column_names if c not in prov],
        "complaints.csv": [c for c in TABLES["complaints"].column_names if c not in prov],
    }
    assert len(summary.batches) == 12 and summary.batches[-1] == "2026-10"
    for b in batches(root):
        names = {p.name for p in b.iterdir()}
        assert names == set(NDJSON) | set(CSVS) | {"_defects.jsonl"}
        for name in NDJSON:
            assert summary.records[b.name][name] == len(ndjson_lines(b, name))
        for name in CSVS:
            header, rows = csv_rows(b, name)
            assert header == expected_headers[name]
            assert summary.records[b.name][name] == len(rows)
        # every file type carries data in every month at this scale
        assert all(summary.records[b.name][n] > 0 for n in NDJSON if n != "AdverseEvent.ndjson")
    assert summary.patients == 2000


def test_clean_resources_validate_as_fhir_r4(population_run: tuple[Path, GenerateSummary]) -> None:
    root, _ = population_run
    for name in NDJSON:
        resources = [r for _, r in clean_resources(root, name)]
        assert resources, name
        step = max(1, len(resources) // 200)
        for r in resources[::step][:200]:
            model = get_fhir_model_class(r["resourceType"])
            model.model_validate(r)  # raises on any R4 violation


def test_every_manifest_entry_is_defective_in_exactly_the_stated_way(
    defect_run: tuple[Path, GenerateSummary],
) -> None:
    root, summary = defect_run
    kinds: Counter[str] = Counter()
    files: Counter[str] = Counter()
    for b in batches(root):
        listed = {(d["file"], d["line"]): d for d in manifest(b)}
        assert len(listed) == len(manifest(b)), "a line is listed twice"
        for name in NDJSON:
            seen: set[bytes] = set()
            for i, line in enumerate(ndjson_lines(b, name), 1):
                found = resource_problems(line, seen)
                seen.add(line)
                entry = listed.get((name, i))
                if entry is None:
                    assert found == set(), (b.name, name, i, found)
                    continue
                assert found == {entry["kind"]}, (b.name, name, i, entry, found)
                assert entry["table"] == TABLES[entry["table"]].name
                if entry["kind"] != "malformed_json":
                    assert orjson.loads(line).get("id") == entry["record_id"]
                kinds[entry["kind"]] += 1
                files[name] += 1
        for name in CSVS:
            header, rows = csv_rows(b, name)
            seen_rows: set[tuple[str, ...]] = set()
            for i, row in enumerate(rows, 1):
                raw = tuple(row[c] for c in header)
                found = row_problems(name, row, raw, seen_rows)
                seen_rows.add(raw)
                entry = listed.get((name, i))
                if entry is None:
                    assert found == set(), (b.name, name, i, found)
                    continue
                assert found == {entry["kind"]}, (b.name, name, i, entry, found)
                assert entry["record_id"] == raw[0]
                kinds[entry["kind"]] += 1
                files[name] += 1
    assert dict(kinds) == {k: v for k, v in summary.defects.items() if v}
    assert set(kinds) == {
        "malformed_json",
        "missing_field",
        "impossible_date",
        "unknown_code",
        "duplicate",
        "unparseable_date",
    }
    # reference data is never broken; every record type with enough lines is
    assert files["Organization.ndjson"] == files["Location.ndjson"] == 0
    totals = Counter(f for per_batch in summary.records.values() for f, n in per_batch.items() for _ in range(n))
    for name in [*(n for n in NDJSON if n not in ("Organization.ndjson", "Location.ndjson")), *CSVS]:
        if totals[name] >= 200:
            assert files[name] > 0, name


def test_defect_rate_is_respected(population_run: tuple[Path, GenerateSummary]) -> None:
    _, summary = population_run
    records = sum(
        n
        for files in summary.records.values()
        for f, n in files.items()
        if f not in ("Organization.ndjson", "Location.ndjson")
    )
    rate = sum(summary.defects.values()) / records
    assert 0.003 < rate < 0.007


def test_zero_defect_rate_writes_empty_manifests(clean_run: tuple[Path, GenerateSummary]) -> None:
    root, summary = clean_run
    assert sum(summary.defects.values()) == 0
    assert all(manifest(b) == [] for b in batches(root))


def test_progress_reports_every_patient_once(tmp_path: Path) -> None:
    calls: list[int] = []
    generate(tmp_path, patients=2500, months=1, progress=calls.append)
    assert sum(calls) == 2500 and all(c > 0 for c in calls)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"end_period": "2026-13"}, PeriodError),  # every bad month fails as the month type says
        ({"end_period": "Oct 2026"}, PeriodError),
        ({"months": 0}, ValueError),
        ({"defect_rate": 1.5}, ValueError),
        ({"patients": -1}, ValueError),
    ],
)
def test_bad_arguments_raise_a_clear_error(tmp_path: Path, kwargs: dict[str, object], error: type[Exception]) -> None:
    args: dict[str, object] = {"patients": 3, **kwargs}
    with pytest.raises(error):
        generate(tmp_path, **args)  # type: ignore[arg-type]
