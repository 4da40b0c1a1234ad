"""SERVQUAL: service-quality gaps (perception minus expectation) per dimension.

Parasuraman, Zeithaml & Berry (1985), "A conceptual model of service quality and its
implications for future research", *Journal of Marketing* 49(4): 41-50, found ten
dimensions on which customers judge a service: reliability, responsiveness, competence,
access, courtesy, communication, credibility, security, understanding (knowing) the
customer - here the patient - and tangibles. Their SERVQUAL scale (Parasuraman, Zeithaml &
Berry 1988, "SERVQUAL: a multiple-item scale for measuring consumer perceptions of service
quality", *Journal of Retailing* 64(1): 12-40) consolidated them into five, RATER:
reliability, assurance (competence, courtesy, credibility, security), tangibles, empathy
(access, communication, understanding the customer) and responsiveness. The mapping is
:data:`TEN_TO_RATER`.

Each item asks what patients expect of an excellent service and what they perceived of
this one. A response's gap on a dimension is the mean of its perception items minus the
mean of its expectation items for that dimension; a negative gap is a shortfall. A group's
gap is the mean of its responses' gaps, with a Student-t interval from
:func:`pipelines.analyse.intervals.grouped_mean`, so that the uncertainty is that of the
paired differences, not of two separate means. Survey items map onto dimensions through
configuration (:func:`assign_dimensions`), never in code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.analyse.intervals import grouped_mean
from pipelines.errors import ConfigError

# Dimensions, the ten -> five map and answer kinds are survey vocabulary (pipelines.surveys).
from pipelines.surveys import (
    EXPECTATION,
    KINDS,
    PERCEPTION,
    RATER_DIMENSIONS,
    TEN_DIMENSIONS,
    TEN_TO_RATER,
)

#: Spellings accepted for ``understanding_the_patient`` (the 1985 paper's "understanding /
#: knowing the customer").
_ALIASES = {
    "understanding": "understanding_the_patient",
    "understanding_the_customer": "understanding_the_patient",
    "knowing_the_patient": "understanding_the_patient",
    "knowing_the_customer": "understanding_the_patient",
    "understanding_knowing_the_customer": "understanding_the_patient",
}

_OUTPUT = (
    "n_responses",
    "mean_expectation",
    "mean_perception",
    "perception_low",
    "perception_high",
    "gap",
    "gap_low",
    "gap_high",
)


def _name(value: object) -> str:
    """Lower-case snake_case ("Understanding the patient" -> understanding_the_patient)."""
    text = re.sub(r"[^0-9a-z]+", "_", str(value).strip().casefold()).strip("_")
    return _ALIASES.get(text, text)


def _factorised(names: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes into the distinct normalised names (missing -> the last, ""): the text work is
    done once per distinct value, not per answer."""
    codes, distinct = pd.factorize(names.astype("object"), use_na_sentinel=True)
    normal = [_name(v) for v in distinct] + [""]
    return np.where(codes < 0, len(normal) - 1, codes), normal


def _normalise(names: pd.Series) -> pd.Series:
    codes, normal = _factorised(names)
    return pd.Series(np.asarray(normal, dtype=object)[codes], index=names.index, dtype="object")


def assign_dimensions(
    answers: pd.DataFrame,
    item_dimensions: Mapping[str, str],
    *,
    item_col: str = "item",
    unmapped: Literal["error", "drop"] = "error",
) -> pd.DataFrame:
    """``answers`` with a ``dimension`` column from the configured item -> dimension map.

    A dimension is one of :data:`TEN_DIMENSIONS` or, for instruments written on the five
    (the 22-item SERVQUAL of 1988), one of :data:`RATER_DIMENSIONS`. Items the map does not
    know are an error unless ``unmapped="drop"`` (a survey that also asks about other
    things)."""
    known = set(TEN_DIMENSIONS) | set(RATER_DIMENSIONS)
    mapping = pd.Series(dict(item_dimensions), dtype="object")
    bad = sorted(set(_normalise(mapping)) - known) if len(mapping) else []
    if bad:
        raise ConfigError(f"SERVQUAL item map: unknown dimension(s) {', '.join(bad)}")
    if item_col not in answers.columns:
        raise ValueError(f"assign_dimensions: missing column {item_col}")
    out = answers.copy()
    out["dimension"] = _normalise(answers[item_col].map(mapping))
    missing = out["dimension"] == ""
    if missing.any():
        if unmapped == "error":
            items = sorted(map(str, answers.loc[missing, item_col].unique()))
            raise ConfigError(f"SERVQUAL item map: no dimension for item(s) {', '.join(items[:20])}")
        out = out.loc[~missing]
    return out


