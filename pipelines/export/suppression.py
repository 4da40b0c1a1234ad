"""Small-number suppression for regulator exports.

Rule (documented for the data-protection officer; threshold t, default 11, i.e. the
CMS cell-size policy of suppressing 1-10):

1. Primary: every published count (initial population, denominator, denominator
   exclusion, numerator, numerator exclusion) with 1 <= count < t is suppressed. Zero is
   published: it discloses nothing about an individual.
2. Complementary (secondary): published counts add up. Within one indicator and count
   column, (a) the strata of a stratifier add up to their facility's unstratified row,
   and (b) the facilities add up to the system row ("ALL") of the same stratum. In
   every such equation (members + total) exactly one suppressed cell could be
   recovered by subtraction, so whenever an equation holds exactly one suppressed cell
   another is suppressed: the smallest non-zero published member, else the total, else
   a zero member. Suppressing a cell can break another equation (a facility total is
   also a member of the system equation), so the pass repeats until nothing changes.
   The flag does not say which cells were primary, since that would reveal the range.
3. Derived values: a row's measure score, confidence interval and red/amber/green
   status are blanked when any count that enters the score (denominator, exclusions,
   numerator) is suppressed, or when a ratio's event count is itself 1..t-1: score x
   exposure would give it back. The status goes with the score: "green" on a row whose
   target is 100% says the score is 100%, and with a small published denominator a
   status narrows a suppressed numerator to a few candidates.

Equations are treated as exact even where strata might not partition the total
(e.g. a stratum left out for a missing ward); that only ever suppresses more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipelines.errors import ExportError
from pipelines.tables import ALL_FACILITIES, OVERALL, POPULATIONS

#: Counts that enter a measure score (initial population alone does not).
SCORE_INPUTS = ("denominator", "denominator_exclusion", "numerator", "numerator_exclusion")
DERIVED = ("measure_score", "ci_low", "ci_high", "status")


def flag_column(name: str) -> str:
    return f"suppressed_{name}"


def _equations(frame: pd.DataFrame) -> list[tuple[list[int], int]]:
    """(members, total) row positions of every additive relation between rows."""
    pos = {
        (r.indicator_id, r.facility_id, r.stratifier, r.stratum): i
        for i, r in enumerate(frame[["indicator_id", "facility_id", "stratifier", "stratum"]].itertuples())
    }
    eqs: list[tuple[list[int], int]] = []
    strat = frame[frame["stratifier"] != OVERALL[0]]
    for (iid, fid, _s), g in strat.groupby(["indicator_id", "facility_id", "stratifier"], sort=True):
        total = pos.get((iid, fid, *OVERALL))
        if total is not None:
            eqs.append((list(g.index), total))
    facs = frame[frame["facility_id"] != ALL_FACILITIES]
    for (iid, s, t), g in facs.groupby(["indicator_id", "stratifier", "stratum"], sort=True):
        total = pos.get((iid, ALL_FACILITIES, s, t))
        if total is not None:
            eqs.append((list(g.index), total))
    return eqs


def _pick(values: np.ndarray, mask: np.ndarray, members: Sequence[int], total: int) -> int:
    free = [m for m in members if not mask[m]]
    nonzero = sorted((values[m], m) for m in free if values[m] > 0)
    if nonzero:
        return nonzero[0][1]
    if not mask[total]:
        return total
    return free[0]


def apply_suppression(frame: pd.DataFrame, threshold: int = 11) -> pd.DataFrame:
    """``frame`` (one period, sorted, unique keys) plus boolean ``suppressed_<col>``
    columns for each count and for the derived score columns. Values are not blanked
    here; writers blank what is flagged."""
    if threshold < 1:
        raise ExportError(f"small-number threshold must be at least 1, got {threshold}")
    frame = frame.reset_index(drop=True)
    values = {c: frame[c].fillna(0).to_numpy(dtype="int64") for c in POPULATIONS}
    masks = {c: (values[c] >= 1) & (values[c] < threshold) for c in POPULATIONS}
    eqs = _equations(frame)
    changed = True
    while changed:
        changed = False
        for members, total in eqs:
            for c in POPULATIONS:
                m = masks[c]
                cells = [*members, total]
                if int(m[cells].sum()) == 1:
                    m[_pick(values[c], m, members, total)] = True
                    changed = True
    out = frame.copy()
    for c in POPULATIONS:
        out[flag_column(c)] = masks[c]
    events = frame["numerator_events"].fillna(0).to_numpy(dtype="int64")
    derived = np.zeros(len(frame), dtype=bool)
    for c in SCORE_INPUTS:
        derived |= masks[c]
    derived |= (events >= 1) & (events < threshold)
    for c in DERIVED:
        out[flag_column(c)] = derived
    return out


def suppressed_fields(row: pd.Series | dict) -> list[str]:
    """Names of the blanked fields of one flagged row, in column order."""
    return [c for c in (*POPULATIONS, *DERIVED) if bool(row[flag_column(c)])]


__all__ = ["DERIVED", "SCORE_INPUTS", "apply_suppression", "flag_column", "suppressed_fields"]
