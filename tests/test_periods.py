from __future__ import annotations

from datetime import date

import pytest

from pipelines.errors import ConfigError
from pipelines.periods import bounds, shift, span, validate_period, window


def test_shift_crosses_year_boundaries() -> None:
    assert shift("2026-01", -1) == "2025-12"
    assert shift("2025-12", 1) == "2026-01"
    assert shift("2026-10", -12) == "2025-10"


def test_bounds_are_half_open_months() -> None:
    assert bounds("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))


def test_window_is_oldest_first() -> None:
    assert window("2026-02", 3) == ["2025-12", "2026-01", "2026-02"]


def test_span_is_inclusive_and_rejects_backwards_ranges() -> None:
    assert span("2026-09", "2026-11") == ["2026-09", "2026-10", "2026-11"]
    with pytest.raises(ConfigError):
        span("2026-11", "2026-09")


@pytest.mark.parametrize("bad", ["2026-13", "2026-1", "26-10", "", "2026/10"])
def test_malformed_periods_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="YYYY-MM"):
        validate_period(bad)
