"""Shared fixtures: a clean environment and a throwaway CareQI home per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings
from tests.sftp_server import sftp_root  # noqa: F401 (a fixture for every test folder)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's CAREQI_* settings (except the shared-data path)."""
    for key in list(os.environ):
        if key.startswith("CAREQI_") and key not in ("CAREQI_SHARED_DATA", "CAREQI_TEST_POSTGRES_URL"):
            monkeypatch.delenv(key, raising=False)
    # Printing to PDF takes WeasyPrint tens of seconds per report: the tests of the PDF
    # (tests/publish/test_committee_render.py) and `make demo` turn it on.
    monkeypatch.setenv("CAREQI_REPORT_PDF", "off")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings rooted in a temporary home: its own SQLite warehouse, staging, reports."""
    return load_settings({**os.environ, "CAREQI_HOME": str(tmp_path / "home")})


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only reference data (../shared/data); required in CI, skipped elsewhere."""
    path = load_settings().shared_data_dir
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data not found at {path} (set CAREQI_SHARED_DATA)")
        pytest.skip(f"shared data not found at {path}")
    return path
