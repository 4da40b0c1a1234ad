from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import ExportError
from pipelines.export.period import period_results
from pipelines.export.suppression import (
    COUNTS,
    Published,
    apply_suppression,
    disclosure_controlled,
    equations,
    flag_column,
    recoverable,
    rounded,
)
from pipelines.tables import ALL_FACILITIES, OVERALL, POPULATIONS
from tests.catalogue import with_fields

from .conftest import PERIOD, row, typed


def flags(frame: pd.DataFrame, col: str) -> dict[tuple[str, str, str, str], bool]:
    return {
        (r["indicator_id"], r["facility_id"], r["stratifier"], r["stratum"]): bool(r[flag_column(col)])
        for r in frame.to_dict("records")
    }


@pytest.fixture
def suppressed(results, indicators) -> pd.DataFrame:
    return apply_suppression(period_results(results, indicators, PERIOD), 11)


def test_count_of_five_is_suppressed_and_zero_is_not(suppressed):
    num = flags(suppressed, "numerator")
    assert num[("vte", "F1", "ward", "W1")] is True
    assert flags(suppressed, "numerator_exclusion")[("vte", "F1", "ward", "W1")] is False  # zero is published


def test_a_lone_suppressed_stratum_takes_a_complementary_cell(suppressed):
    num = flags(suppressed, "numerator")
    # F1 overall (60) = W1 (5, primary) + W2 (55): W2 or the total must go too
    assert num[("vte", "F1", "ward", "W2")] or num[("vte", "F1", "overall", "all")]
    # the smallest non-zero published member is preferred, so the facility total stays
    assert num[("vte", "F1", "ward", "W2")] is True
    assert num[("vte", "F1", "overall", "all")] is False


def test_count_at_the_threshold_is_published(indicators):
    frame = typed([row("vte", "ALL", "overall", "all", 11, 11), row("vte", "ALL", "overall", "all", 10, 10)])
    frame.loc[1, "period"] = "2026-11"
    out = apply_suppression(period_results(frame, indicators, PERIOD), 11)
    assert not out[flag_column("numerator")].any()
    out = apply_suppression(period_results(frame, indicators, "2026-11"), 11)
    assert out[flag_column("numerator")].all()


def test_continuous_facility_with_seven_subjects_is_suppressed_with_a_partner(suppressed):
    den = flags(suppressed, "denominator")
    assert den[("days", "F2", "overall", "all")] is True
    # F1 (33) + F2 (7) = ALL (40): one more cell must be hidden
    assert den[("days", "F1", "overall", "all")] or den[("days", "ALL", "overall", "all")]
    score = flags(suppressed, "measure_score")
    assert score[("days", "F2", "overall", "all")] is True


def test_score_and_ci_are_hidden_when_a_count_behind_them_is(suppressed):
    for col in ("measure_score", "ci_low", "ci_high"):
        assert flags(suppressed, col)[("vte", "F1", "ward", "W1")] is True
        assert flags(suppressed, col)[("vte", "F2", "overall", "all")] is False


def test_ratio_score_is_hidden_when_its_event_count_is_small(indicators):
    ratio = with_fields(indicators[0], id="falls", scoring="ratio", unit="per 1,000 patient-days")
    frame = typed([row("falls", "ALL", "overall", "all", 500, 0, score=1.2, events=3, exposure=2500.0)])
    out = apply_suppression(period_results(frame, [ratio], PERIOD), 11)
    assert bool(out.loc[0, flag_column("measure_score")]) is True
    assert not out.loc[0, flag_column("denominator")]


