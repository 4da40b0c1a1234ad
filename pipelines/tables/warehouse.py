"""The warehouse's own tables: the bookkeeping of each batch (quarantine,
reconciliation, validation checks, column profiles) and the indicator results and
subjects, with the vocabulary their rows use (populations, result states).
"""

from __future__ import annotations

from pipelines.tables.spec import TableSpec
from pipelines.tables.spec import col as _c

#: Rows that could not be accepted, with why and from where. Written by extract
#: (unparseable input) and by validation (failed expectations).
QUARANTINE = TableSpec(
    "quarantine",
    "record_id",
    (
        _c("table_name", nullable=False),
        _c("record_id"),
        _c("stage", nullable=False, doc="extract | validate"),
        _c("reasons", nullable=False, doc="'; '-joined failed checks, each 'check: explanation'"),
        _c("payload", doc="the raw line or row as JSON, truncated to 2,000 characters"),
    ),
    "one row per rejected record",
)

#: read = accepted + quarantined, per table and batch.
RECONCILIATION = TableSpec(
    "reconciliation",
    "table_name",
    (
        _c("table_name", nullable=False),
        _c("rows_read", "Int64", nullable=False),
        _c("rows_accepted", "Int64", nullable=False),
        _c("rows_quarantined", "Int64", nullable=False),
        _c("balanced", "boolean", nullable=False),
    ),
    "one row per table per batch",
    provenance=False,
)

#: One row per expectation per table per batch, in the shape every check shares
#: (after OHDSI DataQualityDashboard): what was checked, how many rows broke it.
VALIDATION_CHECKS = TableSpec(
    "validation_checks",
    "check",
    (
        _c("table_name", nullable=False),
        _c(
            "check",
            nullable=False,
            doc="expectation type plus column(s), e.g. expect_column_values_to_not_be_null(patient_id)",
        ),
        _c("description", doc="plain-language statement from the expectation's meta"),
        _c("category", doc="Kahn category: conformance | completeness | plausibility | uniqueness"),
        _c("violated", "Int64", nullable=False),
        _c("denominator", "Int64", nullable=False),
        _c("pct", "Float64", nullable=False),
        _c("status", nullable=False, doc="pass | fail"),
    ),
    "one row per table x check per batch",
    provenance=False,
)

#: How full each contract column of a batch's accepted rows is: the delivery guard
#: compares a batch with its neighbours (a column that was filled and is now empty is a
#: broken feed), and the data-quality report can show completeness over time.
COLUMN_PROFILES = TableSpec(
    "column_profiles",
    "column_name",
    (
        _c("table_name", nullable=False),
        _c("column_name", nullable=False),
        _c("rows", "Int64", nullable=False, doc="accepted rows of the table in the batch"),
        _c("filled", "Int64", nullable=False, doc="of which have a value in the column"),
    ),
    "one row per table x column per batch",
    provenance=False,
)

#: The population columns of the results and subjects tables (each population of
#: :class:`pipelines.compute.model.Population` names its ``column``).
POPULATIONS = (
    "initial_population",
    "denominator",
    "denominator_exclusion",
    "numerator",
    "numerator_exclusion",
)
#: Per-subject indicator membership, kept for drill-down.
INDICATOR_SUBJECTS = TableSpec(
    "indicator_subjects",
    "subject_id",
    (
        _c("indicator_id", nullable=False),
        _c("period", nullable=False, doc="reporting month YYYY-MM"),
        _c("subject_id", nullable=False, doc="encounter, patient, complaint or response id"),
        _c("patient_id"),
        _c("facility_id"),
        _c("ward_id"),
        _c("service"),
        *(_c(p, "boolean", nullable=False) for p in POPULATIONS),
        _c(
            "censored",
            "boolean",
            doc="the subject's deadline (follow_up) had not passed by the end of the data: out of the denominator",
        ),
        _c("numerator_events", "Int64", doc="ratio measures: qualifying events counted for this subject"),
        _c("denominator_value", "Float64", doc="ratio measures: exposure, e.g. patient-days"),
        _c("observation", "Float64", doc="continuous measures: the per-subject value"),
    ),
    "one row per indicator x period x subject in the initial population",
    provenance=False,
)

