from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import ExportError
from pipelines.export.period import period_results
from pipelines.export.suppression import apply_suppression, flag_column
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