def test_no_suppressed_cell_can_be_recovered_by_subtraction(indicators):
    """Property check on random hierarchies: every additive relation (strata -> facility,
    facilities -> system) holds either no suppressed cell or at least two."""
    rng = np.random.default_rng(20261)
    for _ in range(12):
        rows = []
        n_fac, n_ward = int(rng.integers(1, 4)), int(rng.integers(1, 5))
        cells = rng.integers(0, 25, size=(n_fac, n_ward, 2))
        for f in range(n_fac):
            for w in range(n_ward):
                den, num = int(cells[f, w, 0]) + int(cells[f, w, 1]), int(cells[f, w, 1])
                rows.append(row("vte", f"F{f}", "ward", f"W{f}{w}", den, num, score=0.5))
            rows.append(
                row(
                    "vte",
                    f"F{f}",
                    "overall",
                    "all",
                    int(cells[f, :, :].sum()),
                    int(cells[f, :, 1].sum()),
                    score=0.5,
                )
            )
        for f in range(n_fac):
            for w in range(n_ward):
                den, num = int(cells[f, w].sum()), int(cells[f, w, 1])
                rows.append(row("vte", ALL_FACILITIES, "ward", f"W{f}{w}", den, num, score=0.5))
        rows.append(
            row(
                "vte",
                ALL_FACILITIES,
                "overall",
                "all",
                int(cells.sum()),
                int(cells[:, :, 1].sum()),
                score=0.5,
            )
        )
        out = apply_suppression(period_results(typed(rows), indicators, PERIOD), 11)
        key = out.set_index(["facility_id", "stratifier", "stratum"])
        for col in POPULATIONS:
            mask = key[flag_column(col)]
            for f in range(n_fac):
                eq = [(f"F{f}", "ward", f"W{f}{w}") for w in range(n_ward)] + [(f"F{f}", *OVERALL)]
                assert int(mask.loc[eq].sum()) != 1, (col, eq)
            eq = [(f"F{f}", *OVERALL) for f in range(n_fac)] + [(ALL_FACILITIES, *OVERALL)]
            assert int(mask.loc[eq].sum()) != 1, (col, eq)
            wards = [(ALL_FACILITIES, "ward", f"W{f}{w}") for f in range(n_fac) for w in range(n_ward)]
            assert int(mask.loc[[*wards, (ALL_FACILITIES, *OVERALL)]].sum()) != 1, (col, "system wards")
            for f in range(n_fac):
                for w in range(n_ward):
                    pair = [(f"F{f}", "ward", f"W{f}{w}"), (ALL_FACILITIES, "ward", f"W{f}{w}")]
                    assert int(mask.loc[pair].sum()) != 1, (col, pair)
            primary = (key[col] >= 1) & (key[col] < 11)
            assert bool(mask[primary].all())


def test_threshold_below_one_is_refused(results, indicators):
    with pytest.raises(ExportError):
        apply_suppression(period_results(results, indicators, PERIOD), 0)


# ------------------------------------------------------------- complete rows, audits
def _out(rows, inds, threshold=11):
    return apply_suppression(period_results(typed(rows), inds, PERIOD), threshold)


def _cell(out, facility, stratifier, stratum, col):
    hit = out[(out["facility_id"] == facility) & (out["stratifier"] == stratifier) & (out["stratum"] == stratum)]
    return bool(hit.iloc[0][flag_column(col)])


def test_a_small_exclusion_count_alone_does_not_mask_the_score(indicators):
    """7 exclusions of 300: the exclusion and the denominator before exclusions are hidden,
    the performance denominator (293) and the score stay published."""
    out = _out([row("vte", "ALL", "overall", "all", 300, 200, excl=7)], indicators)
    assert _cell(out, "ALL", "overall", "all", "denominator_exclusion")
    assert _cell(out, "ALL", "overall", "all", "denominator")  # 300 = 7 + 293 would give 7 back
    assert not _cell(out, "ALL", "overall", "all", "performance_denominator")
    assert not _cell(out, "ALL", "overall", "all", "measure_score")
    assert int(out.loc[0, "performance_denominator"]) == 293


