"""Settings: environment variables -> one typed object.

No other module reads ``os.environ``. Everything that differs between a laptop demo,
CI and a hospital deployment (paths, the warehouse URL, thresholds) is resolved here,
so code below this layer takes plain values and stays testable.

Every path defaults to a location under ``CAREQI_HOME`` (default ``./var``), so a new
user's state lives in one ignored folder and ``rm -rf var`` is a full reset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

#: Repository root: the folder holding ``indicators/``, ``expectations/`` and ``reports/``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(env: dict[str, str], name: str, default: Path) -> Path:
    value = env.get(name)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Resolved configuration for one process.

    Attributes:
        home: root folder for all runtime state (warehouse, staging, reports, exports).
        warehouse_url: SQLAlchemy URL of the warehouse; SQLite file by default,
            ``postgresql+psycopg://...`` in production.
        incoming_dir: where monthly extracts arrive, one sub-folder per batch
            period (``<incoming>/2026-10/Encounter.ndjson``, ``.../complaints.csv``).
        staging_dir: parquet hand-over between pipeline stages, one folder per period.
        reports_dir / exports_dir: published outputs, one folder per period.
        indicators_dir / expectations_dir / templates_dir: the project's own
            definitions (indicator files, GX suites, Jinja2 templates).
        valueset_dirs: extra folders of FHIR ValueSet JSON files (e.g. the VSAC
            expansions a user licenses for the CMS eCQMs), ``CAREQI_VALUESET_DIR``
            with folders separated by ``os.pathsep``; the project's own code lists
            live in ``indicators/valuesets``.
        shared_data_dir: the read-only reference data sets used by tests and tools.
        quarantine_fail_ratio: a table whose quarantined share exceeds this fails
            the run (a broken feed, not a few bad rows).
        report_months: months of history in the report's trend charts.
        revision_months: how many later monthly batches can still complete a month
            (a readmission, a late-coded diagnosis). A month's results are computed
            from the batches up to ``month + revision_months`` and are provisional
            until those have been loaded.
    """

    home: Path
    warehouse_url: str
    incoming_dir: Path
    staging_dir: Path
    reports_dir: Path
    exports_dir: Path
    indicators_dir: Path
    expectations_dir: Path
    templates_dir: Path
    valueset_dirs: tuple[Path, ...]
    shared_data_dir: Path
    quarantine_fail_ratio: float = 0.25
    report_months: int = 12
    revision_months: int = 2
    small_number_threshold: int = 11
    extra: dict[str, str] = field(default_factory=dict)

    def with_home(self, home: Path) -> Settings:
        """Same settings re-rooted under another home (tests, benchmarks)."""
        return load_settings({**self.extra, "CAREQI_HOME": str(home)})


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    home = _path(env, "CAREQI_HOME", PROJECT_ROOT / "var")
    warehouse_url = env.get("CAREQI_WAREHOUSE_URL") or f"sqlite:///{home / 'warehouse.db'}"
    vs = [part for part in env.get("CAREQI_VALUESET_DIR", "").split(os.pathsep) if part.strip()]
    return Settings(
        home=home,
        warehouse_url=warehouse_url,
        incoming_dir=_path(env, "CAREQI_INCOMING_DIR", home / "incoming"),
        staging_dir=_path(env, "CAREQI_STAGING_DIR", home / "staging"),
        reports_dir=_path(env, "CAREQI_REPORTS_DIR", home / "reports"),
        exports_dir=_path(env, "CAREQI_EXPORTS_DIR", home / "exports"),
        indicators_dir=_path(env, "CAREQI_INDICATORS_DIR", PROJECT_ROOT / "indicators"),
        expectations_dir=_path(env, "CAREQI_EXPECTATIONS_DIR", PROJECT_ROOT / "expectations"),
        templates_dir=_path(env, "CAREQI_TEMPLATES_DIR", PROJECT_ROOT / "reports"),
        valueset_dirs=tuple(Path(part).expanduser().resolve() for part in vs),
        shared_data_dir=_path(env, "CAREQI_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"),
        quarantine_fail_ratio=float(env.get("CAREQI_QUARANTINE_FAIL_RATIO", "0.25")),
        report_months=int(env.get("CAREQI_REPORT_MONTHS", "12")),
        revision_months=int(env.get("CAREQI_REVISION_MONTHS", "2")),
        small_number_threshold=int(env.get("CAREQI_SMALL_NUMBER_THRESHOLD", "11")),
        extra={k: v for k, v in env.items() if k.startswith("CAREQI_")},
    )


__all__ = ["PROJECT_ROOT", "Settings", "load_settings", "replace"]
