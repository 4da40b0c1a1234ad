"""Warehouse tables generated from the table contract (pipelines.tables).

The warehouse never declares a column by hand: every table comes from a TableSpec so
that extract, validation, load and compute cannot drift apart. The warehouse adds:

* ``batch`` (``YYYY-MM``) on every table a batch delivers, because a load replaces a
  whole batch and a record re-sent in a later batch (a Patient referenced again,
  a corrected Encounter) must not overwrite history until read time decides which
  delivery wins;
* primary keys that make a double load impossible: (batch, record id) for source
  tables, the natural grain for indicator tables. The (batch, ...) primary keys also
  serve as the batch index, so no separate single-column batch index is kept there;
* ``bucket`` on every source table: the row's patient shard
  (:mod:`pipelines.load.shards`), indexed where rows are patient-scoped, so a compute
  shard reads its patients' rows and no others;
* only the indexes the project's own queries use: ``bucket`` (a shard's read), the
  record key where a record's other deliveries are looked up (a patient merge, a
  reference resolved against the warehouse) and ``survey_responses.encounter_id``
  (a response kept where its encounter lives). Compute joins in memory, a shard at a
  time, never by patient or date in SQL, and every index is paid for on each monthly
  load: at a million patients the per-patient and per-date indexes of earlier releases
  halved the load's speed for no query. :func:`create_schema` drops them from a
  warehouse that still has them (:data:`RETIRED_INDEXES`);
* ``load_batches`` (what was loaded when) and ``schema_version``, so that a warehouse
  created by an older release is detected instead of misread.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Column, Index, MetaData, PrimaryKeyConstraint, Table
from sqlalchemy.engine import Engine

from pipelines import tables as T
from pipelines.errors import WarehouseError
from pipelines.load.engine import write_transaction
from pipelines.load.shards import BUCKET, MOVABLE_TABLES, SHARDED_TABLES

#: 2: eCQM tables (codings, encounter_locations, encounter_diagnoses, claim_diagnoses,
#: requests) and new columns on medications, procedures, observations, conditions, locations.
#: 3: claim_procedures; encounter_diagnoses.element (diagnosis | reasonReference, part of
#: its key); procedures.recorded_at and medications.recorded_at (QI-Core recorded).
#: 4: (resource_type, id) keys for medications and requests, codings.record_type;
#: column_profiles; load_batches.fingerprint and accepted_as; timestamps in the
#: facility's local time; indicator results with a state (final, provisional, not
#: computed), its reason and censored counts.
#: 5: complaints.complainant_id and description; sla_breaches and comment_labels (the
#: daily patient-feedback run).
#: 6: improvement_actions, spc_phases, pseudonym_keys, validation_check_history (the
#: committee report: actions, audited SPC re-phasing, the restricted appendix, data-quality history).
#: 7: moved_records (records whose deliveries landed in different patient shards) and an
#: index on the record key of the tables where that can happen.
SCHEMA_VERSION = 7
#: Arbitrary constant: PostgreSQL advisory lock serialising concurrent create_schema calls.
_DDL_LOCK_KEY = 7_140_221_901

BATCH = "batch"
QUARANTINE_ID = "quarantine_id"

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    }
)

#: Indexes kept besides ``bucket`` and the movable tables' record keys, by table: what a
#: query of the project filters or joins on (:func:`pipelines.load.batches._record_apart_surveys`,
#: :func:`pipelines.load.snapshot._surveys_of_moved_encounters`).
QUERY_INDEXES: dict[str, tuple[str, ...]] = {"survey_responses": ("encounter_id",)}

#: Per-date and per-patient indexes that releases before this one created on source
#: tables (no query of the project uses them; each cost every load its share of index
#: maintenance). Dropped by :func:`create_schema` when present; the table layout is
#: unchanged, so the schema version is too.
_RETIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("birth_date",),
    "encounters": ("start_at", "end_at", "patient_id"),
    "conditions": ("onset_at", "recorded_at", "patient_id", "encounter_id"),
    "procedures": ("performed_start", "patient_id", "encounter_id"),
    "medications": ("effective_start", "patient_id", "encounter_id"),
    "observations": ("effective_at", "patient_id", "encounter_id"),
    "adverse_events": ("occurred_at", "patient_id", "encounter_id"),
    "survey_responses": ("completed_on",),
    "complaints": ("received_at",),
    "encounter_locations": ("start_at", "patient_id", "encounter_id"),
    "encounter_diagnoses": ("patient_id", "encounter_id"),
    "claim_diagnoses": ("billable_start", "patient_id", "encounter_id"),
    "claim_procedures": ("patient_id", "encounter_id"),
    "requests": ("authored_at", "patient_id", "encounter_id"),
}
RETIRED_INDEXES: tuple[str, ...] = tuple(
    f"ix_{table}_{column}" for table, columns in _RETIRED_COLUMNS.items() for column in columns
)


def utc_now() -> datetime:
    """Naive UTC, the contract's timestamp convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def sa_type(dtype: str, *, short: bool = False) -> sa.types.TypeEngine:
    """SQL type for a pandas dtype of the contract. Timestamps are the facility's
    local wall-clock time by contract (naive), hence DateTime without time zone on
    both back ends."""
    if dtype in ("string", "str"):
        return sa.String(7) if short else sa.Text()
    if dtype == "Int64":
        return sa.BigInteger()
    if dtype == "Float64":
        return sa.Float(53)
    if dtype == "boolean":
        return sa.Boolean()
    if dtype == T.TS:
        return sa.DateTime(timezone=False)
    raise WarehouseError(f"no warehouse type for pandas dtype {dtype!r}")


