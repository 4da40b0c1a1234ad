"""Indicator definitions built in a test: the typed catalogue, without a YAML file.

Publish and export take :class:`~pipelines.compute.model.Indicator` objects; tests
describe one with the same field names an indicator file uses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipelines.compute import model as m

_DEFAULTS: dict[str, Any] = {
    "title": "",
    "description": "",
    "domain": "patient_safety",
    "owner": "",
    "scoring": "proportion",
    "basis": "encounter",
    "improvement": "increase",
    "target": 0.0,
    "unit": "",
    "multiplier": 100,
    "grain": "one row per encounter",
}


def make_indicator(id: str, *, populations: dict[str, str] | None = None, **fields: Any) -> m.Indicator:
    """An indicator with ``fields`` (YAML names and values); ``populations`` maps each
    population defined to its sentence. A ``follow_up`` is its sentence."""
    spec = {**_DEFAULTS, **fields}
    follow_up = spec.pop("follow_up", None)
    return m.Indicator(
        id=id,
        title=spec.pop("title"),
        description=spec.pop("description"),
        domain=m.Domain(spec.pop("domain")),
        owner=spec.pop("owner"),
        scoring=m.Scoring(spec.pop("scoring")),
        basis=m.Basis(spec.pop("basis")),
        improvement=m.Improvement(spec.pop("improvement")),
        target=float(spec.pop("target")),
        unit=spec.pop("unit"),
        multiplier=float(spec.pop("multiplier")),
        grain=spec.pop("grain"),
        populations={
            m.Population(p): m.PopulationDef(m.Population(p), text) for p, text in (populations or {}).items()
        },
        stratifiers=tuple(spec.pop("stratifiers", ())),
        aggregate=m.Aggregate(spec.pop("aggregate")) if spec.get("aggregate") else spec.pop("aggregate", None),
        follow_up=None if follow_up is None else m.FollowUp(follow_up, "start_at", 2, m.DayCount.WORKING),
        **spec,
    )


def with_fields(indicator: m.Indicator, **fields: Any) -> m.Indicator:
    """A copy with some fields changed (enums given by value)."""
    enums = {"domain": m.Domain, "scoring": m.Scoring, "basis": m.Basis, "improvement": m.Improvement}
    return replace(indicator, **{k: enums[k](v) if k in enums else v for k, v in fields.items()})


__all__ = ["make_indicator", "with_fields"]
