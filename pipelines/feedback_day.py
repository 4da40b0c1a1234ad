"""The daily patient-feedback run: ingest -> validate -> classify -> SLA breaches.

A complaints team cannot wait for the monthly report to learn that a complaint is past
its acknowledgement deadline. Each evening the complaints system and the survey
provider send the day's extract (``<incoming>/feedback/<YYYY-MM-DD>/complaints.csv`` and
``survey_responses.csv``; see :mod:`pipelines.generate.daily` for what they hold), and
this run, the same functions for ``careqi feedback day`` and the
``patient_feedback_daily`` DAG:

1. :func:`ingest_day` reads the files, validates them with the same GX suites as the
   monthly batch, quarantines failing rows with their reasons and checks
   read = accepted + quarantined; the day's validated frames are staged under
   ``<staging>/feedback/<day>/`` (the quarantine with them, to inspect);
2. :func:`record_day` classifies the texts not labelled yet (survey comments and
   complaint descriptions: themes and sentiment, stored in ``comment_labels``) and
   stores the day's list of complaints open past a service-level deadline in
   ``sla_breaches`` (the deadlines are the complaint indicators', see
   :mod:`pipelines.analyse.breaches`), returning counts for the alert.

The monthly batch stays the record the indicators are computed from: a day's delivery
is a partial view of the month, so it is not loaded into the batch tables (that would
make the month look delivered). Re-running a day replaces what it stored.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import periods
from pipelines.config import Settings, load_settings
from pipelines.errors import ExtractError, ValidationFailed
from pipelines.tables import COMMENT_LABELS, QUARANTINE, TABLES, empty_frame

log = logging.getLogger(__name__)

FEEDBACK_TABLES = ("survey_responses", "complaints")
#: Which column of each feedback table holds free text, and which dates it.
TEXT_COLUMNS = {"survey_responses": ("response_id", "comment", "completed_on"),
                "complaints": ("complaint_id", "description", "received_at")}  # fmt: skip
_META = "_meta.json"
_QUARANTINE = "_quarantine.parquet"


def day_input(settings: Settings, day: str) -> Path:
    from pipelines.generate.daily import FEEDBACK_DIR

    return settings.incoming_dir / FEEDBACK_DIR / day


def day_staging(settings: Settings, day: str) -> Path:
    return settings.staging_dir / "feedback" / day


def ingest_day(day: str, settings: Settings | None = None, *, input_dir: Path | None = None) -> str:
    """Extract and validate one day's feedback files; stage the accepted rows."""
    from pipelines.extract import extract_batch
    from pipelines.load import lookup_records
    from pipelines.stages import warehouse
    from pipelines.surveys import load_surveys
    from pipelines.validate import reconcile, validate_tables

    settings = settings or load_settings()
    day = periods.validate_day(day)
    source = Path(input_dir) if input_dir else day_input(settings, day)
    if not source.is_dir():
        raise ExtractError(f"no feedback delivery for {day}: {source} does not exist")
    result = extract_batch(source, timezones=settings.timezones, surveys=load_surveys(settings.surveys_dir))
    others = sorted(t for t, n in result.rows_read.items() if n and t not in FEEDBACK_TABLES)
    if others:
        raise ExtractError(f"{source} holds {', '.join(others)}: a daily feedback delivery holds only "
                           f"{' and '.join(f + '.csv' for f in FEEDBACK_TABLES)}")  # fmt: skip
    tables = {t: result.tables.get(t, empty_frame(TABLES[t])) for t in FEEDBACK_TABLES}
    rows_read = {t: int(result.rows_read.get(t, 0)) for t in FEEDBACK_TABLES}
    engine = warehouse(settings)
    try:
        from functools import partial

        latest = pd.Timestamp(day) + pd.Timedelta(days=1 + settings.future_days)
        checked = validate_tables(
            tables,
            settings.expectations_dir,
            fail_ratio=settings.quarantine_fail_ratio,
            parameters={"latest_plausible": latest},
            extract_quarantine=result.quarantine,
            rows_read=rows_read,
            missing_columns={t: c for t, c in result.missing_columns.items() if t in FEEDBACK_TABLES},
            lookup=partial(lookup_records, engine),
            relations=False,  # the stays they name arrive with the monthly batch, which checks them
        )
    finally:
        engine.dispose()
    quarantine = pd.concat([result.quarantine, checked.quarantine], ignore_index=True)
    balance = reconcile(rows_read, checked.valid, quarantine)
    out = day_staging(settings, day)
    out.mkdir(parents=True, exist_ok=True)
    for name in FEEDBACK_TABLES:
        checked.valid.get(name, empty_frame(TABLES[name])).to_parquet(out / f"{name}.parquet", index=False)
    quarantine.astype(QUARANTINE.dtypes).to_parquet(out / _QUARANTINE, index=False)
    meta = {
        "day": day,
        "source": str(source),
        "rows_read": rows_read,
        "accepted": {t: int(len(checked.valid.get(t, []))) for t in FEEDBACK_TABLES},
        "quarantined": len(quarantine),
        "balanced": bool(balance["balanced"].all()) if len(balance) else True,
        "failed_tables": list(checked.failed_tables),
    }
    (out / _META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    if not meta["balanced"]:
        raise ValidationFailed(f"feedback delivery {day}: read != accepted + quarantined; see {out / _QUARANTINE}")
    if checked.failed_tables:
        raise ValidationFailed(
            f"feedback delivery {day}: {', '.join(checked.failed_tables)} above the quarantine fail ratio "
            f"({settings.quarantine_fail_ratio:.0%}); see {out / _QUARANTINE}"
        )
    log.info("feedback %s: %d rows read, %d quarantined", day, sum(rows_read.values()), len(quarantine))
    return str(out)


def _staged(settings: Settings, day: str) -> dict[str, pd.DataFrame]:
    """The day's validated frames; a delivery that failed validation is never recorded
    (its staged files are kept only for inspection)."""
    folder = day_staging(settings, day)
    if not (folder / _META).exists():
        raise ValidationFailed(f"no validated feedback for {day} under {folder}: run the ingest step first")
    meta = json.loads((folder / _META).read_text())
    if not meta.get("balanced", False) or meta.get("failed_tables"):
        raise ValidationFailed(
            f"the feedback delivery for {day} failed validation (see {folder / _QUARANTINE}): fix it and ingest again"
        )
    return {t: pd.read_parquet(folder / f"{t}.parquet") for t in FEEDBACK_TABLES}


def texts_to_label(frames: dict[str, pd.DataFrame], labelled: pd.DataFrame, model: str) -> pd.DataFrame:
    """The day's texts without a label from ``model`` yet: source_table, record_id, text,
    facility_id, ward_id, written_on."""
    parts = []
    done = set(zip(labelled["source_table"], labelled["record_id"], labelled["model"], strict=True))
    for table, (key, column, when) in TEXT_COLUMNS.items():
        df = frames[table]
        has = df[column].astype("string").str.strip().fillna("") != ""
        rows = df.loc[has]
        part = pd.DataFrame(
            {
                "source_table": table,
                "record_id": rows[key].astype("string"),
                "text": rows[column].astype("string"),
                "facility_id": rows["facility_id"].astype("string"),
                "ward_id": rows["ward_id"].astype("string"),
                "written_on": pd.to_datetime(rows[when]).astype("datetime64[us]"),
            }
        )
        fresh = [(table, rid, model) not in done for rid in part["record_id"]]
        parts.append(part.loc[fresh])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def label_texts(texts: pd.DataFrame) -> pd.DataFrame:
    """``texts`` (from :func:`texts_to_label`) with their themes and sentiment, as COMMENT_LABELS."""
    from pipelines.analyse.text.classifier import classify, model_fingerprint

    if not len(texts):
        return empty_frame(COMMENT_LABELS)
    labels = classify(texts["text"].tolist())
    out = texts.drop(columns=["text"]).reset_index(drop=True)
    out["themes"] = labels["themes"].astype("string").to_numpy()
    out["sentiment"] = labels["sentiment"].astype("string").to_numpy()
    out["model"] = model_fingerprint()
    return out.astype(COMMENT_LABELS.dtypes)[COMMENT_LABELS.column_names]


def record_day(day: str, settings: Settings | None = None) -> dict[str, Any]:
    """Label the day's new texts and store its SLA breaches; returns the alert's counts
    (no complaint id: those stay in the warehouse's ``sla_breaches``)."""
    from pipelines.analyse.breaches import breach_summary, open_breaches, service_levels
    from pipelines.analyse.text.classifier import model_fingerprint
    from pipelines.load import create_schema
    from pipelines.load.feedback import read_breaches, read_labels, replace_breaches, upsert_labels
    from pipelines.stages import indicator_catalogue, warehouse

    settings = settings or load_settings()
    day = periods.validate_day(day)
    frames = _staged(settings, day)
    indicators, _ = indicator_catalogue(settings)
    levels = service_levels(indicators)
    engine = warehouse(settings)
    try:
        create_schema(engine)
        labels = label_texts(texts_to_label(frames, read_labels(engine), model_fingerprint()))
        if len(labels):
            upsert_labels(engine, labels)
        previous = read_breaches(engine, before=day)
        breaches = open_breaches(
            frames["complaints"], levels, day, calendars=settings.working_calendars, previous=previous
        )
        replace_breaches(engine, day, breaches)
    finally:
        engine.dispose()
    summary: dict[str, Any] = {"day": day, "labelled": int(len(labels)), **breach_summary(breaches, levels)}
    if summary["open"]:
        log.warning(
            "feedback %s: %d complaint(s) open past a deadline, %d new (%s)",
            day,
            summary["open"],
            summary["new"],
            "; ".join(f"{k}: {v['open']} open, {v['new']} new" for k, v in summary["by_rule"].items()),
        )
    else:
        log.info("feedback %s: no complaint open past a deadline", day)
    return summary


def run_day(day: str, settings: Settings | None = None, *, input_dir: Path | None = None) -> dict[str, Any]:
    """Both steps, as ``careqi feedback day`` runs them."""
    settings = settings or load_settings()
    ingest_day(day, settings, input_dir=input_dir)
    return record_day(day, settings)


__all__ = ["FEEDBACK_TABLES", "ingest_day", "label_texts", "record_day", "run_day", "texts_to_label"]
