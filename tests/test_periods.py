from __future__ import annotations

from datetime import date

import pytest

from pipelines.errors import ConfigError, PeriodError
from pipelines.periods import MeasurementPeriod, Month, bounds, shift, span, validate_period, window


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


@pytest.mark.parametrize("bad", ["0000-01", "1899-12", "2200-01", "9999-12"])
def test_months_outside_the_supported_years_are_refused(bad: str) -> None:
    """Regression: 0000-01 loaded a batch and then crashed on year 0; 9999-12 failed on '10000-02'."""
    with pytest.raises(PeriodError, match="between 1900-01 and 2199-12"):
        validate_period(bad)


def test_shifting_out_of_the_supported_years_is_a_period_error() -> None:
    with pytest.raises(PeriodError, match="leaves the years"):
        shift("2199-12", 1)
    with pytest.raises(PeriodError):
        shift("1900-01", -1)


def test_every_month_gives_the_same_error_wherever_it_is_read() -> None:
    from pipelines.compute.model import Period
    from pipelines.load.batches import read_batch

    messages = set()
    for parse in (validate_period, Period.parse, Month.parse, lambda p: read_batch(None, "quarantine", p)):  # type: ignore[arg-type]
        with pytest.raises(PeriodError) as info:
            parse("0000-01")
        messages.add(str(info.value))
    assert len(messages) == 1


def test_month_type_bounds_and_labels() -> None:
    m = Month.parse("2026-12")
    assert (m.start, m.end, m.last_day, m.days) == (date(2026, 12, 1), date(2027, 1, 1), date(2026, 12, 31), 31)
    assert (m.label, m.long_label, m.short_label) == ("2026-12", "December 2026", "Dec 26")
    assert [x.label for x in m.window(3)] == ["2026-10", "2026-11", "2026-12"]
    assert MeasurementPeriod.parse("2026").end == date(2027, 1, 1)
