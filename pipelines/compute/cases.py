"""The cases behind a number: which subjects a committee should look at when an
indicator is off target.

The rule depends on what the indicator counts, so it is decided from the indicator's
own scoring and improvement notation:

* lower is better (falls, pressure injuries, complaints): the numerator cases, i.e. the
  events themselves (for ratios, subjects with at least one event);
* higher is better (prophylaxis given, BP controlled): eligible subjects who did NOT
  meet the numerator, i.e. the missed opportunities; exclusions are left out because
  they were never expected to meet it;
* continuous measures: eligible subjects whose own value is worse than the target (all
  eligible subjects when there is no target), worst first.

Pure over the ``indicator_subjects`` rows; the report decides how many to show.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipelines.compute.model import Improvement, Indicator, Scoring


@dataclass(frozen=True)
class Cases:
    """The selected subject rows, in the order to show them, and the rule that chose them."""

    rows: pd.DataFrame
    rule: str


def case_selection(subjects: pd.DataFrame, indicator: Indicator, period: str, target: float | None) -> Cases:
    """The subjects of ``indicator`` in ``period`` behind its number (see the module docstring)."""
    s = subjects[
        (subjects["indicator_id"].astype("string") == indicator.id) & (subjects["period"].astype("string") == period)
    ]

    def flag(col: str) -> pd.Series:
        if col not in s.columns:
            return pd.Series(False, index=s.index)
        return s[col].astype("boolean").fillna(False).astype(bool)

    eligible = flag("denominator") & ~flag("denominator_exclusion")
    decrease = indicator.improvement is Improvement.DECREASE
    if indicator.scoring is Scoring.CONTINUOUS:
        obs = pd.to_numeric(s.get("observation", pd.Series(index=s.index, dtype="Float64")), errors="coerce")
        mask = eligible & obs.notna()
        if target is not None:
            mask &= (obs > target) if decrease else (obs < target)
        chosen = s[mask].assign(_sort=(-obs if decrease else obs)[mask].astype(float))
        chosen = chosen.sort_values(["_sort", "subject_id"], kind="mergesort").drop(columns="_sort")
        if target is None:
            return Cases(chosen, "Eligible cases, worst value first.")
        return Cases(chosen, "Eligible cases whose own value is worse than the target, worst first.")
    if decrease:
        in_num = flag("numerator") & ~flag("numerator_exclusion")
        if "numerator_events" in s.columns:
            events = pd.to_numeric(s["numerator_events"], errors="coerce").fillna(0).gt(0)
            in_num |= events & ~flag("numerator_exclusion")
        mask = in_num & ~flag("denominator_exclusion")
        rule = "Cases counted in the numerator (the events behind the rate)."
    else:
        mask = eligible & ~flag("numerator") & ~flag("numerator_exclusion")
        rule = "Eligible cases that did not meet the numerator (missed opportunities); exclusions left out."
    chosen = s[mask]
    sort_cols = [c for c in ("facility_id", "ward_id", "service", "subject_id") if c in chosen.columns]
    return Cases(chosen.sort_values(sort_cols, kind="mergesort", na_position="last"), rule)


__all__ = ["Cases", "case_selection"]
