"""Patient-experience scoring the way CMS scores HCAHPS, for any survey laid out like it.

What is computed, and where the rules come from:

* **Box scores.** Every answer falls in the top, middle or bottom box of its question's
  scale: *always* is the top box, *usually* the middle and *sometimes / never* the bottom
  for the frequency questions; 9-10 / 7-8 / 0-6 for the 0-10 hospital rating; *definitely
  yes* / *probably yes* / *probably or definitely no* for recommending the hospital;
  *strongly agree* / *agree* / *disagree or strongly disagree* for care transition; yes / no
  for discharge information (no middle box). A question's box score is the share of its
  valid answers in that box; a composite's box score is the mean of its questions' box
  scores, as in the top / middle / bottom-box columns of the Hospital Compare HCAHPS files
  (H_COMP_1_A_P / _U_P / _SN_P, H_HSP_RATING_9_10 / 7_8 / 0_6, ...).
* **Linear mean scores (0-100).** Each category is given an evenly spaced value from 0 for
  the worst to 100 for the best (never 0, sometimes 33 1/3, usually 66 2/3, always 100; the
  0-10 rating times 10; yes 100, no 0). A question's linear mean score is the mean over its
  valid answers; a composite's is the mean of its questions' scores (CMS, *Technical Notes
  for HCAHPS Star Ratings*, "HCAHPS linear mean scores"). CMS adjusts its scores for survey
  mode and patient mix before it publishes them or rates them. The scores here are **not
  adjusted**, so a ward's score is comparable with other wards of the same survey, and only
  roughly with CMS's published hospital scores.
* **Star ratings.** A measure's star is 1 plus the number of its four cut points at or
  below the score. CMS derives the cut points each reporting period by clustering all
  hospitals' linear mean scores and publishes them in that period's *Technical Notes for
  HCAHPS Star Ratings* (hcahpsonline.org). No default cut points are shipped: none could
  be found in a source this project can cite, and they change every quarter. They are
  configuration (a mapping measure -> 4 ascending cut points); :func:`infer_cut_points` can
  recover the cut points a published period's own stars imply.
* **Summary star.** The mean of 8 values, rounded half up: the stars of the six composites
  H_COMP_1, 2, 3, 5, 6 and 7, the mean of the cleanliness and quietness stars, and the mean
  of the overall-rating and recommend stars (CMS Technical Notes, "HCAHPS Summary Star
  Rating"). While pain management (H_COMP_4) was publicly reported it was a ninth value
  (the October 2015 Technical Notes star 11 measures); pass ``components`` for such periods.
  A hospital missing any of these stars has no summary star.
* **Minimum responses.** CMS publishes no star rating for a hospital with fewer than 100
  completed surveys (:data:`CMS_MIN_SURVEYS`). Scores and stars for groups below a
  configurable minimum are suppressed (NA) with the reason in a column, never dropped.

Everything here is a pure function of DataFrames, vectorised over groups (wards,
facilities, months), with no file access except :func:`read_cms_layout` and
:func:`write_cms_layout`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from pipelines.errors import ConfigError, ExtractError, OutputError

#: CMS publishes no HCAHPS star rating below this many completed surveys (Technical Notes).
CMS_MIN_SURVEYS = 100

#: The HCAHPS measures that receive a star rating, with their Hospital Compare names.
HCAHPS_MEASURES: dict[str, str] = {
    "H_COMP_1": "Communication with nurses",
    "H_COMP_2": "Communication with doctors",
    "H_COMP_3": "Responsiveness of hospital staff",
    "H_COMP_5": "Communication about medicines",
    "H_COMP_6": "Discharge information",
    "H_COMP_7": "Care transition",
    "H_CLEAN": "Cleanliness of hospital environment",
    "H_QUIET": "Quietness of hospital environment",
    "H_HSP_RATING": "Overall hospital rating",
    "H_RECMND": "Willingness to recommend the hospital",
}

#: The 8 values whose rounded mean is the HCAHPS Summary Star Rating: a tuple of several
#: measures stands for the mean of their stars.
SUMMARY_COMPONENTS: tuple[tuple[str, ...], ...] = (
    ("H_COMP_1",),
    ("H_COMP_2",),
    ("H_COMP_3",),
    ("H_COMP_5",),
    ("H_COMP_6",),
    ("H_COMP_7",),
    ("H_CLEAN", "H_QUIET"),
    ("H_HSP_RATING", "H_RECMND"),
)

#: Suffix of the star columns in the Hospital Compare HCAHPS files (H_COMP_1_STAR_RATING, ...).
CMS_STAR_SUFFIX = "_STAR_RATING"
#: The published summary star column of those files.
CMS_SUMMARY_COLUMN = "H_STAR_RATING"
#: The column :func:`add_computed_summary_star` adds.
COMPUTED_SUMMARY_COLUMN = "computed_summary_star"

_BOXES = ("top", "middle", "bottom")


def _key(value: Any) -> str | None:
    """Answer text as it is matched against a scale: case, spacing and ``9`` vs ``9.0`` ignored."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return str(value).casefold()
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = " ".join(str(value).split()).casefold()
    return text or None


