from __future__ import annotations

import csv
import io

import pytest

from pipelines.errors import ExportError
from pipelines.export import FORMATS, export_dictionary
from pipelines.export.csv_export import COLUMNS
from pipelines.export.dictionary import COLUMN_SPECS, TYPES, ColumnSpec, check_specs

from .conftest import PERIOD


def test_the_dictionary_describes_every_csv_column_in_order(results, indicators, tmp_path):
    (path,) = export_dictionary(results, indicators, PERIOD, tmp_path)
    assert path.name == "data_dictionary.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert [r["name"] for r in rows] == COLUMNS
    assert all(r["type"] in TYPES and r["meaning"] for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert by_name["numerator"]["type"] == "integer" and by_name["numerator"]["unit"] == "count"
    assert by_name["period_start"]["type"] == "date"
    assert by_name["measure_score"]["type"] == "decimal"


def test_the_threshold_in_force_is_stated(results, indicators, tmp_path):
    (path,) = export_dictionary(results, indicators, PERIOD, tmp_path, small_number_threshold=6)
    assert "Counts of 1 to 5 are suppressed" in path.read_text(encoding="utf-8")


def test_a_csv_column_without_a_description_is_refused():
    with pytest.raises(ExportError, match=r"undescribed \['new_column'\]"):
        check_specs([*COLUMNS, "new_column"], COLUMN_SPECS)
    with pytest.raises(ExportError, match=r"not in the CSV \['gone'\]"):
        check_specs(COLUMNS, {**COLUMN_SPECS, "gone": ColumnSpec("string", "", "x")})
    with pytest.raises(ExportError, match="bad type"):
        check_specs(COLUMNS, {**COLUMN_SPECS, "title": ColumnSpec("text", "", "x")})
    check_specs(COLUMNS, COLUMN_SPECS)  # the shipped dictionary matches the shipped CSV


def test_the_dictionary_is_byte_identical_across_runs_and_is_a_format(results, indicators, tmp_path):
    a = export_dictionary(results, indicators, PERIOD, tmp_path / "a")[0].read_bytes()
    b = export_dictionary(results.iloc[::-1], indicators, PERIOD, tmp_path / "b")[0].read_bytes()
    assert a == b and b"\r\n" not in a and not a.startswith(b"\xef\xbb\xbf")
    assert FORMATS["data_dictionary"] is export_dictionary
