"""The resident-memory peak every task logs and the bench reports (pipelines.process_memory)."""

from __future__ import annotations

import sys

import pytest

from pipelines.process_memory import peak_mib, reset_peak

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")


def test_the_peak_follows_an_allocation_and_a_reset_starts_a_new_one() -> None:
    assert reset_peak()
    before = peak_mib()
    block = b"\x01" * (256 * 1024 * 1024)  # every page written, so resident
    grown = peak_mib()
    del block
    assert grown - before >= 200, (before, grown)
    assert peak_mib() >= grown - 1  # freeing does not lower a high-water mark
    assert reset_peak()
    assert peak_mib() < grown - 200  # the new mark starts at today's size, not the old peak
