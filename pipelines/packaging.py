"""Regulator export packages: the results of a reporting period, written as one verifiable
package (delivered by the ``regulator_export`` DAG when a destination is configured).

A package covers a **month**, a **calendar quarter** (``YYYY-Qn``) or a **calendar
year** (``YYYY``; the CMS eCQMs' annual measurement period):

* a month's results are the stored ones (``indicator_results``, as the compute stage
  left them: final or provisional);
* a quarter's or a year's are evaluated over the whole period from the warehouse,
  patient shard by patient shard, by the same engine and scoring the monthly compute
  uses (:func:`pipelines.compute.subjects_of`, :func:`pipelines.compute.results_of`).
  Summing months would be wrong for a patient-based measure (a patient seen in two
  months is one patient of the year) and for every eCQM, whose CQL is written over its
  measurement period; the conformance runner evaluates the decks the same way. A
  period is provisional until its last month's revision window has closed, and says
  which of its months are not loaded yet.

Packages of one year add up: its months into its quarters and the year. Each package
is suppressed together with the family's packages already published (read back from
their CSVs, :func:`published_packages`), so no cell can be recovered by comparing a
quarter with its months; write them in order (month, then quarter, then year), as
``regulator_export`` does.

The package (``exports/<period>/``) holds every format of
:data:`pipelines.export.FORMATS` and ``manifest.json`` (software version, run id,
input fingerprint, value sets, suppression threshold, rounding, SHA-256 per file),
published as a set or not at all. Two exports of one warehouse are byte-identical.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pandas as pd

from pipelines import periods
from pipelines.config import Settings, load_settings
from pipelines.errors import ConfigError, ExportError
from pipelines.periods import MeasurementPeriod

log = logging.getLogger(__name__)


def input_fingerprint(batches: pd.DataFrame, last_month: str, revision_months: int) -> str:
    """SHA-256 over the delivery fingerprints of the batches a period's results come from
    (every batch up to its last month + ``revision_months``), so a package names its input."""
    last = periods.shift(last_month, revision_months)
    used = batches[batches["batch"].astype(str) <= last]  # batch_records lists batches in batch order
    text = "\n".join(
        f"{b}:{f}" for b, f in zip(used["batch"].astype(str), used["fingerprint"].astype(str), strict=True)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def period_state(reporting: MeasurementPeriod, loaded: list[str], revision_months: int) -> str | None:
    """Why a quarter's or year's results are provisional (None once final)."""
    missing = [m.label for m in reporting.months if m.label not in loaded]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        return f"months not loaded yet: {shown}"
    closing = periods.shift(reporting.months[-1].label, revision_months)
    if revision_months and closing not in loaded:
        return f"open to revision until batch {closing} is loaded"
    return None


def evaluate_period(period: str, settings: Settings) -> pd.DataFrame:
    """Result rows (``INDICATOR_RESULTS`` shape) of every indicator over a quarter or a
    year, evaluated from the warehouse shard by shard (memory bounded by the shard)."""
    from pipelines.compute import in_subject_order, results_of
    from pipelines.compute.needs import needs_of
    from pipelines.load import DeliveryReader, count_patients, list_batches
    from pipelines.load.shards import shard_count
    from pipelines.stages import (
        _subjects_available,
        data_end,
        indicator_catalogue,
        mark_provisional,
        not_computed_row,
        warehouse,
    )

    reporting = MeasurementPeriod.parse(period)
    indicators, valuesets = indicator_catalogue(settings)
    last = reporting.months[-1].label
    engine = warehouse(settings)
    try:
        loaded = list_batches(engine)
        if not any(m.label in loaded for m in reporting.months):
            raise ConfigError(f"no batch of {reporting.label} is loaded: load its months first")
        horizon = periods.shift(last, settings.revision_months)
        count = shard_count(count_patients(engine, horizon), settings.shard_patients)
        end = data_end(last, loaded, settings.revision_months)
        parts: list[pd.DataFrame] = []
        skipped: dict[str, str] = {}
        for shard in range(count):
            reader = DeliveryReader(engine, needs_of(indicators, valuesets), upto_batch=horizon, shard=(shard, count))
            subjects, missing = _subjects_available(
                indicators, reader.snapshot(horizon), reporting.label, valuesets, end, settings.working_calendars
            )
            parts.append(subjects)
            skipped.update(missing)
    finally:
        engine.dispose()
    subjects = in_subject_order(pd.concat(parts, ignore_index=True))
    computed = [ind for ind in indicators if ind.id not in skipped]
    results = results_of(computed, subjects, reporting.label)
    absent = [not_computed_row(ind, reporting.label, skipped[ind.id]) for ind in indicators if ind.id in skipped]
    if absent:
        results = pd.concat([results, *absent], ignore_index=True)
    reason = period_state(reporting, loaded, settings.revision_months)
    if reason is not None:
        results = mark_provisional(results, reason)
    log.info("evaluated %d indicators over %s in %d shard(s)", len(indicators), reporting.label, count)
    return results


def package_family(label: str) -> tuple[list[str], list[tuple[list[str], str]]]:
    """The labels whose packages add up with ``label``'s (the months, quarters and the
    calendar year of its year, itself excepted) and the sums between them, with ``""``
    for ``label`` itself: each quarter is its months, the year its months and its quarters."""
    reporting = MeasurementPeriod.parse(label)
    year = reporting.start.year
    months = [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    quarters = [f"{year:04d}-Q{q}" for q in range(1, 5)]

    def own(x: str) -> str:
        return "" if x == reporting.label else x

    sums = [([own(m) for m in months[3 * q : 3 * q + 3]], own(quarters[q])) for q in range(4)]
    sums += [([own(m) for m in months], own(f"{year:04d}")), ([own(q) for q in quarters], own(f"{year:04d}"))]
    others = [x for x in [*months, *quarters, f"{year:04d}"] if x != reporting.label]
    return others, sums


def published_packages(label: str, settings: Settings) -> Any:
    """The packages of ``label``'s family already in the exports folder, read back from
    their CSVs (what was published, suppression and all), for
    :class:`~pipelines.export.suppression.Published`."""
    from pipelines.export.suppression import Published, published_frame
    from pipelines.export.verify import read_csv_rows

    others, sums = package_family(label)
    frames = {}
    for other in others:
        path = settings.exports_dir / other / f"careqi-indicators-{other}.csv"
        if path.is_file():
            header, rows = read_csv_rows(path)
            frames[other] = published_frame(header, rows)
    return Published(frames=frames, sums=sums)


def package_results(period: str, settings: Settings) -> pd.DataFrame:
    """The results a package for ``period`` publishes: stored for a month, evaluated
    over the period for a quarter or a year."""
    from pipelines.load import read_results
    from pipelines.stages import warehouse

    reporting = MeasurementPeriod.parse(period)
    if reporting.kind != "month":
        return evaluate_period(reporting.label, settings)
    engine = warehouse(settings)
    try:
        results = read_results(engine, periods=[reporting.label])
    finally:
        engine.dispose()
    if results.empty:
        raise ConfigError(f"no indicator results for {reporting.label}: run the compute stage for this period first")
    return results


def export_package(period: str, settings: Settings | None = None, *, run_id: str | None = None) -> dict[str, list[str]]:
    """Write the regulator package for a month, quarter or year (every export format and
    the manifest), published together or not at all (``regulator_export`` then delivers
    it when an export connection is configured). Returns format -> the files written.
    Without an Airflow run id the run is ``cli-<period>``: two CLI exports of the same
    warehouse are byte-identical, manifest included."""
    from pipelines.export import FORMATS
    from pipelines.export.csv_export import controlled_rows
    from pipelines.export.manifest import write_manifest
    from pipelines.load import batch_records
    from pipelines.organisation import read_config
    from pipelines.outputs import publish_folder
    from pipelines.provenance import code_version, valueset_versions
    from pipelines.stages import indicator_catalogue, warehouse

    settings = settings or load_settings()
    reporting = MeasurementPeriod.parse(period)
    label = reporting.label
    indicators, valuesets = indicator_catalogue(settings)
    results = package_results(label, settings)
    engine = warehouse(settings)
    try:
        batches = batch_records(engine)
    finally:
        engine.dispose()
    known = {i.id for i in indicators}
    orphans = sorted(set(results["indicator_id"].dropna()) - known)
    if orphans:
        raise ExportError(
            f"results for {label} hold indicator(s) with no definition: {', '.join(orphans)}; if they were "
            f"withdrawn, run `careqi indicators retire {orphans[0]}` (archives their results), else restore the file"
        )
    computed = set(results["indicator_id"])
    chosen = [i for i in indicators if i.id in computed]
    reporter = str(read_config(settings.organisation_file).get("system") or "CareQI")
    target = settings.exports_dir / label
    threshold, rounding = settings.small_number_threshold, settings.export_rounding
    # disclosure control once per package, with the family already published
    rows = controlled_rows(results, chosen, label, threshold, rounding, published_packages(label, settings))
    written: dict[str, list[str]] = {}
    with publish_folder(target, f"the exports for {label}") as folder:
        for name, writer in FORMATS.items():
            kwargs: dict[str, Any] = {"small_number_threshold": threshold, "rounding": rounding, "controlled": rows}
            if name == "measure_reports":
                kwargs["reporter"] = reporter
            paths = writer(results, chosen, label, folder, **kwargs)
            written[name] = [str(target / p.name) for p in paths]
        manifest = write_manifest(
            folder,
            period=label,
            run_id=run_id or f"cli-{label}",
            software_version=code_version(),
            input_fingerprint=input_fingerprint(batches, reporting.months[-1].label, settings.revision_months),
            valuesets=valueset_versions(chosen, valuesets),
            small_number_threshold=threshold,
            rounding=rounding,
            reporter=reporter,
        )
        written["manifest"] = [str(target / manifest.name)]
    log.info("export package for %s written to %s", label, target)
    return written


_KIND_ORDER = {"month": 0, "quarter": 1, "year": 2}


def in_publication_order(labels: list[str]) -> list[str]:
    """Labels in the order packages are written: by period end, a month before the
    quarter it closes and both before the year, so each is suppressed together with the
    packages of its family published before it."""
    parsed = {MeasurementPeriod.parse(x).label: MeasurementPeriod.parse(x) for x in labels}
    return sorted(parsed, key=lambda x: (parsed[x].end, _KIND_ORDER[parsed[x].kind]))


def export_packages(
    labels: list[str], settings: Settings | None = None, *, run_id: str | None = None
) -> dict[str, dict[str, list[str]]]:
    """:func:`export_package` for each label, in publication order (one after another:
    each reads the ones before it)."""
    settings = settings or load_settings()
    return {label: export_package(label, settings, run_id=run_id) for label in in_publication_order(labels)}


def packages_due(period: str) -> list[str]:
    """The packages a month's results complete: the month itself, its quarter when it is
    the quarter's last month, and its year (the eCQMs' measurement period) in December."""
    month = periods.Month.parse(period)
    due = [month.label]
    if month.month % 3 == 0:
        due.append(f"{month.year:04d}-Q{month.month // 3}")
    if month.month == 12:
        due.append(f"{month.year:04d}")
    return due


__all__ = [
    "evaluate_period",
    "export_package",
    "export_packages",
    "in_publication_order",
    "input_fingerprint",
    "package_results",
    "package_family",
    "packages_due",
    "published_packages",
    "period_state",
]