@dataclass(frozen=True)
class Scale:
    """One question's answer scale: categories worst to best, their linear scores, their boxes.

    ``scores`` are the 0-100 linear-score values of ``categories`` (same order). Every
    category belongs to exactly one of ``top`` / ``middle`` / ``bottom``; ``middle`` may be
    empty (yes / no questions), and then the question's middle-box share is NA, not 0.
    Answers that are not a category (missing, "don't know", a skipped question) are not
    valid answers: CMS leaves them out of both numerator and denominator.
    """

    categories: tuple[str, ...]
    scores: tuple[float, ...]
    top: tuple[str, ...]
    bottom: tuple[str, ...]
    middle: tuple[str, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        label = self.name or "scale"
        keys = [_key(c) for c in self.categories]
        if len(self.categories) < 2:
            raise ConfigError(f"{label}: a scale needs at least 2 categories")
        if None in keys or len(set(keys)) != len(keys):
            raise ConfigError(f"{label}: categories must be distinct and non-empty, got {self.categories!r}")
        if len(self.scores) != len(self.categories):
            raise ConfigError(f"{label}: {len(self.categories)} categories but {len(self.scores)} scores")
        if not all(math.isfinite(s) and 0.0 <= s <= 100.0 for s in self.scores):
            raise ConfigError(f"{label}: linear scores must lie in 0..100, got {self.scores!r}")
        if not self.top or not self.bottom:
            raise ConfigError(f"{label}: the top and bottom boxes need at least one category each")
        boxed = [_key(c) for c in (*self.top, *self.middle, *self.bottom)]
        if sorted(boxed, key=str) != sorted(keys, key=str):
            raise ConfigError(
                f"{label}: every category must be in exactly one of top / middle / bottom "
                f"(categories {self.categories!r}, top {self.top!r}, middle {self.middle!r}, bottom {self.bottom!r})"
            )

    def box_of(self, category: str) -> str:
        k = _key(category)
        for box, members in (("top", self.top), ("middle", self.middle), ("bottom", self.bottom)):
            if k in {_key(m) for m in members}:
                return box
        raise KeyError(category)

    def table(self) -> pd.DataFrame:
        """One row per category: matching key, linear score and box."""
        return pd.DataFrame(
            {
                "_key": [_key(c) for c in self.categories],
                "_score": np.asarray(self.scores, dtype=np.float64),
                "_box": [self.box_of(c) for c in self.categories],
            }
        )


def linear_scale(
    categories: Sequence[Any], *, top: Sequence[Any], bottom: Sequence[Any], middle: Sequence[Any] = (), name: str = ""
) -> Scale:
    """A scale whose categories (worst first) get evenly spaced scores 0..100, as CMS scores HCAHPS."""
    cats = tuple(str(c) for c in categories)
    k = len(cats) - 1
    scores = tuple(100.0 * i / k for i in range(len(cats))) if k > 0 else (0.0,)
    return Scale(
        categories=cats,
        scores=scores,
        top=tuple(str(c) for c in top),
        middle=tuple(str(c) for c in middle),
        bottom=tuple(str(c) for c in bottom),
        name=name,
    )


#: never / sometimes / usually / always (nurse and doctor communication, responsiveness,
#: medicines, cleanliness, quietness): always = top, usually = middle, sometimes or never = bottom.
FREQUENCY = linear_scale(
    ("never", "sometimes", "usually", "always"),
    top=("always",),
    middle=("usually",),
    bottom=("never", "sometimes"),
    name="frequency",
)
#: 0-10 overall rating: 9-10 top, 7-8 middle, 0-6 bottom; linear score = answer x 10.
RATING_0_10 = linear_scale(range(11), top=(9, 10), middle=(7, 8), bottom=(0, 1, 2, 3, 4, 5, 6), name="rating 0-10")
#: Would you recommend this hospital: definitely yes top, probably yes middle, probably / definitely no bottom.
RECOMMEND = linear_scale(
    ("definitely no", "probably no", "probably yes", "definitely yes"),
    top=("definitely yes",),
    middle=("probably yes",),
    bottom=("probably no", "definitely no"),
    name="recommend",
)
#: Discharge information: yes 100 (top), no 0 (bottom), no middle box.
YES_NO = linear_scale(("no", "yes"), top=("yes",), bottom=("no",), name="yes/no")
#: Care transition: strongly agree top, agree middle, disagree / strongly disagree bottom.
AGREEMENT = linear_scale(
    ("strongly disagree", "disagree", "agree", "strongly agree"),
    top=("strongly agree",),
    middle=("agree",),
    bottom=("disagree", "strongly disagree"),
    name="agreement",
)

#: The scale of each HCAHPS measure's questions.
HCAHPS_SCALES: dict[str, Scale] = {
    "H_COMP_1": FREQUENCY,
    "H_COMP_2": FREQUENCY,
    "H_COMP_3": FREQUENCY,
    "H_COMP_5": FREQUENCY,
    "H_COMP_6": YES_NO,
    "H_COMP_7": AGREEMENT,
    "H_CLEAN": FREQUENCY,
    "H_QUIET": FREQUENCY,
    "H_HSP_RATING": RATING_0_10,
    "H_RECMND": RECOMMEND,
}


def round_half_up(values: ArrayLike, decimals: int = 0) -> np.ndarray:
    """Round half away from zero for non-negative scores (3.5 -> 4, 2.5 -> 3), unlike Python's
    ``round`` (banker's rounding, 2.5 -> 2). The value is first rounded to 6 more decimals so
    that float error (``2.675`` stored as 2.67499...) cannot move a half down."""
    x = np.asarray(values, dtype=np.float64)
    scale = 10.0**decimals
    with np.errstate(invalid="ignore"):
        return np.floor(np.round(x * scale, 6) + 0.5) / scale


def _check_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


def _suppress(out: pd.DataFrame, stats: Sequence[str], min_n: int) -> pd.DataFrame:
    """NA the scores of rows below ``min_n`` (and of composites missing a question), with the reason."""
    n = out["n"].to_numpy()
    none = n == 0
    small = (n < min_n) & ~none
    incomplete = out.pop("_incomplete").to_numpy(dtype=bool) & ~none & ~small
    reason = np.select(
        [none, small, incomplete],
        ["no valid answers", f"fewer than {min_n} responses", "a question of the composite has no valid answers"],
        default="",
    ).astype(object)
    suppressed = none | small | incomplete
    reason[~suppressed] = None
    out["suppressed"] = suppressed
    out["suppression_reason"] = pd.Series(reason, index=out.index, dtype="object")
    out.loc[suppressed, list(stats)] = np.nan
    return out


_SCORE_COLUMNS = ("top_box", "middle_box", "bottom_box", "linear_score")


def box_scores(
    answers: pd.DataFrame,
    scales: Mapping[str, Scale],
    *,
    by: Sequence[str] = (),
    question_col: str = "question",
    value_col: str = "answer",
    response_col: str = "response_id",
    composites: Mapping[str, Sequence[str]] | None = None,
    min_n: int = 1,
) -> pd.DataFrame:
    """Top / middle / bottom-box percentages and linear mean scores per group and measure.

    ``answers`` is long: one row per response and question, with the group columns ``by``,
    ``question_col``, ``value_col`` (the answer, matched to the question's scale ignoring
    case and spacing; ``9`` and ``9.0`` both match ``"9"``) and ``response_col``. Questions
    without a scale in ``scales`` are ignored (demographic items, free text). ``composites``
    maps a composite measure to its questions.

    Returns one row per group and measure (questions in ``scales`` order, then composites):
    ``measure``, ``measure_type`` (question / composite), ``n`` (valid answers; for a composite,
    responses with a valid answer to any of its questions), ``n_invalid`` (answers that are
    not a category of the scale), ``top_box`` / ``middle_box`` / ``bottom_box`` (percent,
    0-100), ``linear_score`` (0-100), ``suppressed`` and ``suppression_reason``.

    A composite's scores are the means of its questions' scores, as CMS computes them; it is
    NA when one of its questions has no valid answer in the group (a mean of the remaining
    questions would be a different measure). Groups with ``n`` below ``min_n`` keep their
    row and ``n``, with the scores NA; the stars CMS publishes need 100 completed surveys
    (:data:`CMS_MIN_SURVEYS`, applied by :func:`star_ratings`).
    """
    keys = list(by)
    composites = dict(composites or {})
    if min_n < 0:
        raise ConfigError(f"min_n must be at least 0, got {min_n}")
    for name, questions in composites.items():
        unknown = [q for q in questions if q not in scales]
        if not questions or unknown:
            raise ConfigError(f"composite {name}: questions without a scale: {unknown or 'none given'}")
        if name in scales:
            raise ConfigError(f"composite {name} has the name of a question")
    need = [*keys, question_col, value_col] + ([response_col] if composites else [])
    _check_columns(answers, need, "box_scores answers")

    lookup = pd.concat([scale.table().assign(**{question_col: q}) for q, scale in scales.items()], ignore_index=True)
    frame = answers.loc[answers[question_col].isin(list(scales)), need].copy()
    values = frame[value_col]
    uniq = pd.unique(values.to_numpy(dtype=object))
    frame["_key"] = values.map({u: _key(u) for u in uniq})
    frame = frame.merge(lookup, on=[question_col, "_key"], how="left", sort=False)
    valid = frame["_score"].notna()
    for box in _BOXES:
        frame[f"{box}_box"] = np.where(valid, (frame["_box"] == box) * 100.0, np.nan)
    frame["linear_score"] = frame["_score"]
    frame["_valid"] = valid.astype(np.int64)
    frame["_invalid"] = (~valid).astype(np.int64)

    group_q = [*keys, question_col]
    g = frame.groupby(group_q, dropna=False, sort=False, observed=True)
    q = g[list(_SCORE_COLUMNS)].mean()
    q["n"] = g["_valid"].sum()
    q["n_invalid"] = g["_invalid"].sum()
    q = q.reset_index().rename(columns={question_col: "measure"})
    no_middle = q["measure"].map({name: not s.middle for name, s in scales.items()}).astype(bool)
    q.loc[no_middle, "middle_box"] = np.nan
    q["measure_type"] = "question"
    q["_incomplete"] = False

    parts = [q]
    if composites:
        parts.append(_composite_scores(frame[valid], q, composites, keys, question_col, response_col))
    out = pd.concat(parts, ignore_index=True)
    order = {name: i for i, name in enumerate([*scales, *composites])}
    out["_order"] = out["measure"].map(order)
    out = out.sort_values([*keys, "_order"], kind="stable", na_position="last").drop(columns="_order")
    out = out[[*keys, "measure", "measure_type", "n", "n_invalid", *_SCORE_COLUMNS, "_incomplete"]]
    out = out.reset_index(drop=True)
    out["n"] = out["n"].astype(np.int64)
    out["n_invalid"] = out["n_invalid"].astype(np.int64)
    return _suppress(out, _SCORE_COLUMNS, min_n)


def _composite_scores(
    valid: pd.DataFrame,
    questions: pd.DataFrame,
    composites: Mapping[str, Sequence[str]],
    keys: list[str],
    question_col: str,
    response_col: str,
) -> pd.DataFrame:
    """Composite rows: means of the questions' (unsuppressed) scores; n = distinct responses.

    A mean is taken only over all of the composite's questions: a question with no valid
    answers in the group (or a middle box a yes / no question lacks) makes it NA."""
    members = pd.DataFrame(
        [(name, question) for name, qs in composites.items() for question in dict.fromkeys(qs)],
        columns=["_composite", "measure"],
    )
    size = members.groupby("_composite", sort=False).size().rename("_size")
    q = questions.merge(members, on="measure", how="inner")
    q["_has"] = (q["n"] > 0).astype(np.int64)
    stats = list(_SCORE_COLUMNS)
    g = q.groupby([*keys, "_composite"], dropna=False, sort=False, observed=True)
    total, count = g[stats].sum(), g[stats].count()
    expected = total.index.get_level_values("_composite").map(size).to_numpy()
    comp = (total / count).where(count.to_numpy() == expected[:, None])
    comp["_present"] = g["_has"].sum()
    comp["n_invalid"] = g["n_invalid"].sum()
    comp = comp.reset_index().merge(size, left_on="_composite", right_index=True)
    comp["_incomplete"] = comp["_present"] < comp["_size"]

    answered = valid[[*keys, question_col, response_col]].rename(columns={question_col: "measure"})
    answered = answered.merge(members, on="measure", how="inner")
    n = (
        answered.drop_duplicates([*keys, "_composite", response_col])
        .groupby([*keys, "_composite"], dropna=False, sort=False, observed=True)
        .size()
        .rename("n")
        .reset_index()
    )
    comp = comp.merge(n, on=[*keys, "_composite"], how="left")
    comp["n"] = comp["n"].fillna(0).astype(np.int64)
    comp["measure_type"] = "composite"
    return comp.rename(columns={"_composite": "measure"}).drop(columns=["_present", "_size"])


def validate_cut_points(cut_points: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float, float, float]]:
    """Check the configured cut points: 4 finite, strictly ascending numbers per measure."""
    checked: dict[str, tuple[float, float, float, float]] = {}
    for measure, points in cut_points.items():
        try:
            values = tuple(float(p) for p in points)
        except (TypeError, ValueError):
            raise ConfigError(f"cut points for {measure} must be numbers, got {points!r}") from None
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ConfigError(f"cut points for {measure}: need 4 finite numbers (2..5 stars), got {points!r}")
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ConfigError(f"cut points for {measure} must be strictly ascending, got {points!r}")
        checked[measure] = (values[0], values[1], values[2], values[3])
    return checked