def test_a_continuous_row_publishes_its_observation_count_and_statistic(indicators):
    days = indicators[1]
    out = _out([row("days", "ALL", "overall", "all", 40, 0, excl=7, score=18.5, target=20.0)], [days])
    assert int(out.loc[0, "observations"]) == 33
    assert not _cell(out, "ALL", "overall", "all", "observations")
    assert not _cell(out, "ALL", "overall", "all", "measure_score")
    assert _cell(out, "ALL", "overall", "all", "denominator_exclusion") and _cell(
        out, "ALL", "overall", "all", "denominator"
    )
    assert not _cell(out, "ALL", "overall", "all", "numerator")  # not applicable: never flagged


def test_a_ratio_row_is_masked_only_by_its_events(indicators):
    ratio = with_fields(indicators[0], id="falls", scoring="ratio", unit="per 1,000 patient-days", stratifiers=())
    out = _out([row("falls", "ALL", "overall", "all", 500, 20, excl=4, score=8.0, events=20, exposure=2500.0)],
               [ratio])  # fmt: skip
    assert _cell(out, "ALL", "overall", "all", "denominator_exclusion")
    assert not _cell(out, "ALL", "overall", "all", "events")
    assert not _cell(out, "ALL", "overall", "all", "measure_score")
    assert float(out.loc[0, "exposure"]) == 2500.0


def test_a_total_hidden_for_one_stratifier_is_protected_in_another(indicators):
    """Ward W1 (5 cases) is alone in its ward sum only if the facility total goes with it;
    then the service stratifier sums to that same total, so a service cell must go too."""
    two = with_fields(indicators[0], stratifiers=("ward", "service"))
    rows = [
        row("vte", "ALL", "overall", "all", 5, 5),
        row("vte", "ALL", "ward", "W1", 5, 5),
        row("vte", "ALL", "ward", "W2", 0, 0),
        row("vte", "ALL", "service", "medicine", 5, 5),
        row("vte", "ALL", "service", "surgery", 0, 0),
    ]
    out = _out(rows, [two])
    for col in ("denominator", "numerator"):
        assert _cell(out, "ALL", "ward", "W1", col) and _cell(out, "ALL", "overall", "all", col)
        assert _cell(out, "ALL", "service", "medicine", col)


def test_recoverable_finds_a_cell_given_back_by_a_chain_of_equations():
    """x+y, y+z and x+z published as totals with x, y, z hidden: every equation holds two
    hidden cells, yet three equations in three unknowns give each one back."""
    eqs = [([(0, 0), (1, 0)], (3, 0), "column"), ([(1, 0), (2, 0)], (4, 0), "column"),
           ([(0, 0), (2, 0)], (5, 0), "column")]  # fmt: skip
    mask = np.zeros((6, 1), dtype=bool)
    mask[[0, 1, 2], 0] = True
    assert sorted(recoverable(mask, eqs)) == [(0, 0), (1, 0), (2, 0)]
    mask[3, 0] = True  # hide one total too: now nothing follows
    assert recoverable(mask, eqs) == []


def test_a_facility_by_ward_table_is_left_with_no_recoverable_cell(indicators):
    """A two-way table (facility x ward, with system-level ward rows and totals), random
    counts: after suppression the exact audit finds nothing recoverable."""
    rng = np.random.default_rng(7)
    for _ in range(8):
        cells = rng.integers(0, 30, size=(3, 3))
        rows = [row("vte", ALL_FACILITIES, "overall", "all", int(cells.sum()) + 50, int(cells.sum()))]
        for w in range(3):
            rows.append(row("vte", ALL_FACILITIES, "ward", f"W{w}", int(cells[:, w].sum()) + 50 // 3,
                            int(cells[:, w].sum())))  # fmt: skip
        for f in range(3):
            rows.append(row("vte", f"F{f}", "overall", "all", int(cells[f].sum()) + 20, int(cells[f].sum())))
            for w in range(3):
                rows.append(row("vte", f"F{f}", "ward", f"W{w}", int(cells[f, w]) + 6, int(cells[f, w])))
        out = _out(rows, indicators[:1])
        mask = np.column_stack([out[flag_column(c)].to_numpy(dtype=bool) for c in COUNTS])
        assert recoverable(mask, equations(out)) == []


