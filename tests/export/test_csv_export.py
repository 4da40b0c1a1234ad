from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from pipelines.errors import ExportError, PeriodError
from pipelines.export import export_csv
from pipelines.export.csv_export import COLUMNS

from .conftest import PERIOD


def read(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def find(rows, iid, fac, strat="overall", stratum="all"):
    return next(
        r
        for r in rows
        if (r["indicator_id"], r["facility_id"], r["stratifier"], r["stratum"]) == (iid, fac, strat, stratum)
    )


def test_one_row_per_cell_of_the_period_with_the_contract_columns(results, indicators, tmp_path):
    path = export_csv(results, indicators, PERIOD, tmp_path)[0]
    assert path.name == f"careqi-indicators-{PERIOD}.csv"
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == COLUMNS
    rows = read(path)
    assert len(rows) == int((results["period"] == PERIOD).sum())
    top = find(rows, "vte", "ALL")
    assert (top["period_start"], top["period_end"]) == ("2026-10-01", "2026-10-31")
    assert top["cms_id"] == "CMS108FHIRVTEProphylaxis"
    assert (top["denominator"], top["numerator"], top["measure_score"]) == ("200", "120", "0.600000")
    assert top["suppressed"] == ""


def test_small_counts_are_blank_and_flagged(results, indicators, tmp_path):
    rows = read(export_csv(results, indicators, PERIOD, tmp_path)[0])
    w1 = find(rows, "vte", "F1", "ward", "W1")
    assert w1["numerator"] == "" and w1["measure_score"] == "" and w1["ci_low"] == "" and w1["ci_high"] == ""
    assert w1["denominator"] == "60"
    assert w1["status"] == ""  # the status goes with the score: "red" would say the score is below target
    assert w1["suppressed"] == "numerator;performance_numerator;measure_score;ci_low;ci_high;status"
    w2 = find(rows, "vte", "F1", "ward", "W2")  # complementary: 60 - 55 would give W1 back
    assert w2["numerator"] == "" and "numerator" in w2["suppressed"]
    assert all("5" != r["numerator"] for r in rows)


def test_csv_is_byte_identical_across_runs_and_row_orders(results, indicators, tmp_path):
    a = export_csv(results, indicators, PERIOD, tmp_path / "a")[0].read_bytes()
    shuffled = results.sample(frac=1.0, random_state=3).reset_index(drop=True)
    b = export_csv(shuffled, list(reversed(indicators)), PERIOD, tmp_path / "b")[0].read_bytes()
    assert a == b
    assert b"\r\n" not in a and not a.startswith(b"\xef\xbb\xbf")


def test_rows_are_sorted_system_first_then_facilities(results, indicators, tmp_path):
    rows = read(export_csv(results, indicators, PERIOD, tmp_path)[0])
    keys = [(r["indicator_id"], r["facility_id"], r["stratifier"], r["stratum"]) for r in rows]
    assert keys[0] == ("days", "ALL", "overall", "all")
    vte = [k for k in keys if k[0] == "vte"]
    assert vte[:4] == [
        ("vte", "ALL", "overall", "all"),
        ("vte", "ALL", "ward", "W1"),
        ("vte", "ALL", "ward", "W2"),
        ("vte", "ALL", "ward", "W3"),
    ]


def test_identifiers_and_free_text_never_reach_the_file(results, indicators, tmp_path):
    leaky = results.assign(
        subject_id="enc-SECRET-1",
        patient_id="pat-SECRET-2",
        encounter_id="enc-SECRET-3",
        comment="Nurse SECRET-4 was rude",
    )
    text = export_csv(leaky, indicators, PERIOD, tmp_path)[0].read_text(encoding="utf-8")
    assert "SECRET" not in text
    assert "subject_id" not in text and "patient_id" not in text


def test_stratifying_by_an_identifier_is_refused(results, indicators, tmp_path):
    bad = pd.concat([results, results.iloc[[0]].assign(stratifier="patient_id", stratum="pat-1")])
    with pytest.raises(ExportError, match="identifying"):
        export_csv(bad, indicators, PERIOD, tmp_path)


def test_results_for_an_undefined_indicator_are_an_error(results, indicators, tmp_path):
    with pytest.raises(ExportError, match="no definition"):
        export_csv(results, indicators[:1], PERIOD, tmp_path)


def test_bad_period_is_a_period_error(results, indicators, tmp_path):
    with pytest.raises(PeriodError, match="YYYY-MM"):
        export_csv(results, indicators, "2026-13", tmp_path)
