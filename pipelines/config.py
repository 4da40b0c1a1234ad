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

from pipelines.errors import ConfigError
from pipelines.localtime import DEFAULT_ZONE, TimeZones, check_zone, parse_facility_zones
from pipelines.workdays import (
    DEFAULT_REGION,
    DEFAULT_WORKWEEK,
    WorkingCalendars,
    check_region,
    check_workweek,
    parse_facility_regions,
)

#: Repository root: the folder holding ``indicators/``, ``expectations/`` and ``reports/``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(env: dict[str, str], name: str, default: Path) -> Path:
    value = env.get(name)
    return Path(value).expanduser().resolve() if value else default


def _number(env: dict[str, str], name: str, default: float, kind: type, minimum: float) -> float:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = kind(text.strip())
    except ValueError:
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {text!r}")
    return value


def _int(env: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    return int(_number(env, name, default, int, minimum))


def _float(env: dict[str, str], name: str, default: float, *, minimum: float) -> float:
    return float(_number(env, name, default, float, minimum))


def _hook(text: str) -> str:
    text = text.strip()
    module, sep, function = text.partition(":")
    if text and (not sep or not module.strip() or not function.strip().isidentifier()):
        raise ConfigError(f"CAREQI_BREACH_HOOK: expected module:function (e.g. mytrust.alerts:send), got {text!r}")
    return text


#: The report languages there are catalogues for (pipelines/publish/i18n.py).
REPORT_LANGUAGES = ("en", "zh")


def _languages(text: str) -> tuple[str, ...]:
    codes = tuple(dict.fromkeys(c.strip().lower() for c in text.split(",") if c.strip()))
    bad = [c for c in codes if c not in REPORT_LANGUAGES]
    if bad or not codes:
        raise ConfigError(
            f"CAREQI_REPORT_LANGUAGES: expected a comma-separated list of {', '.join(REPORT_LANGUAGES)}, got {text!r}"
        )
    return codes


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected on or off, got {raw!r}")


def _month(env: dict[str, str], name: str, default: str) -> str:
    from pipelines.periods import PeriodError, validate_period

    text = env.get(name, "").strip() or default
    try:
        return validate_period(text)
    except PeriodError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def schedule_start(env: dict[str, str] | None = None) -> str:
    """``CAREQI_SCHEDULE_START`` alone (see :class:`Settings`): what a DAG file needs
    while it is parsed, without building every setting (holiday calendars included)."""
    return _month(dict(os.environ if env is None else env), "CAREQI_SCHEDULE_START", "2025-11")


def _choice(env: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {raw!r}")
    return raw


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
        indicators_dir / expectations_dir / templates_dir / surveys_dir: the project's
            own definitions (indicator files, GX suites, Jinja2 templates, survey files
            mapping Questionnaires and SERVQUAL items, :mod:`pipelines.surveys`).
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
        timezones: the system's time zone and facilities keeping another one
            (``CAREQI_TIMEZONE``, ``CAREQI_FACILITY_TIMEZONES``): the facility's local
            day decides months, days of stay and working days.
        working_calendars: which days are working days, per facility (public holidays
            of ``CAREQI_HOLIDAYS``, default ``GB-ENG``, or ``CAREQI_FACILITY_HOLIDAYS``;
            the week of ``CAREQI_WORKWEEK``): every working-day rule counts them.
        lock_timeout_s: how long a warehouse statement waits for another session's lock.
        delivery_min_share: a table must deliver at least this share of the smallest of
            its recent deliveries, or the batch is refused before anything is replaced
            (see :mod:`pipelines.validate.delivery`).
        future_days: records may be dated up to this many days after the end of their
            batch month; a later date is implausible and quarantined.
        breach_hook: ``module:function`` called with the daily feedback run's breach
            counts when complaints are open past a deadline (``CAREQI_BREACH_HOOK``): the
            place to send an e-mail or a chat message. Empty: the breaches are logged only.
        shard_patients: compute evaluates the system in patient shards of about this
            many patients each (``CAREQI_SHARD_PATIENTS``): a compute process's memory
            is bounded by it, not by the size of the system, and the DAG runs the
            shards as parallel tasks. Results do not depend on it.
        report_languages: the committee report's languages (``CAREQI_REPORT_LANGUAGES``,
            comma-separated, ``en`` and/or ``zh``); the first is ``index.html``, the
            others ``index.<code>.html``.
        report_pdf: also print each report to PDF (``CAREQI_REPORT_PDF``, on by default).
        restricted_dir: where the restricted case appendix goes, one folder per period
            (``CAREQI_RESTRICTED_DIR``): apart from the reports, which are circulated.
        organisation_file: the organisation tree's configuration (``CAREQI_ORGANISATION``,
            YAML; :mod:`pipelines.organisation`).
        publication_gate: ``feeding`` (default), ``any`` or ``off``
            (``CAREQI_PUBLICATION_GATE``): which failed checks mark the report "not for
            publication" when they fail on more than ``publication_gate_pct`` percent
            of their rows (``CAREQI_PUBLICATION_GATE_PCT``, default 5).
        report_font: an OpenType/TrueType file to embed in reports instead of the shipped
            Noto Sans CJK (``CAREQI_REPORT_FONT``).
        schedule_start: the month of the monthly DAG's first scheduled run
            (``CAREQI_SCHEDULE_START``, ``YYYY-MM``, default ``2025-11``); each run
            reports on the month before it, so the default first reports 2025-10. With
            ``catchup`` Airflow creates one run per month from there.
        export_rounding: round published counts in regulator exports to this base after
            suppression (``CAREQI_EXPORT_ROUNDING``; 0, the default, leaves them exact).
        export_connection: an Airflow connection id the ``regulator_export`` DAG
            delivers each export package to (``CAREQI_EXPORT_CONNECTION``: SFTP); empty,
            the default, keeps packages in the local exports folder only.
        export_remote_dir: the folder on that destination packages go under
            (``CAREQI_EXPORT_REMOTE_DIR``, default ``careqi``).
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
    surveys_dir: Path
    valueset_dirs: tuple[Path, ...]
    shared_data_dir: Path
    quarantine_fail_ratio: float = 0.25
    report_months: int = 12
    revision_months: int = 2
    small_number_threshold: int = 11
    timezones: TimeZones = field(default_factory=TimeZones)
    working_calendars: WorkingCalendars = field(default_factory=WorkingCalendars)
    lock_timeout_s: float = 60.0
    delivery_min_share: float = 0.25
    future_days: int = 31
    shard_patients: int = 50_000
    breach_hook: str = ""
    report_languages: tuple[str, ...] = ("en",)
    report_pdf: bool = True
    restricted_dir: Path = Path("var/restricted")
    organisation_file: Path = PROJECT_ROOT / "organisation.yaml"
    publication_gate: str = "feeding"
    publication_gate_pct: float = 5.0
    report_font: Path | None = None
    schedule_start: str = "2025-11"
    export_rounding: int = 0
    export_connection: str = ""
    export_remote_dir: str = "careqi"
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
        surveys_dir=_path(env, "CAREQI_SURVEYS_DIR", PROJECT_ROOT / "surveys"),
        valueset_dirs=tuple(Path(part).expanduser().resolve() for part in vs),
        shared_data_dir=_path(env, "CAREQI_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"),
        quarantine_fail_ratio=_float(env, "CAREQI_QUARANTINE_FAIL_RATIO", 0.25, minimum=0.0),
        report_months=_int(env, "CAREQI_REPORT_MONTHS", 12, minimum=1),
        revision_months=_int(env, "CAREQI_REVISION_MONTHS", 2, minimum=0),
        small_number_threshold=_int(env, "CAREQI_SMALL_NUMBER_THRESHOLD", 11, minimum=1),
        timezones=TimeZones(
            default=check_zone(env.get("CAREQI_TIMEZONE") or DEFAULT_ZONE, "CAREQI_TIMEZONE"),
            facilities=parse_facility_zones(env.get("CAREQI_FACILITY_TIMEZONES", "")),
        ),
        working_calendars=WorkingCalendars(
            default=check_region(env.get("CAREQI_HOLIDAYS") or DEFAULT_REGION, "CAREQI_HOLIDAYS"),
            facilities=parse_facility_regions(env.get("CAREQI_FACILITY_HOLIDAYS", "")),
            workweek=check_workweek(env.get("CAREQI_WORKWEEK") or DEFAULT_WORKWEEK),
        ),
        lock_timeout_s=_float(env, "CAREQI_LOCK_TIMEOUT_S", 60.0, minimum=0.001),
        delivery_min_share=_float(env, "CAREQI_DELIVERY_MIN_SHARE", 0.25, minimum=0.0),
        future_days=_int(env, "CAREQI_FUTURE_DAYS", 31, minimum=0),
        shard_patients=_int(env, "CAREQI_SHARD_PATIENTS", 50_000, minimum=1),
        breach_hook=_hook(env.get("CAREQI_BREACH_HOOK", "")),
        report_languages=_languages(env.get("CAREQI_REPORT_LANGUAGES", "en")),
        report_pdf=_flag(env, "CAREQI_REPORT_PDF", True),
        restricted_dir=_path(env, "CAREQI_RESTRICTED_DIR", home / "restricted"),
        organisation_file=_path(env, "CAREQI_ORGANISATION", PROJECT_ROOT / "organisation.yaml"),
        publication_gate=_choice(env, "CAREQI_PUBLICATION_GATE", "feeding", ("feeding", "any", "off")),
        publication_gate_pct=_float(env, "CAREQI_PUBLICATION_GATE_PCT", 5.0, minimum=0.0),
        report_font=Path(env["CAREQI_REPORT_FONT"]).expanduser() if env.get("CAREQI_REPORT_FONT", "").strip() else None,
        schedule_start=schedule_start(env),
        export_rounding=_int(env, "CAREQI_EXPORT_ROUNDING", 0, minimum=0),
        export_connection=env.get("CAREQI_EXPORT_CONNECTION", "").strip(),
        export_remote_dir=env.get("CAREQI_EXPORT_REMOTE_DIR", "").strip() or "careqi",
        extra={k: v for k, v in env.items() if k.startswith("CAREQI_")},
    )


__all__ = ["PROJECT_ROOT", "Settings", "load_settings", "replace", "schedule_start"]
