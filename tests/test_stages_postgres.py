"""The monthly job on the production backend: the same stages, unchanged, against the
real PostgreSQL server (CAREQI_TEST_POSTGRES_URL), in a schema of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateSchema, DropSchema

from pipelines import stages
from pipelines.config import Settings, load_settings
from pipelines.generate import generate
from pipelines.load import make_engine, read_batch, read_results, table_counts

PG_URL = os.environ.get("CAREQI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
KEYS = ["indicator_id", "period", "facility_id", "stratifier", "stratum"]
pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    admin = sa.create_engine(PG_URL)
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL unreachable at {make_url(PG_URL).render_as_string()}: {exc.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL required in CI but {message}")
        pytest.skip(message)
    schema = f"careqi_e2e_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(CreateSchema(schema))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield load_settings(
            {"CAREQI_HOME": str(tmp_path / "home"), "CAREQI_WAREHOUSE_URL": url.render_as_string(hide_password=False)}
        )
    finally:
        with admin.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True))
        admin.dispose()


def test_monthly_job_on_postgres_balances_and_reruns_identically(pg_settings: Settings) -> None:
    generate(pg_settings.incoming_dir, patients=300, months=2, seed=3, end_period="2026-10", defect_rate=0.01)
    for period in ("2026-09", "2026-10"):
        stages.run_period(period, pg_settings, report=period == "2026-10")
    engine = make_engine(pg_settings.warehouse_url)
    try:
        recon = read_batch(engine, "reconciliation", "2026-10")
        assert recon["balanced"].all() and len(recon) >= 9
        before_counts = table_counts(engine)
        before = read_results(engine).sort_values(KEYS).reset_index(drop=True)
        stages.run_period("2026-10", pg_settings, report=False)
        after = read_results(engine).sort_values(KEYS).reset_index(drop=True)
        assert table_counts(engine) == before_counts
        pd.testing.assert_frame_equal(before, after)
    finally:
        engine.dispose()
    assert (pg_settings.reports_dir / "2026-10" / "index.html").exists()
