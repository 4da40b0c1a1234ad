"""``generate``: stream synthetic patients into monthly FHIR Bulk-export batch folders.

Delivery follows how a hospital's monthly extract behaves (see the helper brief's
data-flow rules): clinical records travel with their encounter in the month it
ENDS (a stay's institutional Claim, created at discharge, with them), Patient
resources are re-sent in every batch that references them, the Organization/Location
catalogue is re-sent in full every month, complaints arrive in the month received and
surveys in the month completed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.generate.clinical import Simulator, World
from pipelines.generate.clock import batch_index, iso, month_periods, period_starts
from pipelines.generate.model import build_catalogue, location_resources, organization_resources
from pipelines.generate.writer import BatchWriter

log = logging.getLogger(__name__)

_PROGRESS_EVERY = 1000


@dataclass
class GenerateSummary:
    batches: list[str]  # "YYYY-MM" in order
    records: dict[str, dict[str, int]]  # batch -> file name -> lines/rows written (incl. defective ones)
    defects: dict[str, int] = field(default_factory=dict)  # defect kind -> count (all batches)
    patients: int = 0


def generate(
    out_dir: Path,
    *,
    patients: int,
    months: int = 12,
    seed: int = 42,
    end_period: str = "2026-10",
    defect_rate: float = 0.005,
    progress: Callable[[int], None] | None = None,
) -> GenerateSummary:
    """Write ``months`` batch folders ending at ``end_period`` under ``out_dir``.

    The same arguments always give byte-identical files: every patient has a random
    stream seeded from (seed, index) and defects come from one stream seeded from
    the seed, consumed in write order.
    """
    if patients < 0:
        raise ValueError(f"patients must be >= 0, got {patients}")
    periods = month_periods(end_period, months)
    bounds = period_starts(periods)
    facilities = build_catalogue()
    world = World(facilities=facilities, bounds=bounds, seed=seed)
    sim = Simulator(world)
    out_dir = Path(out_dir)
    writer = BatchWriter(out_dir, periods, defect_rate, defect_seed=f"careqi-defects:{seed}")
    log.info("generating %d patients into %d batches %s..%s", patients, months, periods[0], periods[-1])
    try:
        writer.static("Organization.ndjson", organization_resources(facilities))
        writer.static("Location.ndjson", location_resources(facilities))
        pending = 0
        for index in range(patients):
            rec = sim.simulate(index)
            clinical = sorted({b for b, f, _ in rec.items if f.endswith(".ndjson")})
            if clinical:
                death_batch = batch_index(bounds, rec.death) if rec.death is not None else -1
                alive = rec.patient
                dead = None
                if rec.death is not None:
                    dead = {**alive, "deceasedDateTime": iso(rec.death)}
                for b in clinical:
                    use_dead = dead is not None and death_batch >= 0 and b >= death_batch
                    writer.resource(b, "Patient.ndjson", dead if use_dead and dead else alive)
            for b, f, payload in rec.items:
                if f.endswith(".csv"):
                    writer.row(b, f, payload)
                else:
                    writer.resource(b, f, payload)
            pending += 1
            if progress is not None and pending >= _PROGRESS_EVERY:
                progress(pending)
                pending = 0
        if progress is not None and pending:
            progress(pending)
    finally:
        writer.close()
    summary = GenerateSummary(
        batches=periods,
        records={p: dict(writer.counts[i]) for i, p in enumerate(periods)},
        defects=dict(writer.defects),
        patients=patients,
    )
    log.info("generated %d patients; %d defects injected", patients, sum(summary.defects.values()))
    return summary