def test_rounding_comes_after_suppression(indicators):
    frame = period_results(typed([row("vte", "ALL", "overall", "all", 12, 3)]), indicators, PERIOD)
    out = disclosure_controlled(frame, 11, 5)
    assert bool(out.loc[0, flag_column("numerator")])  # 3 is suppressed, not rounded to a published 5
    assert int(out.loc[0, "denominator"]) == 10  # 12 published, then rounded
    assert int(out.loc[0, "numerator"]) == 3  # the value stays for the writer to blank
    assert rounded(12, 5) == 10 and rounded(13, 5) == 15 and rounded(7, 1) == 7


# ------------------------------------------------------------- across packages
def _month_package(rows, inds, period):
    """A month's rows as published: suppressed, then read back the way packaging reads them."""
    frame = apply_suppression(period_results(typed(rows), inds, period), 11)
    return frame.assign(scoring=frame["scoring"].astype(str))


def test_a_quarter_does_not_give_back_a_month_suppressed_before(indicators):
    """January's numerator 4 was suppressed in its package; February (30) and March (25)
    were published: a quarter publishing 59 would give 4 back."""
    vte = indicators[:1]
    months = {}
    for period, num in (("2026-01", 4), ("2026-02", 30), ("2026-03", 25)):
        months[period] = _month_package([row("vte", "ALL", "overall", "all", 100, num, period=period)], vte, period)
    quarter = typed([row("vte", "ALL", "overall", "all", 300, 59, period="2026-Q1")])
    alone = apply_suppression(period_results(quarter, vte, "2026-Q1"), 11)
    assert not bool(alone.loc[0, flag_column("numerator")])  # on its own, 59 is publishable
    linked = Published(frames=months, sums=[(["2026-01", "2026-02", "2026-03"], "")])
    out = apply_suppression(period_results(quarter, vte, "2026-Q1"), 11, linked)
    assert bool(out.loc[0, flag_column("numerator")])
    assert not bool(out.loc[0, flag_column("denominator")])  # 100 + 100 + 100: nothing hidden there


def test_a_month_does_not_give_back_a_cell_its_quarter_hid(indicators):
    """The quarter hid its numerator (70) and February (30) and March (25) are published:
    January's 15, publishable on its own, would give the quarter's back."""
    vte = indicators[:1]
    quarter = _month_package([row("vte", "ALL", "overall", "all", 300, 70, period="2026-Q1")], vte, "2026-Q1")
    quarter[flag_column("numerator")] = True  # as its package published it
    feb = _month_package([row("vte", "ALL", "overall", "all", 100, 30, period="2026-02")], vte, "2026-02")
    mar = _month_package([row("vte", "ALL", "overall", "all", 100, 25, period="2026-03")], vte, "2026-03")
    jan = typed([row("vte", "ALL", "overall", "all", 100, 15, period="2026-01")])
    assert not bool(apply_suppression(period_results(jan, vte, "2026-01"), 11).loc[0, flag_column("numerator")])
    linked = Published(frames={"2026-Q1": quarter, "2026-02": feb, "2026-03": mar},
                       sums=[(["", "2026-02", "2026-03"], "2026-Q1")])  # fmt: skip
    out = apply_suppression(period_results(jan, vte, "2026-01"), 11, linked)
    assert bool(out.loc[0, flag_column("numerator")])
    assert not bool(out.loc[0, flag_column("denominator")])


def test_the_family_of_a_month_is_its_year(tmp_path):
    from pipelines.packaging import package_family

    others, sums = package_family("2026-08")
    assert len(others) == 16 and "2026-08" not in others and {"2026-Q3", "2026"} <= set(others)
    assert (["2026-07", "", "2026-09"], "2026-Q3") in sums
    assert ([f"2026-Q{q}" for q in range(1, 5)], "2026") in sums
