"""Sharded compute is exact: the same small system evaluated in 1, 3 and 8 patient
shards gives identical per-subject tables, identical aggregates and byte-identical
exports, and the shards partition the patients (each in exactly one shard, reference
data in all)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from pipelines import stages
from pipelines.compute.needs import needs_of
from pipelines.config import Settings, load_settings
from pipelines.generate import generate
from pipelines.load import DeliveryReader, make_engine, read_results, read_subjects

FIRST, LAST = "2026-08", "2026-10"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Settings:
    home = tmp_path_factory.mktemp("shards")
    valuesets = os.pathsep.join(str(p) for p in sorted(shared_data.glob("ecqm-qicore-2025/*/valuesets")))
    settings = load_settings({"CAREQI_HOME": str(home), "CAREQI_VALUESET_DIR": valuesets})
    generate(settings.incoming_dir, patients=700, months=3, seed=5, end_period=LAST, defect_rate=0.0)
    stages.backfill(FIRST, LAST, settings)
    return settings


def _outputs(settings: Settings, shards: int) -> tuple[dict, pd.DataFrame, pd.DataFrame, dict[str, bytes]]:
    summary = stages.compute_stage(LAST, settings, history=True, shards=shards)
    engine = make_engine(settings.warehouse_url)
    try:
        results = read_results(engine)
        subjects = pd.concat([read_subjects(engine, p) for p in summary["periods"]], ignore_index=True)
    finally:
        engine.dispose()
    stages.export_stage(LAST, settings)
    folder = settings.exports_dir / LAST
    exports = {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return summary, results, subjects, exports


def test_results_do_not_depend_on_the_shard_count(system: Settings) -> None:
    summary, results, subjects, exports = _outputs(system, 1)
    assert summary["shards"] == 1 and not summary["not_computed"]
    assert len(subjects) > 300 and exports
    # every indicator has subjects, so the comparison covers each one's logic
    assert set(subjects["indicator_id"]) == set(results["indicator_id"])
    for shards in (3, 8):
        s, r, subj, ex = _outputs(system, shards)
        assert s["shards"] == shards
        pd.testing.assert_frame_equal(subj, subjects)
        pd.testing.assert_frame_equal(r, results)
        assert ex == exports


def test_shards_partition_the_patients_and_share_reference_data(system: Settings) -> None:
    indicators, valuesets = stages.indicator_catalogue(system)
    needs = needs_of(indicators, valuesets)
    engine = make_engine(system.warehouse_url)
    try:
        whole = DeliveryReader(engine, needs).snapshot(LAST)
        views = [DeliveryReader(engine, needs, shard=(k, 3)).snapshot(LAST) for k in range(3)]
        for table in ("patients", "encounters", "codings"):
            parts = [v[table] for v in views]
            assert all(len(p) for p in parts), table
            key = list(whole[table].columns[:1])
            combined = pd.concat(parts, ignore_index=True)
            assert not combined.duplicated(subset=key).any(), table
            assert sorted(combined[key[0]]) == sorted(whole[table][key[0]]), table
        # each shard's encounters belong to its own patients
        for v in views:
            assert set(v["encounters"]["patient_id"].dropna()) <= set(v["patients"]["patient_id"])
        for v in views:
            pd.testing.assert_frame_equal(v["organizations"], whole["organizations"])
    finally:
        engine.dispose()


def test_combining_refuses_missing_or_stale_shards(system: Settings) -> None:
    from pipelines.errors import ConfigError

    plan = stages.compute_plan(LAST, system, shards=2)
    stages.compute_shard(plan, 0, system)
    with pytest.raises(ConfigError, match="shard 1 of 2"):
        stages.combine_shards(plan, system)
    stages.compute_shard(plan, 1, system)
    other = stages.compute_plan(LAST, system, shards=2)
    assert other["id"] == plan["id"]  # same warehouse, same plan
    stages.compute_shard(other, 0, system)
    stages.compute_shard(other, 1, system)
    assert stages.combine_shards(other, system)["shards"] == 2


def test_the_report_does_not_depend_on_the_shard_size(system: Settings) -> None:
    """The report's risk adjustment reads every stay's case mix one patient shard at a
    time (CAREQI_SHARD_PATIENTS): one shard or a dozen, the same factors and report."""
    pages, risks = [], []
    for shard_patients in ("100000", "60"):
        settings = load_settings({**system.extra, "CAREQI_SHARD_PATIENTS": shard_patients, "CAREQI_REPORT_PDF": "0"})
        inputs = stages._report_inputs(LAST, settings)
        risks.append(stages._committee_inputs(LAST, settings, inputs, "shards").risk)
        html = stages.report_stage(LAST, settings, generated_at="2026-11-05 06:00 UTC", run_id="shards")
        pages.append(Path(html).read_text(encoding="utf-8"))
    assert risks[0] and risks[0].keys() == risks[1].keys()
    for indicator, one in risks[0].items():
        many = risks[1][indicator]
        assert one.months == many.months
        # real factors, found in every shard, not only unknowns
        assert len(one.reference) > 20 and one.reference["comorbidity_band"].nunique() > 1, indicator
        assert one.reference["age_band"].ne("unknown").all(), indicator
        pd.testing.assert_frame_equal(many.reference, one.reference)
        pd.testing.assert_frame_equal(many.current, one.current)
    assert 'class="risk"' in pages[0]
    assert pages[1] == pages[0]
