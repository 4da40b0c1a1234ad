"""Small-number suppression for regulator exports.

Rule (documented for the data-protection officer; threshold t, default 11, i.e. the
CMS cell-size policy of suppressing 1-10):

1. **Primary**: every published count with 1 <= count < t is suppressed: the
   populations (initial population, denominator, exclusions, numerator), the score's
   own inputs (a proportion's performance numerator and denominator, a ratio's event
   count, a continuous measure's observation count; see :data:`COUNTS`). Zero is
   published: it discloses nothing about an individual.
2. **Complementary** (secondary): published counts are tied by equations
   (:func:`equations`), and no suppressed cell may be recoverable from them:

   * within one indicator and count column, the strata of a stratifier add up to their
     facility's unstratified row, and the facilities add up to the system row (``ALL``)
     of the same stratum; several stratifiers share the same total, so a total
     suppressed for one stratifier is protected in the others;
   * within one row, a proportion's denominator = its exclusions + its performance
     denominator (likewise the numerator), and a continuous measure's population =
     its exclusions + its observations.

   First, whenever an equation holds exactly one suppressed cell, another is
   suppressed: for a column equation the smallest non-zero published member, else the
   total, else a zero member; for a row equation the total (the population before
   exclusions), so the figures the score is made of stay published. Then an exact
   audit: a suppressed cell is recoverable iff the null space of the equations over
   the suppressed cells is zero at it (chains of equations, e.g. a facility x ward
   table, can give a cell back even when every equation holds two); each recoverable
   cell gets one more partner, and both steps repeat until nothing changes. The flag
   does not say which cells were primary, since that would reveal the range.
3. **Derived values**: a row's score, confidence interval and red/amber/green status
   are blanked only when the counts the score is made of are suppressed (proportion:
   the performance numerator or denominator; ratio: the event count; continuous: the
   observation count), since only then could the score (times a published count) give
   one back. A small exclusion count alone no longer masks a row's score: its
   complementary cell is the population before exclusions. The status goes with the
   score ("green" on a row whose target is 100% says the score is 100%).
4. **Across packages** (:class:`Published`): the months of a year add up to its
   quarters and to the year, so a quarter published beside its months would give back a
   month's suppressed cell by subtraction (and a month a cell its quarter hid). A package
   is therefore suppressed together with the packages of its year already published:
   their cells join the equations, fixed (what they hid stays hidden, what they showed
   stays shown), with one more equation per cell of each sum, and only this package's
   cells are picked as partners.
5. **Rounding** (optional, :func:`rounded`): published counts rounded to a base
   (e.g. 5) after suppression, never before, so rounding cannot turn a small count into
   a published zero or a suppressed count into a published one. Scores, intervals and
   exposure stay exact (a regulator recomputes nothing from rounded counts, and they
   narrow what rounding hides): rounding adds to suppression, it does not replace it.

Equations are treated as exact even where strata might not partition the total
(e.g. a stratum left out for a missing ward); that only ever suppresses more.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.errors import ExportError
from pipelines.tables import ALL_FACILITIES, OVERALL, POPULATIONS

log = logging.getLogger(__name__)

#: Counts a published row can carry: the populations, then what the score is made of.
SCORE_COUNTS = ("performance_numerator", "performance_denominator", "events", "observations")
COUNTS = (*POPULATIONS, *SCORE_COUNTS)
DERIVED = ("measure_score", "ci_low", "ci_high", "status")
#: scoring -> the counts its score is a function of (blank those, and the score goes).
SCORE_INPUTS: dict[str, tuple[str, ...]] = {
    "proportion": ("performance_numerator", "performance_denominator"),
    "ratio": ("events",),
    "continuous": ("observations",),
}
#: scoring -> (total, parts) equations within one row.
ROW_EQUATIONS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "proportion": (
        ("denominator", ("denominator_exclusion", "performance_denominator")),
        ("numerator", ("numerator_exclusion", "performance_numerator")),
    ),
    "ratio": (),
    "continuous": (("denominator", ("denominator_exclusion", "observations")),),
}
#: scoring -> the counts that mean something for it (others are published blank).
APPLICABLE: dict[str, tuple[str, ...]] = {
    "proportion": (*POPULATIONS, "performance_numerator", "performance_denominator"),
    "ratio": (*POPULATIONS, "events"),
    "continuous": ("initial_population", "denominator", "denominator_exclusion", "observations"),
}

Cell = tuple[int, int]  # (row position, COUNTS index)
#: Which package a row belongs to when packages are protected together (0: this one).
PART = "_part"
Equation = tuple[list[Cell], Cell, str]  # members, total, kind ("column" | "row" | "period")


def flag_column(name: str) -> str:
    return f"suppressed_{name}"


def equations(frame: pd.DataFrame) -> list[Equation]:
    """Every additive relation between the cells of ``frame`` (rows in any order, with
    ``indicator_id``, ``facility_id``, ``stratifier``, ``stratum`` and ``scoring``; rows of
    several packages carry a ``_part`` number, and equations stay within a part)."""
    col = {c: k for k, c in enumerate(COUNTS)}
    keys = frame[["indicator_id", "facility_id", "stratifier", "stratum"]].astype(str)
    keys.insert(0, PART, frame[PART].to_numpy() if PART in frame.columns else 0)
    pos = {tuple(r): i for i, r in enumerate(keys.itertuples(index=False))}
    scoring = frame["scoring"].astype(str).to_numpy()
    groups: list[tuple[list[int], int]] = []
    strat = keys[keys["stratifier"] != OVERALL[0]]
    for (part, iid, fid, _s), g in strat.groupby([PART, "indicator_id", "facility_id", "stratifier"], sort=True):
        total = pos.get((part, iid, fid, *OVERALL))
        if total is not None:
            groups.append((list(g.index), total))
    facs = keys[keys["facility_id"] != ALL_FACILITIES]
    for (part, iid, s, t), g in facs.groupby([PART, "indicator_id", "stratifier", "stratum"], sort=True):
        total = pos.get((part, iid, ALL_FACILITIES, s, t))
        if total is not None:
            groups.append((list(g.index), total))
    out: list[Equation] = []
    for members, at in groups:
        for c in APPLICABLE[scoring[at]]:
            k = col[c]
            out.append(([(m, k) for m in members], (at, k), "column"))
    for i, kind in enumerate(scoring):
        for whole, parts in ROW_EQUATIONS[kind]:
            out.append(([(i, col[p]) for p in parts], (i, col[whole]), "row"))
    return out


def _pick(values: np.ndarray, mask: np.ndarray, eq: Equation, fixed: np.ndarray) -> Cell | None:
    """The complementary cell for an equation (see the module docstring), or None;
    ``fixed`` cells (another package's, already published) are never picked."""
    members, total, kind = eq
    if kind == "row":  # the population before exclusions, else the exclusions: the score's counts stay
        for cell in (total, members[0]):
            if not mask[cell] and not fixed[cell]:
                return cell
    free = [m for m in members if not mask[m] and not fixed[m]]
    nonzero = sorted((int(values[m]), m) for m in free if values[m] > 0)
    if nonzero:
        return nonzero[0][1]
    if not mask[total] and not fixed[total]:
        return total
    return free[0] if free else None


def recoverable(mask: np.ndarray, eqs: Sequence[Equation]) -> list[Cell]:
    """Suppressed cells that the equations determine uniquely from the published ones.

    With the published cells moved to the right-hand side, the suppressed unknowns
    satisfy ``A x = b``; cell j is determined iff every vector of the null space of
    ``A`` is zero at j."""
    touched = [eq for eq in eqs if any(mask[c] for c in (*eq[0], eq[1]))]
    unknowns = sorted({c for eq in touched for c in (*eq[0], eq[1]) if mask[c]})
    if not unknowns:
        return []
    at = {c: j for j, c in enumerate(unknowns)}
    a = np.zeros((len(touched), len(unknowns)))
    for i, (members, total, _) in enumerate(touched):
        for m in members:
            if m in at:
                a[i, at[m]] += 1.0
        if total in at:
            a[i, at[total]] -= 1.0
    # the null space needs all of V only when there are fewer equations than unknowns
    _, s, vt = np.linalg.svd(a, full_matrices=a.shape[0] < a.shape[1])
    rank = int((s > 1e-9 * max(1.0, float(s.max(initial=0.0)))).sum())
    null = vt[rank:]
    if null.shape[0] == 0:
        return unknowns
    determined = np.abs(null).max(axis=0) < 1e-9
    return [unknowns[j] for j in np.flatnonzero(determined)]


def _protect(
    values: np.ndarray, mask: np.ndarray, eqs: Sequence[Equation], by_indicator: list[list[int]], fixed: np.ndarray
) -> None:
    """Complementary suppression in place: the one-cell rule, then the exact audit."""
    while True:
        changed = True
        while changed:
            changed = False
            for eq in eqs:
                cells = [*eq[0], eq[1]]
                if sum(bool(mask[c]) for c in cells) == 1:
                    cell = _pick(values, mask, eq, fixed)
                    if cell is not None:
                        mask[cell] = True
                        changed = True
        added = False
        for rows in by_indicator:
            inside = set(rows)
            local = [eq for eq in eqs if eq[1][0] in inside]
            for cell in recoverable(mask, local):
                picks = (_pick(values, mask, eq, fixed) for eq in local if cell in eq[0] or cell == eq[1])
                pick = next((p for p in picks if p is not None), None)
                if pick is not None:
                    mask[pick] = True
                    added = True
                else:  # only published packages' cells left: they already give it away
                    log.warning("suppressed cell %s follows from packages published earlier", cell)
        if not added:
            return


@dataclass(frozen=True)
class Published:
    """Packages already published whose cells add up with this package's: a month with
    its quarter and year, a quarter with its months and year. ``frames`` are their rows
    (as :func:`published_frame` reads them back), by period label; ``sums`` say which
    labels add up to which, with ``""`` for this package. Each cell of a sum is matched
    by indicator, facility, stratifier and stratum; a row a package lacks counts 0."""

    frames: Mapping[str, pd.DataFrame]
    sums: Sequence[tuple[Sequence[str], str]]


def _linking_equations(
    joint: pd.DataFrame, parts: Mapping[str, int], sums: Sequence[tuple[Sequence[str], str]]
) -> list[Equation]:
    keys = joint[["indicator_id", "facility_id", "stratifier", "stratum"]].astype(str)
    where: dict[tuple[int, tuple[str, ...]], int] = {
        (int(p), tuple(k)): i
        for i, (p, *k) in enumerate(zip(joint[PART], *(keys[c] for c in keys.columns), strict=True))
    }
    scoring = joint["scoring"].astype(str).to_numpy()
    out: list[Equation] = []
    for members, total in sums:
        if total not in parts or not all(m in parts for m in members):
            continue  # a package not published: the sum tells nothing about its cells
        ids = [parts[m] for m in members]
        for (part, key), at in where.items():
            if part != parts[total]:
                continue
            rows = [where[(m, key)] for m in ids if (m, key) in where]
            for c in APPLICABLE[scoring[at]]:
                k = COUNTS.index(c)
                out.append(([(r, k) for r in rows], (at, k), "period"))
    return out


def apply_suppression(frame: pd.DataFrame, threshold: int = 11, published: Published | None = None) -> pd.DataFrame:
    """``frame`` (one period's rows from :func:`period.period_results`, with ``scoring``
    and the score counts) plus boolean ``suppressed_<col>`` columns for each count and
    for the derived score columns. Values are not blanked here; writers blank what is
    flagged. With ``published``, the cells of those packages are part of the equations
    (fixed: what they hid stays hidden, what they showed stays shown), so no cell of
    this package or theirs can be recovered by comparing packages."""
    if threshold < 1:
        raise ExportError(f"small-number threshold must be at least 1, got {threshold}")
    frame = frame.reset_index(drop=True)
    if published is not None and published.frames and len(frame):
        return _apply_linked(frame, threshold, published)
    n = len(frame)
    scoring = frame["scoring"].astype(str).to_numpy() if n else np.array([], dtype=object)
    values = np.zeros((n, len(COUNTS)), dtype=np.int64)
    applicable = np.zeros((n, len(COUNTS)), dtype=bool)
    for k, c in enumerate(COUNTS):
        if c in frame.columns:
            values[:, k] = pd.to_numeric(frame[c], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
        applicable[:, k] = [c in APPLICABLE[s] for s in scoring]
    mask = applicable & (values >= 1) & (values < threshold)
    by_indicator = [list(g) for g in frame.groupby("indicator_id", sort=True).indices.values()] if n else []
    _protect(values, mask, equations(frame) if n else [], by_indicator, np.zeros_like(mask))
    return _flagged(frame, mask, scoring)


def _flagged(frame: pd.DataFrame, mask: np.ndarray, scoring: np.ndarray) -> pd.DataFrame:
    n = len(frame)
    out = frame.copy()
    for k, c in enumerate(COUNTS):
        out[flag_column(c)] = mask[:, k]
    derived = np.zeros(n, dtype=bool)
    for i, kind in enumerate(scoring):
        derived[i] = any(mask[i, COUNTS.index(c)] for c in SCORE_INPUTS[kind])
    for c in DERIVED:
        out[flag_column(c)] = derived
    return out


def _apply_linked(frame: pd.DataFrame, threshold: int, published: Published) -> pd.DataFrame:
    labels = sorted(published.frames)
    parts = {"": 0, **{label: k + 1 for k, label in enumerate(labels)}}
    pieces = [frame.assign(**{PART: 0})]
    for label in labels:
        pieces.append(published.frames[label].assign(**{PART: parts[label]}))
    joint = pd.concat(pieces, ignore_index=True)
    scoring = joint["scoring"].astype(str).to_numpy()
    n, own = len(joint), len(frame)
    values = np.zeros((n, len(COUNTS)), dtype=np.int64)
    applicable = np.zeros((n, len(COUNTS)), dtype=bool)
    fixed = np.zeros((n, len(COUNTS)), dtype=bool)
    fixed[own:, :] = True
    mask = np.zeros((n, len(COUNTS)), dtype=bool)
    for k, c in enumerate(COUNTS):
        values[:, k] = pd.to_numeric(joint[c], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
        applicable[:, k] = [c in APPLICABLE[s] for s in scoring]
        mask[own:, k] = joint[flag_column(c)].iloc[own:].fillna(False).to_numpy(dtype=bool)
    mask[:own] = applicable[:own] & (values[:own] >= 1) & (values[:own] < threshold)
    eqs = equations(joint) + _linking_equations(joint, parts, published.sums)
    by_indicator = [list(g) for g in joint.groupby("indicator_id", sort=True).indices.values()]
    _protect(values, mask, eqs, by_indicator, fixed)
    return _flagged(frame, mask[:own], scoring[:own])


def published_frame(header: Sequence[str], rows: Sequence[Mapping[str, str]]) -> pd.DataFrame:
    """A published package's CSV rows as the frame :class:`Published` needs: keys,
    scoring, counts (a blank is 0: unknown to a reader, and never picked) and flags."""
    frame = pd.DataFrame(
        {k: [r[k] for r in rows] for k in ("indicator_id", "facility_id", "stratifier", "stratum", "scoring")}
    )
    for c in COUNTS:
        frame[c] = pd.array([int(r[c]) if r.get(c, "") != "" else 0 for r in rows], dtype="Int64")
        frame[flag_column(c)] = [c in r.get("suppressed", "").split(";") for r in rows]
    return frame


def rounded(value: int, base: int) -> int:
    """``value`` to the nearest multiple of ``base`` (halves up); ``base`` <= 1 keeps it."""
    if base <= 1:
        return int(value)
    return int((int(value) + base // 2) // base * base)


def round_counts(frame: pd.DataFrame, base: int) -> pd.DataFrame:
    """A suppressed frame with every published count rounded to ``base`` (see
    :func:`rounded`); suppressed cells keep their value, which no writer publishes."""
    if base <= 1:
        return frame
    out = frame.copy()
    for c in COUNTS:
        if c in out.columns:
            keep = out[flag_column(c)].to_numpy(dtype=bool)
            new = out[c].map(lambda v: v if pd.isna(v) else rounded(int(v), base)).astype("Int64")
            out[c] = new.where(~keep, out[c])
    return out


def disclosure_controlled(
    frame: pd.DataFrame, threshold: int = 11, rounding: int = 0, published: Published | None = None
) -> pd.DataFrame:
    """Suppression (with the packages already published, when given), then rounding
    (never the other way round): what every writer publishes."""
    if rounding < 0:
        raise ExportError(f"rounding base must be 0 (off) or positive, got {rounding}")
    return round_counts(apply_suppression(frame, threshold, published), rounding)


def suppressed_fields(row: pd.Series | dict) -> list[str]:
    """Names of the blanked fields of one flagged row, in column order."""
    return [c for c in (*COUNTS, *DERIVED) if bool(row[flag_column(c)])]


__all__ = [
    "APPLICABLE",
    "PART",
    "Published",
    "published_frame",
    "COUNTS",
    "DERIVED",
    "ROW_EQUATIONS",
    "SCORE_COUNTS",
    "SCORE_INPUTS",
    "apply_suppression",
    "disclosure_controlled",
    "equations",
    "flag_column",
    "recoverable",
    "round_counts",
    "rounded",
    "suppressed_fields",
]