def _columns(spec: T.TableSpec, *, short: tuple[str, ...] = ()) -> list[Column]:
    nullable = {c.name: c.nullable for c in spec.columns}
    return [
        Column(name, sa_type(dtype, short=name in short), nullable=nullable.get(name, True))
        for name, dtype in spec.dtypes.items()
    ]


def _batch_column() -> Column:
    return Column(BATCH, sa.String(7), nullable=False)


def _source_table(spec: T.TableSpec) -> Table:
    names = set(spec.column_names)
    for col in QUERY_INDEXES.get(spec.name, ()):
        if col not in names:
            raise WarehouseError(f"index column {spec.name}.{col} is not in the table contract")
    indexes = [Index(None, c) for c in QUERY_INDEXES.get(spec.name, ())]
    if spec.name in SHARDED_TABLES:
        indexes.append(Index(None, BUCKET))
    if spec.name in MOVABLE_TABLES:  # finds a record's other deliveries when a batch is loaded
        indexes.append(Index(None, *spec.key_columns))
    return Table(
        spec.name,
        metadata,
        _batch_column(),
        Column(BUCKET, sa.SmallInteger(), nullable=True),
        *_columns(spec),
        PrimaryKeyConstraint(BATCH, *spec.key_columns),
        *indexes,
    )


SOURCE_TABLES: dict[str, Table] = {name: _source_table(spec) for name, spec in T.TABLES.items()}

