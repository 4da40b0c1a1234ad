"""``careqi feedback ...`` commands, run as a user runs them."""

from __future__ import annotations

import csv
from pathlib import Path

from pipelines.analyse.experience import CMS_STAR_SUFFIX, HCAHPS_MEASURES
from pipelines.cli import main


def _hcahps_file(path: Path) -> None:
    stars = {
        # all 4 -> 4; 3,3,3,3,3,4 + mean(4,3)=3.5 + mean(4,4)=4 -> 26.5/8 = 3.3125 -> 3
        "100001": dict.fromkeys(HCAHPS_MEASURES, "4"),
        "100002": {
            **dict.fromkeys(HCAHPS_MEASURES, "3"),
            "H_COMP_7": "4",
            "H_CLEAN": "4",
            "H_HSP_RATING": "4",
            "H_RECMND": "4",
        },  # fmt: skip
        "100003": {**dict.fromkeys(HCAHPS_MEASURES, "5"), "H_QUIET": "Not Available"},
    }
    header = ["Provider.ID", "Location", *(m + CMS_STAR_SUFFIX for m in HCAHPS_MEASURES), "H_STAR_RATING"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(header)
        for ccn, row in stars.items():
            published = {"100001": "4", "100002": "3", "100003": "Not Available"}[ccn]
            w.writerow([ccn, "1 Main St\r\nTown", *(row[m] for m in HCAHPS_MEASURES), published])


def test_hcahps_stars_adds_the_computed_summary_star(tmp_path: Path, capsys) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _hcahps_file(src)
    assert main(["feedback", "hcahps-stars", str(src), "-o", str(dst)]) == 0
    with dst.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["computed_summary_star"] for r in rows] == ["4", "3", ""]
    assert rows[0]["Location"] == "1 Main St\r\nTown"  # the multi-line field comes back unchanged
    assert "2 of 2 with a published one agree" in capsys.readouterr().out


def test_hcahps_stars_refuses_to_overwrite_its_input(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in.csv"
    _hcahps_file(src)
    before = src.read_bytes()
    assert main(["feedback", "hcahps-stars", str(src), "-o", str(src)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_hcahps_stars_on_a_file_without_star_columns_is_one_line_error(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in.csv"
    src.write_text("Provider.ID,Name\r\n1,A\r\n")
    assert main(["feedback", "hcahps-stars", str(src), "-o", str(tmp_path / "o.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
