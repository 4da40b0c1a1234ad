"""Reading only what the indicators need changes no result.

The compute stage reads, from each table, only the columns the indicators being
computed name, and from ``codings`` only the rows whose code is in one of their value
sets (:func:`pipelines.compute.needs.needs_of`). Every indicator is evaluated here on a
needs-restricted snapshot and on the full one, over every indicator's own case files and
over a generated month, and the subjects must be identical.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.compute import evaluate, load_indicators, load_valuesets
from pipelines.compute.needs import indicator_columns, needs_of
from pipelines.compute.registry import BASIS_TABLE
from pipelines.config import load_settings
from pipelines.load.snapshot import Snapshot
from pipelines.tables import TABLES
from tests.indicators._cases import INDICATORS_DIR, all_cases

INDICATORS = load_indicators(INDICATORS_DIR)
ECQM_VALUESET_DIRS = sorted((load_settings().shared_data_dir / "ecqm-qicore-2025").glob("*/valuesets"))
VALUESETS = load_valuesets([INDICATORS_DIR / "valuesets", *ECQM_VALUESET_DIRS])
COMPUTABLE = [i for i in INDICATORS if all(url in VALUESETS for url in i.valuesets)]


def _same(indicator, frames: dict[str, pd.DataFrame], period: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
    full = evaluate(indicator, Snapshot.of(frames), period, VALUESETS, **kwargs)
    needed = evaluate(
        indicator, Snapshot.of(frames, needs=needs_of([indicator], VALUESETS)), period, VALUESETS, **kwargs
    )
    pd.testing.assert_frame_equal(needed, full, check_exact=True)


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.name)
def test_every_case_gives_the_same_subjects_from_the_needed_columns_only(case) -> None:  # type: ignore[no-untyped-def]
    indicator = next(i for i in INDICATORS if i.id == case.indicator_id)
    if indicator not in COMPUTABLE:
        pytest.skip("eCQM value sets (VSAC) not available")
    _same(indicator, case.tables(), case.period, data_end=case.data_end)


@pytest.fixture(scope="module")
def generated_month(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    from pipelines.extract import extract_batch
    from pipelines.generate import generate

    out = tmp_path_factory.mktemp("needs")
    generate(out, patients=400, months=1, seed=5, end_period="2026-03", defect_rate=0.0)
    return dict(extract_batch(Path(out) / "2026-03").tables)


@pytest.mark.parametrize("indicator", COMPUTABLE, ids=lambda i: i.id)
def test_a_generated_month_gives_the_same_subjects_from_the_needed_columns_only(
    indicator, generated_month: dict[str, pd.DataFrame]
) -> None:  # type: ignore[no-untyped-def]
    _same(indicator, generated_month, "2026-03")


def test_needs_really_leave_columns_and_codings_out(generated_month: dict[str, pd.DataFrame]) -> None:
    """The restriction is real: every indicator reads fewer columns than the contract
    holds, and the codings kept are a strict subset of those delivered."""
    needs = needs_of(COMPUTABLE, VALUESETS)
    read = sum(len(needs.read_columns(t) or []) for t in TABLES if t in needs.columns)
    assert read < sum(len(s.column_names) for s in TABLES.values())
    for indicator in COMPUTABLE:
        table = BASIS_TABLE[indicator.basis]
        assert table in indicator_columns(indicator)
    codings = generated_month["codings"]
    assert needs.codings is not None and 0 < int(needs.keeps(codings).sum()) < len(codings)
