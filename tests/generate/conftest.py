from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.generate import GenerateSummary, generate


@pytest.fixture(scope="session")
def population_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    """The brief's reference scale: 2,000 patients over 12 months with the default defect rate."""
    out = tmp_path_factory.mktemp("population")
    return out, generate(out, patients=2000, months=12, seed=42, end_period="2026-10")


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    """No defects: delivery and referential rules must hold for every single record."""
    out = tmp_path_factory.mktemp("clean")
    return out, generate(out, patients=600, months=6, seed=7, end_period="2026-03", defect_rate=0.0)


@pytest.fixture(scope="session")
def defect_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    """A high defect rate so that every kind occurs in every file type."""
    out = tmp_path_factory.mktemp("defects")
    return out, generate(out, patients=800, months=4, seed=3, end_period="2026-10", defect_rate=0.06)


@pytest.fixture(scope="session")
def comparison_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    """Large enough that built-in differences between hospitals beat sampling noise."""
    out = tmp_path_factory.mktemp("comparison")
    return out, generate(out, patients=8000, months=12, seed=5, end_period="2026-10", defect_rate=0.0)