def stars_from_scores(scores: ArrayLike, cut_points: Sequence[float]) -> np.ndarray:
    """Star per score: 1 + the number of cut points at or below it (a score equal to the
    4-star cut point gets 4 stars); NaN scores give 0, which callers turn into NA."""
    s = np.asarray(scores, dtype=np.float64)
    cuts = np.asarray(cut_points, dtype=np.float64)
    stars = 1 + np.searchsorted(cuts, s, side="right")
    return np.where(np.isnan(s), 0, stars).astype(np.int64)


def star_ratings(
    scores: pd.DataFrame,
    cut_points: Mapping[str, Sequence[float]],
    *,
    measure_col: str = "measure",
    score_col: str = "linear_score",
    n_col: str | None = "n",
    min_n: int = CMS_MIN_SURVEYS,
    decimals: int | None = None,
) -> pd.DataFrame:
    """``scores`` with a ``star`` column (nullable Int64, 1-5) and a ``star_reason`` column.

    ``cut_points`` maps a measure to its 4 ascending cut points (the lowest score of 2, 3, 4
    and 5 stars); CMS's are in each period's *Technical Notes for HCAHPS Star Ratings*.
    ``decimals`` rounds the scores half up first: CMS publishes whole-number linear mean
    scores, and in the shared 2017 Hospital Compare file every measure star is a step
    function of those whole numbers, so ``decimals=0`` rates unrounded scores the same way.

    No star, with the reason, when the score is NA or suppressed, the measure has no cut
    points, or ``n_col`` is below ``min_n`` (CMS: 100 completed surveys; ``n_col`` can be any
    count column, e.g. completed surveys per group; ``n_col=None`` when checked elsewhere).
    """
    cuts = validate_cut_points(cut_points)
    _check_columns(scores, [measure_col, score_col] + ([n_col] if n_col else []), "star_ratings scores")
    out = scores.copy()
    values = pd.to_numeric(out[score_col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if decimals is not None:
        values = round_half_up(values, decimals)
    stars = np.zeros(len(out), dtype=np.int64)
    measures = out[measure_col].to_numpy(dtype=object)
    for measure, points in cuts.items():  # one vectorised pass per measure, not per row
        rows = measures == measure
        if rows.any():
            stars[rows] = stars_from_scores(values[rows], points)
    configured = np.isin(measures, list(cuts))
    reason = np.full(len(out), None, dtype=object)
    reason[np.isnan(values)] = "no score"
    reason[~configured] = "no cut points configured"
    if n_col:
        n = pd.to_numeric(out[n_col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        few = ~(n >= min_n) & configured & ~np.isnan(values)
        reason[few] = f"fewer than {min_n} completed surveys"
    ok = pd.isna(reason)
    out["star"] = pd.arrays.IntegerArray(np.where(ok, stars, 0), mask=~ok)
    out["star_reason"] = pd.Series(reason, index=out.index, dtype="object")
    return out


def infer_cut_points(
    scores: pd.DataFrame, *, measure_col: str = "measure", score_col: str = "linear_score", star_col: str = "star"
) -> dict[str, tuple[float, float, float, float]]:
    """The cut points a published period's own stars imply: per measure, the lowest score
    that received 2, 3, 4 and 5 stars. Raises :class:`ConfigError` when the stars are not a
    step function of the scores (two stars share a score range) or a star level is absent,
    since then no cut points reproduce them. Useful to configure :func:`star_ratings` from
    a Hospital Compare file when the Technical Notes of that period are not at hand."""
    frame = scores[[measure_col, score_col, star_col]].copy()
    frame["_s"] = pd.to_numeric(frame[score_col], errors="coerce")
    frame["_star"] = pd.to_numeric(frame[star_col], errors="coerce")
    frame = frame.dropna(subset=["_s", "_star"])
    bounds = frame.groupby([measure_col, "_star"], sort=True)["_s"].agg(["min", "max"])
    result: dict[str, tuple[float, float, float, float]] = {}
    for measure, table in bounds.groupby(level=0, sort=False):
        table = table.droplevel(0)
        if list(table.index) != [1, 2, 3, 4, 5]:
            raise ConfigError(f"{measure}: stars 1-5 are not all present, cut points cannot be inferred")
        if (table["min"].to_numpy()[1:] <= table["max"].to_numpy()[:-1]).any():
            raise ConfigError(f"{measure}: star score ranges overlap, no cut points reproduce them")
        lows = table["min"].to_numpy()[1:]
        result[str(measure)] = (float(lows[0]), float(lows[1]), float(lows[2]), float(lows[3]))
    return result


def _star_values(column: pd.Series) -> np.ndarray:
    """Stars as floats; anything but a whole number 1-5 ("Not Available", "", 2.5) is NaN."""
    if pd.api.types.is_numeric_dtype(column):
        x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = column.astype("object").where(column.notna(), "").astype(str).str.strip()
        x = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isin(x, [1.0, 2.0, 3.0, 4.0, 5.0])
    return np.where(ok, x, np.nan)


def summary_star(
    stars: pd.DataFrame,
    *,
    components: Sequence[Sequence[str]] = SUMMARY_COMPONENTS,
    suffix: str = "",
) -> pd.Series:
    """HCAHPS Summary Star Rating per row of a wide frame of measure stars (nullable Int64).

    The column of measure ``m`` is ``m + suffix`` (``suffix="_STAR_RATING"`` for the
    Hospital Compare files). Each component is the mean of its measures' stars (the
    cleanliness / quietness and rating / recommend pairs); the summary star is the mean of
    the components rounded half up, so 3.5 gives 4 and 2.4375 gives 2. A row missing any
    star, or with a star that is not a whole number 1-5, gets NA: CMS gives no summary star
    then.
    """
    if not components or any(not c for c in components):
        raise ConfigError("summary star components must be non-empty groups of measures")
    needed = list(dict.fromkeys(f"{m}{suffix}" for comp in components for m in comp))
    _check_columns(stars, needed, "summary_star stars")
    values = {name: _star_values(stars[name]) for name in needed}
    parts = np.column_stack(
        [np.mean(np.column_stack([values[f"{m}{suffix}"] for m in comp]), axis=1) for comp in components]
    )
    mean = parts.mean(axis=1)  # NaN if any component is NaN
    rounded = round_half_up(mean)
    missing = np.isnan(rounded)
    result = pd.arrays.IntegerArray(np.where(missing, 0, rounded).astype(np.int64), mask=missing)
    return pd.Series(result, index=stars.index, name="summary_star")


def summary_star_by(
    stars: pd.DataFrame,
    *,
    by: Sequence[str],
    measure_col: str = "measure",
    star_col: str = "star",
    components: Sequence[Sequence[str]] = SUMMARY_COMPONENTS,
) -> pd.DataFrame:
    """Summary star per group (columns ``by`` + ``summary_star``) from the long output of
    :func:`star_ratings`; a group lacking one of the measures gets NA."""
    keys = list(by)
    if not keys:
        raise ValueError("summary_star_by: give the group columns (use summary_star for one wide frame)")
    _check_columns(stars, [*keys, measure_col, star_col], "summary_star_by stars")
    needed = list(dict.fromkeys(m for comp in components for m in comp))
    long = stars.loc[stars[measure_col].isin(needed), [*keys, measure_col, star_col]]
    if long.duplicated([*keys, measure_col]).any():
        raise ValueError("summary_star_by: more than one star per group and measure")
    wide = stars[keys].drop_duplicates().reset_index(drop=True)
    for m in needed:  # one merge per measure (NaN group keys match, as in groupby(dropna=False))
        one = long.loc[long[measure_col] == m, [*keys, star_col]].rename(columns={star_col: m})
        wide = wide.merge(one, on=keys, how="left")
    out = wide[keys].copy()
    out["summary_star"] = summary_star(wide, components=components)
    return out


def add_computed_summary_star(
    frame: pd.DataFrame,
    *,
    column: str = COMPUTED_SUMMARY_COLUMN,
    components: Sequence[Sequence[str]] = SUMMARY_COMPONENTS,
    suffix: str = CMS_STAR_SUFFIX,
) -> pd.DataFrame:
    """A Hospital Compare HCAHPS frame (wide, one row per hospital) with ``column`` added:
    the summary star computed from the row's measure stars (nullable Int64; NA when a star is
    "Not Available" or not a number). Every other column is left as it is; an existing
    ``column`` is replaced in place."""
    needed = list(dict.fromkeys(f"{m}{suffix}" for comp in components for m in comp))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ExtractError(f"not a Hospital Compare HCAHPS layout: missing star column(s) {', '.join(missing)}")
    out = frame.copy()
    out[column] = summary_star(frame, components=components, suffix=suffix)
    return out


def read_cms_layout(path: Path | str, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a Hospital Compare CSV exactly as written: every value a string, nothing parsed
    or converted ("Not Available", leading zeros of a CCN and quoted multi-line addresses
    with CRLF inside are kept), rows in file order. Raises :class:`ExtractError` for a file
    that cannot be read, has no header, repeats a column name or has a ragged row."""
    path = Path(path)
    try:
        with open(path, encoding=encoding, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ExtractError(f"cannot read {path}: {exc}") from None
    if not rows:
        raise ExtractError(f"{path} is empty: a header row is needed")
    header, body = rows[0], rows[1:]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise ExtractError(f"{path}: repeated column name(s) {', '.join(duplicated)}")
    ragged = next((i for i, row in enumerate(body, start=2) if len(row) != len(header)), None)
    if ragged is not None:
        raise ExtractError(f"{path}: record {ragged} has {len(body[ragged - 2])} fields, the header {len(header)}")
    return pd.DataFrame(body, columns=header, dtype="object")


def _cell(value: Hashable, na_rep: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return na_rep
    return str(value)


def write_cms_layout(
    frame: pd.DataFrame,
    path: Path | str,
    *,
    na_rep: str = "",
    encoding: str = "utf-8",
    lineterminator: str = "\r\n",
) -> Path:
    """Write ``frame`` as CSV with Python's csv dialect (minimal quoting, CRLF records, as the
    Hospital Compare files): string values exactly as read by :func:`read_cms_layout`, NA as
    ``na_rep``. A frame read by :func:`read_cms_layout` and written unchanged gives back the
    same bytes. The file appears whole or not at all (written beside, then renamed)."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerow([str(c) for c in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        writer.writerow([_cell(v, na_rep) for v in row])
    data = buffer.getvalue().encode(encoding)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; nothing was replaced") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


__all__ = [
    "AGREEMENT",
    "CMS_MIN_SURVEYS",
    "CMS_STAR_SUFFIX",
    "CMS_SUMMARY_COLUMN",
    "COMPUTED_SUMMARY_COLUMN",
    "FREQUENCY",
    "HCAHPS_MEASURES",
    "HCAHPS_SCALES",
    "RATING_0_10",
    "RECOMMEND",
    "SUMMARY_COMPONENTS",
    "YES_NO",
    "Scale",
    "add_computed_summary_star",
    "box_scores",
    "infer_cut_points",
    "linear_scale",
    "read_cms_layout",
    "round_half_up",
    "star_ratings",
    "stars_from_scores",
    "summary_star",
    "summary_star_by",
    "validate_cut_points",
    "write_cms_layout",
]