quarantine = Table(
    T.QUARANTINE.name,
    metadata,
    # No natural key: one source line can fail at extract and its row at validation.
    Column(
        QUARANTINE_ID,
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    _batch_column(),
    *_columns(T.QUARANTINE),
    Index(None, BATCH, "table_name"),
)

reconciliation = Table(
    T.RECONCILIATION.name,
    metadata,
    _batch_column(),
    *_columns(T.RECONCILIATION),
    PrimaryKeyConstraint(BATCH, "table_name"),
)

column_profiles = Table(
    T.COLUMN_PROFILES.name,
    metadata,
    _batch_column(),
    *_columns(T.COLUMN_PROFILES),
    PrimaryKeyConstraint(BATCH, "table_name", "column_name"),
)

validation_checks = Table(
    T.VALIDATION_CHECKS.name,
    metadata,
    _batch_column(),
    *_columns(T.VALIDATION_CHECKS),
    PrimaryKeyConstraint(BATCH, "table_name", "check"),
)

indicator_subjects = Table(
    T.INDICATOR_SUBJECTS.name,
    metadata,
    *_columns(T.INDICATOR_SUBJECTS, short=("period",)),
    PrimaryKeyConstraint("indicator_id", "period", "subject_id"),
    Index(None, "period"),
)

indicator_results = Table(
    T.INDICATOR_RESULTS.name,
    metadata,
    *_columns(T.INDICATOR_RESULTS, short=("period",)),
    PrimaryKeyConstraint("indicator_id", "period", "facility_id", "stratifier", "stratum"),
    Index(None, "period"),
)

sla_breaches = Table(
    T.SLA_BREACHES.name,
    metadata,
    *_columns(T.SLA_BREACHES),
    PrimaryKeyConstraint("detected_on", "indicator_id", "complaint_id"),
)

comment_labels = Table(
    T.COMMENT_LABELS.name,
    metadata,
    *_columns(T.COMMENT_LABELS),
    PrimaryKeyConstraint("source_table", "record_id"),
    Index(None, "written_on"),
)

improvement_actions = Table(
    T.IMPROVEMENT_ACTIONS.name,
    metadata,
    *_columns(T.IMPROVEMENT_ACTIONS),
    PrimaryKeyConstraint("action_id"),
)

spc_phases = Table(
    T.SPC_PHASES.name,
    metadata,
    *_columns(T.SPC_PHASES),
    PrimaryKeyConstraint("indicator_id", "unit", "starts"),
)

pseudonym_keys = Table(
    T.PSEUDONYM_KEYS.name,
    metadata,
    *_columns(T.PSEUDONYM_KEYS),
    PrimaryKeyConstraint("key_id"),
)

validation_check_history = Table(
    T.CHECK_HISTORY.name,
    metadata,
    *_columns(T.CHECK_HISTORY),
    PrimaryKeyConstraint("batch", "loaded_at", "table_name", "check"),
)

retired_indicator_results = Table(
    "retired_indicator_results",
    metadata,
    *_columns(T.INDICATOR_RESULTS, short=("period",)),
    Column("retired_at", sa.DateTime(timezone=False), nullable=False),
    PrimaryKeyConstraint("indicator_id", "period", "facility_id", "stratifier", "stratum"),
)

retired_indicator_subjects = Table(
    "retired_indicator_subjects",
    metadata,
    *_columns(T.INDICATOR_SUBJECTS, short=("period",)),
    Column("retired_at", sa.DateTime(timezone=False), nullable=False),
    PrimaryKeyConstraint("indicator_id", "period", "subject_id"),
)

#: Deliveries of a record that sit in different patient buckets (a merged patient's
#: encounters re-sent under the surviving patient), found when ``batch`` was loaded:
#: the record's delivery in ``delivery_batch`` is read by every shard the record passed
#: through (:mod:`pipelines.load.shards`). Replaced with its batch; a row naming a
#: delivery batch reloaded since only makes a shard read a delivery it then discards.
moved_records = Table(
    "moved_records",
    metadata,
    _batch_column(),
    Column("table_name", sa.Text(), nullable=False),
    # the record's resource type in tables holding several, else ""
    Column("record_type", sa.Text(), nullable=False),
    Column("record_id", sa.Text(), nullable=False),
    Column("delivery_batch", sa.String(7), nullable=False),
    PrimaryKeyConstraint(BATCH, "table_name", "record_type", "record_id", "delivery_batch"),
    Index(None, "table_name", "delivery_batch"),
)

load_batches = Table(
    "load_batches",
    metadata,
    Column(BATCH, sa.String(7), primary_key=True),
    Column("loaded_at", sa.DateTime(timezone=False), nullable=False),
    Column("rows_written", sa.BigInteger(), nullable=False),
    # SHA-256 over the delivered files (names and bytes): the same delivery loaded twice
    # has the same fingerprint, and an export can say which input produced it.
    Column("fingerprint", sa.String(64), nullable=True),
    # How the delivery guard was passed: "" when it passed, else "forced" or
    # "empty: <tables>" as the operator declared (pipelines.validate.delivery).
    Column("accepted_as", sa.Text(), nullable=True),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    Column("applied_at", sa.DateTime(timezone=False), nullable=False),
)

#: Tables replaced wholesale by replace_batch, with the spec that types them.
BATCH_TABLES: dict[str, tuple[Table, T.TableSpec]] = {
    **{name: (SOURCE_TABLES[name], spec) for name, spec in T.TABLES.items()},
    T.QUARANTINE.name: (quarantine, T.QUARANTINE),
    T.RECONCILIATION.name: (reconciliation, T.RECONCILIATION),
    T.VALIDATION_CHECKS.name: (validation_checks, T.VALIDATION_CHECKS),
    T.COLUMN_PROFILES.name: (column_profiles, T.COLUMN_PROFILES),
}


def create_schema(engine: Engine) -> None:
    """Create every warehouse table and index that does not exist yet.

    Safe to call at the start of every run and from parallel tasks: on PostgreSQL an
    advisory lock serialises the check-then-create, on SQLite the write transaction
    does. A warehouse stamped with a different schema version is refused rather than
    silently mixed with this release's layout; one of this version loses the indexes
    no query uses any more (:data:`RETIRED_INDEXES`).
    """
    with write_transaction(engine, "creating the warehouse schema") as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_DDL_LOCK_KEY)))
        metadata.create_all(conn, checkfirst=True)
        found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
        if found is None:
            conn.execute(sa.insert(schema_version), {"version": SCHEMA_VERSION, "applied_at": utc_now()})
        elif found != SCHEMA_VERSION:
            raise WarehouseError(
                f"warehouse schema version is {found} but this CareQI release expects {SCHEMA_VERSION}; "
                "migrate or point CAREQI_WAREHOUSE_URL at a new warehouse"
            )
        for index in RETIRED_INDEXES:  # same layout, fewer indexes: no version change
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {conn.dialect.identifier_preparer.quote(index)}")