def _dimensions(raw: pd.Series, level: str) -> pd.Series:
    """Normalise and check the dimension column, then roll it up to ``level`` (categorical,
    categories in canonical order)."""
    codes, normal = _factorised(raw)
    present = {normal[c] or "(blank)" for c in np.unique(codes)}
    if level == "ten":
        unknown = sorted(present - set(TEN_DIMENSIONS))
        if unknown:
            hint = (
                " (assurance and empathy exist only at level='rater')"
                if {"assurance", "empathy"} & set(unknown)
                else ""
            )
            raise ConfigError(f"SERVQUAL: not one of the ten dimensions: {', '.join(unknown)}{hint}")
        categories, target = TEN_DIMENSIONS, normal
    elif level == "rater":
        unknown = sorted(present - set(TEN_DIMENSIONS) - set(RATER_DIMENSIONS))
        if unknown:
            raise ConfigError(f"SERVQUAL: not a SERVQUAL dimension: {', '.join(unknown)}")
        categories, target = RATER_DIMENSIONS, [TEN_TO_RATER.get(n, n) for n in normal]
    else:
        raise ValueError(f"level must be 'ten' or 'rater', got {level!r}")
    position = np.array([categories.index(t) if t in categories else -1 for t in target], dtype=np.int64)
    return pd.Series(pd.Categorical.from_codes(position[codes], categories=list(categories)), index=raw.index)


