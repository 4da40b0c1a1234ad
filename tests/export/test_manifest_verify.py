from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli_export import export_app
from pipelines.export import FORMATS, read_manifest, verify_package, write_manifest
from pipelines.export.csv_export import COLUMNS
from pipelines.export.manifest import KEYS, MANIFEST
from pipelines.export.verify import suppression_problems

from .conftest import PERIOD

CSV = f"careqi-indicators-{PERIOD}.csv"
BUNDLE = f"careqi-measurereports-{PERIOD}.bundle.json"
VALUESETS = [
    {"url": "http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113883.3.117.1.7.1.292", "version": "20240101"},
    {"url": "http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113762.1.4.1045.91", "version": "20230301"},
]


def manifest_of(folder: Path, threshold: int = 11) -> Path:
    return write_manifest(
        folder,
        period=PERIOD,
        run_id="run-2026-10-a",
        software_version="0.4.0+abc123def456",
        input_fingerprint="sha256:" + "ab" * 32,
        valuesets=VALUESETS,
        small_number_threshold=threshold,
    )


def write_package(results, indicators, folder: Path) -> Path:
    for writer in FORMATS.values():
        writer(results, indicators, PERIOD, folder, small_number_threshold=11)
    manifest_of(folder)
    return folder


@pytest.fixture
def package(results, indicators, tmp_path) -> Path:
    return write_package(results, indicators, tmp_path / "pkg")


def rehash(folder: Path) -> None:
    """Rewrite the manifest for the folder as it now is: only content checks can object."""
    manifest_of(folder)


def edit_csv(folder: Path, key: tuple[str, str, str, str], **cells: str) -> None:
    path = folder / CSV
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    row = next(r for r in rows if (r["indicator_id"], r["facility_id"], r["stratifier"], r["stratum"]) == key)
    row.update(cells)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def test_a_fresh_package_verifies(package):
    assert verify_package(package) == []
    manifest = read_manifest(package)
    assert sorted(manifest) == sorted(KEYS)
    assert manifest["format"] == "careqi-export-package" and manifest["format_version"] == 1
    assert manifest["small_number_threshold"] == 11 and manifest["period"] == PERIOD
    names = [f["name"] for f in manifest["files"]]
    assert names == sorted(names) and MANIFEST not in names
    assert set(names) == {
        CSV,
        f"careqi-indicators-{PERIOD}.parquet",
        "data_dictionary.csv",
        BUNDLE,
    }
    assert [v["url"] for v in manifest["valuesets"]] == sorted(v["url"] for v in VALUESETS)


def test_the_manifest_is_byte_stable(results, indicators, tmp_path):
    a = (write_package(results, indicators, tmp_path / "a") / MANIFEST).read_bytes()
    b = (write_package(results.iloc[::-1], indicators, tmp_path / "b") / MANIFEST).read_bytes()
    assert a == b and a.endswith(b"}\n") and b'\n  "files"' in a
    assert json.loads(a) == json.loads(json.dumps(json.loads(a), sort_keys=True))
    assert list(json.loads(a)) == sorted(json.loads(a))


def test_a_changed_byte_is_a_checksum_problem(package):
    path = package / BUNDLE
    data = bytearray(path.read_bytes())
    data[data.index(b"complete")] = ord("C")  # same size, still valid JSON
    path.write_bytes(bytes(data))
    problems = verify_package(package)
    assert problems == [f"{BUNDLE}: SHA-256 does not match the manifest (the file was changed)"]


def test_undoing_a_suppression_is_caught_even_with_a_matching_checksum(package):
    # F1 ward W1's numerator (5) was suppressed: publish 7 there and drop the flag
    edit_csv(package, ("vte", "F1", "ward", "W1"), numerator="7", performance_numerator="7",
             suppressed="measure_score;ci_low;ci_high;status")  # fmt: skip
    rehash(package)
    problems = verify_package(package)
    assert not any("SHA-256" in p for p in problems)
    assert any("vte/F1/ward/W1: numerator = 7 is a small number (1..10) left published" in p for p in problems)
    # W2 is now the only suppressed numerator of F1 = W1 + W2: 60 - 7 gives it back
    assert any("vte/F1/ward/W2: the only suppressed numerator" in p for p in problems)


def test_a_missing_complementary_suppression_is_caught(package):
    # W2's numerator (55) is not small, but published it gives W1's back as 60 - 55
    edit_csv(package, ("vte", "F1", "ward", "W2"), numerator="55", performance_numerator="55",
             suppressed="measure_score;ci_low;ci_high;status")  # fmt: skip
    rehash(package)
    problems = [p for p in verify_package(package) if "parquet" not in p]
    gives_back = "subtraction gives it back (complementary suppression missing)"
    assert problems == [
        f"{CSV} row {cell}: the only suppressed {col} of the sum into {into}: {gives_back}"
        for cell, into in [("vte/F1/ward/W1", "vte/F1/overall/all"), ("vte/ALL/ward/W2", "vte/ALL/ward/W2")]
        for col in ("numerator", "performance_numerator")
    ]


