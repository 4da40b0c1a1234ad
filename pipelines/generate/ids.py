"""Deterministic FHIR logical ids drawn from the per-patient random stream."""

from __future__ import annotations

import random


def new_id(rng: random.Random) -> str:
    """A UUID-shaped id (valid FHIR ``id``: 36 characters of [0-9a-f-])."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def rint(rng: random.Random, n: int) -> int:
    """Uniform integer in [0, n): ``random.randrange`` costs 4x as much and this runs ~20x per record."""
    return int(rng.random() * n)