#: Aggregates per indicator x period x facility x stratum. facility_id 'ALL' is the
#: whole system; stratifier 'overall' with stratum 'all' is the unstratified row.
INDICATOR_RESULTS = TableSpec(
    "indicator_results",
    "indicator_id",
    (
        _c("indicator_id", nullable=False),
        _c("period", nullable=False),
        _c("facility_id", nullable=False),
        _c("stratifier", nullable=False),
        _c("stratum", nullable=False),
        *(_c(p, "Int64", nullable=False) for p in POPULATIONS),
        _c("numerator_events", "Int64"),
        _c("denominator_value", "Float64"),
        _c("measure_score", "Float64"),
        _c("ci_low", "Float64"),
        _c("ci_high", "Float64"),
        _c("target", "Float64"),
        _c("status", doc="green | amber | red | grey (no data); null when the state is not final (not graded)"),
        _c("censored", "Int64", doc="subjects left out of the denominator until their deadline has passed"),
        _c("state", nullable=False, doc="final | provisional | not_computed"),
        _c("state_reason", doc="why a result is provisional or not computed, in plain language"),
    ),
    "one row per indicator x period x facility x stratum",
    provenance=False,
)

#: Complaints past a service-level deadline, as the daily feedback run found them: one
#: row per complaint and rule on each day it is still open past its deadline. The rules
#: are the complaint indicators that carry a ``follow_up`` deadline (acknowledge within
#: 2 working days, resolve within 25), so the alert and the monthly figure agree.
SLA_BREACHES = TableSpec(
    "sla_breaches",
    "complaint_id",
    (
        _c("detected_on", "datetime64[us]", nullable=False, doc="the (local) day the daily run looked"),
        _c("indicator_id", nullable=False, doc="the rule: the complaint indicator whose deadline passed"),
        _c("complaint_id", nullable=False),
        _c("facility_id", nullable=False),
        _c("ward_id"),
        _c("service"),
        _c("category"),
        _c("received_at", "datetime64[us]"),
        _c("due_on", "datetime64[us]", nullable=False, doc="the last day allowed (facility-local)"),
        _c("days_allowed", "Int64", nullable=False),
        _c("day_count", nullable=False, doc="working | calendar"),
        _c("days_overdue", "Int64", nullable=False, doc="days (of day_count) from due_on to detected_on"),
        _c("new", "boolean", nullable=False, doc="not open past this deadline in the previous run"),
    ),
    "one row per complaint x rule x day it is open past its deadline",
    provenance=False,
)

#: Themes and sentiment of free text (survey comments, complaint descriptions), by the
#: comment model (:mod:`pipelines.analyse.text`). The text itself stays in its own table.
COMMENT_LABELS = TableSpec(
    "comment_labels",
    "record_id",
    (
        _c("source_table", nullable=False, doc="survey_responses | complaints"),
        _c("record_id", nullable=False, doc="response_id or complaint_id"),
        _c("facility_id"),
        _c("ward_id"),
        _c("written_on", "datetime64[us]", doc="completed_on or received_at"),
        _c("themes", doc="';'-separated theme ids, '' for none"),
        _c("sentiment", doc="positive | neutral | negative"),
        _c("model", nullable=False, doc="the comment model's fingerprint"),
    ),
    "one row per classified text",
    provenance=False,
)