def dimension_gaps(
    answers: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    level: Literal["ten", "rater"] = "ten",
    confidence: float = 0.95,
    min_n: int = 1,
    response_col: str = "response_id",
    dimension_col: str = "dimension",
    kind_col: str = "kind",
    value_col: str = "value",
) -> pd.DataFrame:
    """Per group and dimension: the SERVQUAL gap and its confidence interval.

    ``answers`` is long, one row per response and item: ``response_col``, the group
    columns ``by`` (facility, ward, month), ``dimension_col`` (one of the ten, or of the
    five when ``level="rater"``), ``kind_col`` (``expectation`` or ``perception``) and a
    numeric ``value_col`` (1-7 or 1-5 Likert; blanks and "not applicable" are left out).

    Returns ``by`` + ``dimension``, ``basis``, ``n_responses``, ``mean_expectation``,
    ``mean_perception``, ``perception_low`` / ``perception_high``, ``gap``, ``gap_low`` /
    ``gap_high``, ``suppressed``, ``suppression_reason``.

    * ``basis="paired"`` when the survey asks expectation items for the dimension (anywhere
      in ``answers``): only responses that answered both kinds for it count
      (``n_responses``), and the means are over those same responses, so ``gap`` equals
      ``mean_perception - mean_expectation``. A response with perception items only is left
      out of that dimension's gap.
    * ``basis="perception_only"`` when it does not (a perception-only survey): the mean
      perception of the responses that answered, with its interval; the gap and
      expectation columns are NA. Deciding per dimension over the whole survey, not per
      ward, keeps one ward's missing expectations from switching its figures to another basis.

    At ``level="rater"`` a response's items of the ten dimensions that form one of the five
    are pooled before its means are taken. Groups with fewer than ``min_n`` responses keep
    their row and ``n_responses`` with the statistics NA; intervals need 2 responses.
    """
    keys = list(by)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if min_n < 0:
        raise ConfigError(f"min_n must be at least 0, got {min_n}")
    need = [response_col, *keys, dimension_col, kind_col, value_col]
    missing = [c for c in need if c not in answers.columns]
    if missing:
        raise ValueError(f"dimension_gaps answers: missing column(s) {', '.join(missing)}")

    frame = answers[[response_col, *keys]].copy()
    frame["dimension"] = _dimensions(answers[dimension_col], level)
    frame["_kind"] = _normalise(answers[kind_col])
    bad_kinds = sorted(set(pd.unique(frame["_kind"].to_numpy())) - set(KINDS))
    if bad_kinds:
        raise ValueError(f"dimension_gaps: {kind_col} must be expectation or perception, got {', '.join(bad_kinds)}")
    frame["_value"] = pd.to_numeric(answers[value_col], errors="coerce")
    frame = frame.loc[frame["_value"].notna()]
    has_expectation = {str(d) for d in pd.unique(frame.loc[frame["_kind"] == EXPECTATION, "dimension"].to_numpy())}

    # One row per response and dimension: mean of its expectation and of its perception items.
    cell = [*keys, "dimension", response_col]
    means = [
        frame.loc[frame["_kind"] == kind]
        .groupby(cell, dropna=False, observed=True, sort=False)["_value"]
        .mean()
        .rename(kind)
        .reset_index()
        for kind in KINDS
    ]
    per = means[0].merge(means[1], on=cell, how="outer")

    paired_basis = per["dimension"].astype(str).isin(has_expectation).to_numpy()
    e = per[EXPECTATION].to_numpy(dtype=np.float64, na_value=np.nan)
    p = per[PERCEPTION].to_numpy(dtype=np.float64, na_value=np.nan)
    both = ~np.isnan(e) & ~np.isnan(p)
    counted = np.where(paired_basis, both, ~np.isnan(p))
    e_used = np.where(paired_basis & both, e, np.nan)
    p_used = np.where(counted, p, np.nan)
    gap = p_used - e_used  # NaN unless the response answered both kinds

    groups = per.groupby([*keys, "dimension"], dropna=False, observed=True, sort=True)
    codes = groups.ngroup().to_numpy()
    out = groups.size().rename("_rows").reset_index().drop(columns="_rows")
    k = len(out)
    out["basis"] = np.where(out["dimension"].astype(str).isin(has_expectation), "paired", "perception_only")
    out["n_responses"] = np.bincount(codes, weights=counted.astype(np.float64), minlength=k).astype(np.int64)
    out["mean_expectation"] = grouped_mean(e_used, codes, k, confidence)[0]
    out["mean_perception"], out["perception_low"], out["perception_high"] = grouped_mean(p_used, codes, k, confidence)
    out["gap"], out["gap_low"], out["gap_high"] = grouped_mean(gap, codes, k, confidence)

    n = out["n_responses"].to_numpy()
    none, small = n == 0, (n > 0) & (n < min_n)
    out["suppressed"] = none | small
    reason = np.select(
        [none & (out["basis"] == "paired").to_numpy(), none, small],
        ["no response answered both expectation and perception", "no responses", f"fewer than {min_n} responses"],
        default="",
    ).astype(object)
    reason[~out["suppressed"].to_numpy()] = None
    out["suppression_reason"] = pd.Series(reason, index=out.index, dtype="object")
    out.loc[out["suppressed"], list(_OUTPUT[1:])] = np.nan
    out["dimension"] = out["dimension"].astype(str)
    return out[[*keys, "dimension", "basis", *_OUTPUT, "suppressed", "suppression_reason"]]


__all__ = [
    "EXPECTATION",
    "KINDS",
    "PERCEPTION",
    "RATER_DIMENSIONS",
    "TEN_DIMENSIONS",
    "TEN_TO_RATER",
    "assign_dimensions",
    "dimension_gaps",
]
