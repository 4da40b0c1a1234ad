"""HCAHPS-style scoring: hand-computed box scores, cut-point edges, the CMS summary-star rule,
and the summary star of every hospital in the shared Hospital Compare file."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.analyse.experience import (
    CMS_STAR_SUFFIX,
    CMS_SUMMARY_COLUMN,
    COMPUTED_SUMMARY_COLUMN,
    FREQUENCY,
    HCAHPS_MEASURES,
    RATING_0_10,
    RECOMMEND,
    YES_NO,
    Scale,
    add_computed_summary_star,
    box_scores,
    infer_cut_points,
    linear_scale,
    read_cms_layout,
    round_half_up,
    star_ratings,
    summary_star,
    summary_star_by,
    write_cms_layout,
)
from pipelines.errors import ConfigError, ExtractError

HCAHPS_FILE = Path("cms-hcahps-hospital-2017") / "HCAHPS_Data.csv"
COMPOSITE_STARS = ["H_COMP_1", "H_COMP_2", "H_COMP_3", "H_COMP_5", "H_COMP_6", "H_COMP_7"]


def _answers(rows: Sequence[tuple[object, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["response_id", "ward", "question", "answer"])


def _row(frame: pd.DataFrame, ward: str, measure: str) -> pd.Series:
    hit = frame[(frame["ward"] == ward) & (frame["measure"] == measure)]
    assert len(hit) == 1
    return hit.iloc[0]


# --- scales -----------------------------------------------------------------------------


def test_cms_scales_have_the_published_linear_values_and_boxes() -> None:
    assert FREQUENCY.scores == pytest.approx((0, 100 / 3, 200 / 3, 100))
    assert RATING_0_10.scores == pytest.approx(tuple(range(0, 101, 10)))
    assert RECOMMEND.scores == pytest.approx((0, 100 / 3, 200 / 3, 100))
    assert YES_NO.scores == (0.0, 100.0)
    assert FREQUENCY.box_of("Always") == "top" and FREQUENCY.box_of("usually") == "middle"
    assert FREQUENCY.box_of("sometimes") == FREQUENCY.box_of("never") == "bottom"
    assert [RATING_0_10.box_of(str(i)) for i in (10, 9, 8, 7, 6, 0)] == ["top"] * 2 + ["middle"] * 2 + ["bottom"] * 2
    assert RECOMMEND.box_of("probably no") == RECOMMEND.box_of("definitely no") == "bottom"


def test_a_scale_must_put_every_category_in_exactly_one_box() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        linear_scale(("no", "maybe", "yes"), top=("yes",), bottom=("no",))
    with pytest.raises(ConfigError, match="0..100"):
        Scale(categories=("no", "yes"), scores=(0.0, 120.0), top=("yes",), bottom=("no",))


# --- box scores and linear means ---------------------------------------------------------


def test_box_scores_and_linear_means_by_hand() -> None:
    answers = _answers(
        [
            (1, "A", "nurse", "Always"),
            (2, "A", "nurse", "usually"),
            (3, "A", "nurse", "never"),
            (4, "A", "nurse", "ALWAYS "),
            (1, "A", "rating", 10),
            (2, "A", "rating", "8"),
            (3, "A", "rating", 6.0),
            (4, "A", "rating", "don't know"),  # not a category: not a valid answer
            (5, "B", "nurse", "sometimes"),
        ]
    )
    out = box_scores(answers, {"nurse": FREQUENCY, "rating": RATING_0_10}, by=["ward"])
    nurse = _row(out, "A", "nurse")
    assert nurse["n"] == 4 and nurse["n_invalid"] == 0
    assert (nurse["top_box"], nurse["middle_box"], nurse["bottom_box"]) == pytest.approx((50.0, 25.0, 25.0))
    assert nurse["linear_score"] == pytest.approx((100 + 200 / 3 + 0 + 100) / 4)
    rating = _row(out, "A", "rating")
    assert rating["n"] == 3 and rating["n_invalid"] == 1
    assert (rating["top_box"], rating["middle_box"], rating["bottom_box"]) == pytest.approx((100 / 3, 100 / 3, 100 / 3))
    assert rating["linear_score"] == pytest.approx(80.0)
    b = _row(out, "B", "nurse")
    assert (b["n"], b["bottom_box"], b["linear_score"]) == (1, 100.0, pytest.approx(100 / 3))
    assert not out["suppressed"].any()
    assert list(out["measure"]) == ["nurse", "rating", "nurse"]


def test_composite_is_the_mean_of_its_question_scores_not_of_pooled_answers() -> None:
    # q1: 1 answer (always); q2: 3 answers (never x3). Pooled answers would give 25;
    # CMS averages the question scores: (100 + 0) / 2 = 50, box % likewise.
    answers = _answers(
        [(1, "A", "q1", "always"), (1, "A", "q2", "never"), (2, "A", "q2", "never"), (3, "A", "q2", "never")]
    )
    out = box_scores(answers, {"q1": FREQUENCY, "q2": FREQUENCY}, by=["ward"], composites={"comp": ["q1", "q2"]})
    comp = _row(out, "A", "comp")
    assert comp["measure_type"] == "composite"
    assert comp["linear_score"] == pytest.approx(50.0)
    assert (comp["top_box"], comp["middle_box"], comp["bottom_box"]) == pytest.approx((50.0, 0.0, 50.0))
    assert comp["n"] == 3  # responses that answered any of its questions


def test_yes_no_questions_have_no_middle_box() -> None:
    answers = _answers([(1, "A", "d1", "Yes"), (2, "A", "d1", "no"), (1, "A", "d2", "yes"), (2, "A", "d2", "yes")])
    out = box_scores(answers, {"d1": YES_NO, "d2": YES_NO}, by=["ward"], composites={"discharge": ["d1", "d2"]})
    d1 = _row(out, "A", "d1")
    assert np.isnan(d1["middle_box"]) and d1["top_box"] == 50.0 and d1["linear_score"] == 50.0
    comp = _row(out, "A", "discharge")
    assert comp["top_box"] == pytest.approx(75.0) and np.isnan(comp["middle_box"])
    assert comp["linear_score"] == pytest.approx(75.0)


def test_composite_with_an_unanswered_question_is_suppressed_with_its_reason() -> None:
    answers = _answers([(1, "A", "q1", "always"), (2, "A", "q2", "n/a")])
    out = box_scores(answers, {"q1": FREQUENCY, "q2": FREQUENCY}, by=["ward"], composites={"comp": ["q1", "q2"]})
    comp = _row(out, "A", "comp")
    assert comp["suppressed"] and np.isnan(comp["linear_score"])
    assert "no valid answers" in comp["suppression_reason"]
    assert _row(out, "A", "q2")["suppression_reason"] == "no valid answers"


def test_min_n_suppresses_scores_but_keeps_the_row_and_n() -> None:
    rows = [(i, "A", "q", "always") for i in range(5)] + [(i, "B", "q", "never") for i in range(10, 12)]
    out = box_scores(_answers(rows), {"q": FREQUENCY}, by=["ward"], min_n=3)
    a, b = _row(out, "A", "q"), _row(out, "B", "q")
    assert not a["suppressed"] and a["linear_score"] == 100.0 and a["suppression_reason"] is None
    assert b["suppressed"] and b["n"] == 2 and b["suppression_reason"] == "fewer than 3 responses"
    assert np.isnan(b[["top_box", "middle_box", "bottom_box", "linear_score"]].astype(float)).all()


def test_composite_questions_need_a_scale() -> None:
    with pytest.raises(ConfigError, match="without a scale"):
        box_scores(_answers([(1, "A", "q", "always")]), {"q": FREQUENCY}, by=["ward"], composites={"c": ["q", "x"]})


# --- star ratings ------------------------------------------------------------------------


def _scores(values: list[float], n: int = 300) -> pd.DataFrame:
    return pd.DataFrame({"measure": "H_COMP_1", "linear_score": values, "n": n})


def test_star_is_one_plus_the_cut_points_at_or_below_the_score() -> None:
    cuts = {"H_COMP_1": [87, 90, 92, 95]}
    out = star_ratings(_scores([50, 86.99, 87, 89.9, 90, 92, 94.99, 95, 100]), cuts)
    assert out["star"].tolist() == [1, 1, 2, 2, 3, 4, 4, 5, 5]
    assert str(out["star"].dtype) == "Int64"


def test_star_rounding_to_whole_scores_is_half_up() -> None:
    out = star_ratings(_scores([86.5, 86.49]), {"H_COMP_1": [87, 90, 92, 95]}, decimals=0)
    assert out["star"].tolist() == [2, 1]


def test_star_needs_cut_points_a_score_and_100_surveys() -> None:
    frame = pd.DataFrame(
        {"measure": ["H_COMP_1", "H_COMP_1", "H_COMP_1", "H_QUIET"], "linear_score": [91, 91, np.nan, 80]}
    )
    frame["n"] = [100, 99, 300, 300]
    out = star_ratings(frame, {"H_COMP_1": [87, 90, 92, 95]})
    assert out["star"].tolist()[0] == 3 and out["star"].isna().tolist() == [False, True, True, True]
    assert out["star_reason"].tolist() == [
        None,
        "fewer than 100 completed surveys",
        "no score",
        "no cut points configured",
    ]


@pytest.mark.parametrize("cuts", [[87, 90, 92], [87, 90, 90, 95], [95, 92, 90, 87], [87, 90, "x", 95]])
def test_cut_points_must_be_four_ascending_numbers(cuts: list[object]) -> None:
    with pytest.raises(ConfigError):
        star_ratings(_scores([90]), {"H_COMP_1": cuts})  # type: ignore[dict-item]


def test_infer_cut_points_recovers_the_lowest_score_of_each_star() -> None:
    frame = _scores([80, 88, 89, 91, 93, 96]).assign(star=[1, 2, 2, 3, 4, 5])
    assert infer_cut_points(frame) == {"H_COMP_1": (88.0, 91.0, 93.0, 96.0)}
    with pytest.raises(ConfigError, match="overlap"):
        infer_cut_points(_scores([80, 88, 89, 91, 93, 96]).assign(star=[1, 2, 1, 3, 4, 5]))
    with pytest.raises(ConfigError, match="not all present"):
        infer_cut_points(_scores([80, 91, 93, 96]).assign(star=[1, 3, 4, 5]))


# --- summary star ------------------------------------------------------------------------


def _stars(comps: list[object], clean: object, quiet: object, rating: object, recommend: object) -> dict[str, object]:
    row = dict(zip(COMPOSITE_STARS, comps, strict=True))
    row.update(H_CLEAN=clean, H_QUIET=quiet, H_HSP_RATING=rating, H_RECMND=recommend)
    return row


def test_summary_star_is_the_rounded_half_up_mean_of_eight_values() -> None:
    frame = pd.DataFrame(
        [
            _stars([3, 4, 3, 4, 3, 4], 3, 4, 3, 4),  # (21 + 3.5 + 3.5) / 8 = 3.5 -> 4
            _stars([2, 2, 2, 3, 3, 2], 3, 2, 3, 3),  # (14 + 2.5 + 3) / 8 = 2.4375 -> 2
            _stars([2, 2, 3, 3, 2, 3], 2, 3, 2, 3),  # (15 + 2.5 + 2.5) / 8 = 2.5 -> 3 (round() gives 2)
            _stars([3, 3, 3, 4, 3, 3], 4, 3, 4, 3),  # (19 + 3.5 + 3.5) / 8 = 3.25 -> 3
            _stars([5, 5, 5, 5, 5, 5], 5, 5, 5, 5),
            _stars([1, 1, 1, 1, 1, 1], 1, 2, 1, 1),  # 8.5 / 8 = 1.0625 -> 1
        ]
    )
    assert summary_star(frame).tolist() == [4, 2, 3, 3, 5, 1]
    assert round(2.5) == 2  # why floor(x + 0.5) and not round()


def test_summary_star_is_na_when_a_component_is_missing_or_not_a_star() -> None:
    frame = pd.DataFrame(
        [
            _stars([3, 3, 3, 3, 3, 3], 3, np.nan, 3, 3),
            _stars([3, 3, 3, 3, 3, 3], 3, 3, 3, 3),
        ]
    ).astype(object)
    text = pd.DataFrame(
        [
            _stars(["3", "3", "3", "3", "3", "3"], "Not Available", "3", "3", "3"),
            _stars(["3", "3", "3", "3", "3", " 3 "], "3", "3", "3", "3"),
            _stars(["3", "3", "3", "3", "3", "6"], "3", "3", "3", "3"),
            _stars(["3", "3", "3", "3", "3", "2.5"], "3", "3", "3", "3"),
            _stars(["3", "3", "3", "3", "3", ""], "3", "3", "3", "3"),
        ]
    )
    assert summary_star(frame).isna().tolist() == [True, False]
    assert summary_star(text).tolist()[1] == 3
    assert summary_star(text).isna().tolist() == [True, False, True, True, True]
    with pytest.raises(ValueError, match="H_RECMND"):
        summary_star(frame.drop(columns="H_RECMND"))


def test_summary_star_by_group_from_long_stars() -> None:
    wide = pd.DataFrame([_stars([3, 4, 3, 4, 3, 4], 3, 4, 3, 4), _stars([3, 3, 3, 3, 3, 3], 3, 3, 3, 3)])
    wide["hospital"] = ["H1", "H2"]
    long = wide.melt(id_vars="hospital", var_name="measure", value_name="star")
    long = long[~((long["hospital"] == "H2") & (long["measure"] == "H_QUIET"))]
    out = summary_star_by(long, by=["hospital"])
    assert out["hospital"].tolist() == ["H1", "H2"]
    assert out["summary_star"].tolist()[0] == 4 and pd.isna(out["summary_star"].iloc[1])


def test_round_half_up_is_not_moved_by_float_error() -> None:
    assert round_half_up([2.675], 2)[0] == pytest.approx(2.68)  # 2.675 is stored as 2.67499999...
    assert round_half_up([3.5, 2.4375, 0.49999999])[:2].tolist() == [4.0, 2.0]


# --- the Hospital Compare layout -----------------------------------------------------------


def _cms_frame() -> pd.DataFrame:
    rows = [
        {"Provider.ID": "010001", "Location": "1 MAIN ST\r\nDOTHAN, AL", "H_STAR_RATING": "4"}
        | {f"{m}{CMS_STAR_SUFFIX}": s for m, s in _stars([3, 4, 3, 4, 3, 4], 3, 4, 3, 4).items()},
        {"Provider.ID": "010002", "Location": 'A "quoted", name', "H_STAR_RATING": "Not Available"}
        | {f"{m}{CMS_STAR_SUFFIX}": "Not Available" for m in HCAHPS_MEASURES},
    ]
    return pd.DataFrame(rows).astype(str)


def test_add_computed_summary_star_keeps_every_column_and_adds_int64(tmp_path: Path) -> None:
    frame = _cms_frame()
    out = add_computed_summary_star(frame)
    assert list(out.columns) == [*frame.columns, COMPUTED_SUMMARY_COLUMN]
    assert str(out[COMPUTED_SUMMARY_COLUMN].dtype) == "Int64"
    assert out[COMPUTED_SUMMARY_COLUMN].tolist()[0] == 4 and pd.isna(out[COMPUTED_SUMMARY_COLUMN].iloc[1])
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    again = add_computed_summary_star(out)  # replaced in place, not added twice
    assert list(again.columns) == list(out.columns)
    with pytest.raises(ExtractError, match="H_COMP_7_STAR_RATING"):
        add_computed_summary_star(frame.drop(columns="H_COMP_7_STAR_RATING"))


def test_cms_layout_round_trips_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    frame = _cms_frame()
    with open(source, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(frame.columns)
        writer.writerows(frame.itertuples(index=False, name=None))
    read = read_cms_layout(source)
    assert read["Provider.ID"].tolist() == ["010001", "010002"]  # leading zeros kept
    assert read["Location"].iloc[0] == "1 MAIN ST\r\nDOTHAN, AL"
    write_cms_layout(read, tmp_path / "same.csv")
    assert (tmp_path / "same.csv").read_bytes() == source.read_bytes()
    write_cms_layout(add_computed_summary_star(read), tmp_path / "out.csv")
    back = read_cms_layout(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(back[read.columns], read)
    assert back[COMPUTED_SUMMARY_COLUMN].tolist() == ["4", ""]


def test_read_cms_layout_refuses_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n3\r\n")
    with pytest.raises(ExtractError, match="record 3"):
        read_cms_layout(path)
    with pytest.raises(ExtractError, match="cannot read"):
        read_cms_layout(tmp_path / "absent.csv")


@pytest.mark.shared_data
def test_every_published_summary_star_in_the_shared_hcahps_file_is_reproduced(
    shared_data: Path, tmp_path: Path
) -> None:
    path = shared_data / HCAHPS_FILE
    frame = read_cms_layout(path)
    out = add_computed_summary_star(frame)
    published = pd.to_numeric(frame[CMS_SUMMARY_COLUMN].str.strip(), errors="coerce")
    checked = published.notna()
    assert checked.sum() > 2000
    computed = out.loc[checked, COMPUTED_SUMMARY_COLUMN]
    mismatch = frame.loc[checked & (out[COMPUTED_SUMMARY_COLUMN] != published).fillna(True), "Provider.ID"]
    assert mismatch.empty, f"{len(mismatch)} of {checked.sum()} differ, e.g. {mismatch.head().tolist()}"
    assert computed.notna().all()

    write_cms_layout(out, tmp_path / "out.csv")
    back = read_cms_layout(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(back[frame.columns], frame)
    assert back[COMPUTED_SUMMARY_COLUMN].tolist() == [str(v) for v in out[COMPUTED_SUMMARY_COLUMN]]
    write_cms_layout(frame, tmp_path / "same.csv")
    assert (tmp_path / "same.csv").read_bytes() == path.read_bytes()


@pytest.mark.shared_data
def test_published_measure_stars_are_a_step_function_of_the_whole_number_scores(shared_data: Path) -> None:
    """star_ratings with the cut points a period implies reproduces every published measure star."""
    frame = read_cms_layout(shared_data / HCAHPS_FILE)
    long = pd.concat(
        [
            pd.DataFrame(
                {
                    "measure": m,
                    "linear_score": pd.to_numeric(frame[f"{m}_LINEAR_SCORE"], errors="coerce"),
                    "published": pd.to_numeric(frame[f"{m}{CMS_STAR_SUFFIX}"], errors="coerce"),
                    "n": pd.to_numeric(frame["Number.of.Completed.Surveys"], errors="coerce"),
                }
            )
            for m in HCAHPS_MEASURES
        ],
        ignore_index=True,
    ).dropna()
    cuts = infer_cut_points(long, star_col="published")
    assert set(cuts) == set(HCAHPS_MEASURES)
    out = star_ratings(long, cuts, decimals=0)
    assert len(out) > 20_000
    assert (out["star"] == out["published"]).all()