#: The improvement-action register: what the committee agreed to do about an indicator
#: in a unit, who owns it and by when. Edited from a file or the CLI (``careqi actions``),
#: shown beside the indicator in the report, overdue ones highlighted.
IMPROVEMENT_ACTIONS = TableSpec(
    "improvement_actions",
    "action_id",
    (
        _c("action_id", nullable=False, doc="a short stable key chosen by whoever records the action"),
        _c("indicator_id", nullable=False),
        _c("unit", nullable=False, doc="the organisation unit it is about: ALL, a facility, department or ward id"),
        _c("title", nullable=False, doc="what will be done, in a sentence"),
        _c("owner", nullable=False, doc="the accountable person or role"),
        _c("due_on", "datetime64[us]", nullable=False),
        _c("status", nullable=False, doc="open | in_progress | done | cancelled"),
        _c("opened_on", "datetime64[us]", nullable=False),
        _c("closed_on", "datetime64[us]"),
        _c("note", doc="progress so far"),
    ),
    "one row per action",
    provenance=False,
)

#: SPC baselines re-phased at a change point: a human decision, never automatic, so
#: each row says who approved it, when and why, and the chart shows it.
SPC_PHASES = TableSpec(
    "spc_phases",
    "indicator_id",
    (
        _c("indicator_id", nullable=False),
        _c("unit", nullable=False, doc="ALL (the system) or a facility id"),
        _c("starts", nullable=False, doc="the first month (YYYY-MM) of the new phase"),
        _c("approved_by", nullable=False),
        _c("approved_at", "datetime64[us]", nullable=False),
        _c("reason", nullable=False, doc="why the process changed (the change made, its date)"),
    ),
    "one row per approved change point",
    provenance=False,
)

#: The secret that turns subject ids into the pseudonyms of the restricted case appendix.
#: Kept only here: the data team re-identifies a pseudonym with it (``careqi appendix
#: reidentify``); anyone holding the appendix alone cannot.
PSEUDONYM_KEYS = TableSpec(
    "pseudonym_keys",
    "key_id",
    (
        _c("key_id", nullable=False),
        _c("secret", nullable=False, doc="hex-encoded 32 random bytes (HMAC-SHA-256 key)"),
        _c("created_at", "datetime64[us]", nullable=False),
    ),
    "one row per key (the newest is used)",
    provenance=False,
)

#: Validation checks of earlier loads of a batch, kept when a reload replaces them, so the
#: data-quality section can say what is newly failing, resolved or persisting.
CHECK_HISTORY = TableSpec(
    "validation_check_history",
    "check",
    (
        _c("batch", nullable=False),
        _c("loaded_at", "datetime64[us]", nullable=False, doc="when the superseded load was made"),
        _c("table_name", nullable=False),
        _c("check", nullable=False),
        _c("violated", "Int64", nullable=False),
        _c("denominator", "Int64", nullable=False),
        _c("pct", "Float64", nullable=False),
        _c("status", nullable=False),
    ),
    "one row per superseded load x table x check",
    provenance=False,
)

ALL_FACILITIES = "ALL"
OVERALL = ("overall", "all")
#: Result states: ``final`` (no later batch can change it), ``provisional`` (open to
#: revision, or cases still within their deadline: shown, not graded), ``not_computed``
#: (the indicator could not be evaluated this time; never its old value).
FINAL, PROVISIONAL, NOT_COMPUTED = "final", "provisional", "not_computed"
STATES = (FINAL, PROVISIONAL, NOT_COMPUTED)


__all__ = [
    "ALL_FACILITIES",
    "CHECK_HISTORY",
    "IMPROVEMENT_ACTIONS",
    "PSEUDONYM_KEYS",
    "SPC_PHASES",
    "COLUMN_PROFILES",
    "COMMENT_LABELS",
    "SLA_BREACHES",
    "FINAL",
    "INDICATOR_RESULTS",
    "INDICATOR_SUBJECTS",
    "NOT_COMPUTED",
    "OVERALL",
    "POPULATIONS",
    "PROVISIONAL",
    "QUARANTINE",
    "RECONCILIATION",
    "STATES",
    "VALIDATION_CHECKS",
]