def test_a_published_flagged_cell_and_a_shown_score_are_caught():
    row = {c: "" for c in COLUMNS} | {
        "indicator_id": "vte", "facility_id": "F1", "stratifier": "overall", "stratum": "all", "state": "final",
        "initial_population": "60", "denominator": "60", "denominator_exclusion": "0", "numerator": "30",
        "numerator_exclusion": "0", "measure_score": "0.500000", "suppressed": "numerator;performance_numerator",
        "scoring": "proportion", "performance_denominator": "60",
    }  # fmt: skip
    problems = suppression_problems([row], 11)
    assert any("numerator is listed as suppressed but published" in p for p in problems)
    assert any("a count the score is made of is suppressed" in p for p in problems)


def test_a_removed_file_is_a_problem(package):
    (package / BUNDLE).unlink()
    assert verify_package(package) == [f"{BUNDLE}: listed in the manifest but missing"]


def test_an_unlisted_file_is_a_problem(package):
    (package / "notes.txt").write_text("draft\n", encoding="utf-8")
    assert verify_package(package) == ["notes.txt: in the folder but not in the manifest"]


def test_a_measure_report_that_is_not_json_is_a_problem(package):
    (package / BUNDLE).write_text('{"resourceType": "Bundle",', encoding="utf-8")
    rehash(package)
    problems = verify_package(package)
    assert len(problems) == 1 and problems[0].startswith(f"{BUNDLE}: not valid JSON")


def test_a_measure_report_that_is_not_fhir_is_a_problem(package):
    path = package / BUNDLE
    bundle = json.loads(path.read_text(encoding="utf-8"))
    bundle["entry"][-1]["resource"]["group"][0]["population"][0]["count"] = "many"  # a count must be an integer
    path.write_text(json.dumps(bundle), encoding="utf-8")
    rehash(package)
    problems = verify_package(package)
    assert len(problems) == 1 and problems[0].startswith(f"{BUNDLE}: not a valid FHIR R4 Bundle")


def test_a_bundle_is_checked_when_present(package):
    (package / "reports.bundle.json").write_text('{"resourceType": "Bundle", "type": "collection"}', encoding="utf-8")
    rehash(package)
    assert verify_package(package) == []
    (package / "reports.bundle.json").write_text(
        '{"resourceType": "Bundle", "type": "collection", "total": "all"}', encoding="utf-8"
    )
    rehash(package)
    problems = verify_package(package)
    assert len(problems) == 1 and problems[0].startswith("reports.bundle.json: not a valid FHIR R4 Bundle")


@pytest.mark.parametrize("leak", ["enc-000123", "pat-42", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"])
def test_an_identifier_in_a_cell_is_a_problem(package, leak):
    edit_csv(package, ("vte", "ALL", "overall", "all"), state_reason=f"see {leak}")
    rehash(package)
    problems = [p for p in verify_package(package) if "parquet" not in p]
    assert problems == [f"{CSV}: 1 value(s) look like record identifiers, e.g. 'see {leak}'"]


def test_the_parquet_must_match_the_csv(package):
    edit_csv(package, ("vte", "ALL", "overall", "all"), numerator="121")
    rehash(package)
    problems = verify_package(package)
    assert problems == [
        f"careqi-indicators-{PERIOD}.parquet: row 4 (vte/ALL/overall/all) differs from the CSV in ['numerator']"
    ]


def test_an_incomplete_or_missing_manifest_is_a_problem(package):
    manifest = read_manifest(package)
    del manifest["small_number_threshold"], manifest["run_id"]
    (package / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    problems = verify_package(package)
    assert "manifest: missing key 'run_id'" in problems and "manifest: missing key 'small_number_threshold'" in problems
    (package / MANIFEST).unlink()
    (problem,) = verify_package(package)
    assert "no manifest" in problem


def test_cli_verify_reports_ok_and_problems(package):
    runner = CliRunner()
    ok = runner.invoke(export_app, ["verify", str(package)])
    assert ok.exit_code == 0, ok.output
    assert "package OK: 4 files verified" in ok.output
    (package / "notes.txt").write_text("x", encoding="utf-8")
    bad = runner.invoke(export_app, ["verify", str(package)])
    assert bad.exit_code == 1
    assert "notes.txt: in the folder but not in the manifest" in bad.output


@pytest.mark.parametrize(
    ("argv", "period"),
    [
        (["--period", PERIOD], PERIOD),
        (["package", "--period", "2026-Q4"], "2026-Q4"),
        (["package", "-p", "2026"], "2026"),
    ],
)
def test_cli_export_package_writes_the_package(monkeypatch, argv, period):
    """``careqi export package --period P`` (and the older ``careqi export --period P``)
    call the one package function with the period's canonical label."""
    import pipelines.config
    import pipelines.packaging

    calls = []
    monkeypatch.setattr(pipelines.config, "load_settings", lambda: "settings")
    monkeypatch.setattr(
        pipelines.packaging,
        "export_package",
        lambda period, settings: calls.append((period, settings)) or {"csv": ["x.csv"]},
    )
    result = CliRunner().invoke(export_app, argv)
    assert result.exit_code == 0, result.output
    assert calls == [(period, "settings")] and "x.csv" in result.output
