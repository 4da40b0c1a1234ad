"""Readers and an independent defect detector for generated batch folders.

The detector re-derives, from the bytes on disk alone, every way a line can be
broken; tests then demand that it finds exactly the manifest's kind on listed lines
and nothing on all others.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from pipelines.tables import HARM_LEVELS, POA_EXTENSION

NDJSON = (
    "Patient.ndjson",
    "Encounter.ndjson",
    "Condition.ndjson",
    "Procedure.ndjson",
    "MedicationAdministration.ndjson",
    "Observation.ndjson",
    "AdverseEvent.ndjson",
    "Claim.ndjson",
    "Organization.ndjson",
    "Location.ndjson",
)
CSVS = ("survey_responses.csv", "complaints.csv")

GENDERS = {"male", "female", "other", "unknown"}
CLASSES = {"IMP", "AMB", "EMER"}
PRIORITIES = {"EM", "UR", "EL"}
POA = {"Y", "N", "U", "W"}
MODES = {"post", "phone", "web", "sms"}
CHANNELS = {"phone", "email", "letter", "web", "in_person"}
CATEGORIES = {
    "clinical_care",
    "communication",
    "waiting_times",
    "staff_attitude",
    "environment",
    "discharge",
    "medication",
    "other",
}
SEVERITIES = {"low", "moderate", "high"}
STATUSES = {"open", "acknowledged", "resolved"}
OUTCOMES = {"upheld", "partly_upheld", "not_upheld", "withdrawn"}
LIKERT = ("q_reliability", "q_responsiveness", "q_assurance", "q_empathy", "q_tangibles")


def batches(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def manifest(batch: Path) -> list[dict[str, Any]]:
    text = (batch / "_defects.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def ndjson_lines(batch: Path, name: str) -> list[bytes]:
    return (batch / name).read_bytes().splitlines()


def csv_rows(batch: Path, name: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(batch / name, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def clean_resources(root: Path, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(batch name, resource) for every line of ``name`` not listed as defective."""
    for b in batches(root):
        bad = {d["line"] for d in manifest(b) if d["file"] == name}
        for i, line in enumerate(ndjson_lines(b, name), 1):
            if i not in bad:
                yield b.name, orjson.loads(line)


def clean_rows(root: Path, name: str) -> Iterator[tuple[str, dict[str, str]]]:
    for b in batches(root):
        bad = {d["line"] for d in manifest(b) if d["file"] == name}
        for i, row in enumerate(csv_rows(b, name)[1], 1):
            if i not in bad:
                yield b.name, row


def ts(value: str) -> datetime | date:
    return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)


def month(value: str) -> str:
    return value[:7]


def _dates(r: dict[str, Any]) -> list[str]:
    rt = r.get("resourceType")
    out: list[str | None] = []
    if rt == "Patient":
        out += [r.get("birthDate"), r.get("deceasedDateTime")]
    elif rt == "Encounter":
        out += [r["period"].get("start"), r["period"].get("end")]
    elif rt == "Condition":
        out += [r.get("onsetDateTime"), r.get("abatementDateTime"), r.get("recordedDate")]
    elif rt == "Procedure":
        p = r.get("performedPeriod", {})
        out += [r.get("performedDateTime"), p.get("start"), p.get("end")]
    elif rt in ("MedicationAdministration", "Observation"):
        out.append(r.get("effectiveDateTime"))
    elif rt == "AdverseEvent":
        out += [r.get("date"), r.get("recordedDate")]
    elif rt == "Claim":
        out += [r.get("billablePeriod", {}).get("start"), r.get("billablePeriod", {}).get("end"), r.get("created")]
        for item in r.get("item", []):
            out += [item.get("servicedDate"), *item.get("servicedPeriod", {}).values()]
        out += [p.get("date") for p in r.get("procedure", [])]
    return [d for d in out if d is not None]


def _date_problems(values: list[str]) -> set[str]:
    found: set[str] = set()
    for v in values:
        try:
            t = ts(v)
        except ValueError:
            found.add("unparseable_date")
            continue
        if not 1900 <= t.year <= 2100:
            found.add("impossible_date")
    return found


def resource_problems(line: bytes, earlier: set[bytes]) -> set[str]:
    """Every defect kind detectable in one NDJSON line."""
    found: set[str] = set()
    if line in earlier:
        found.add("duplicate")
    try:
        r = orjson.loads(line)
    except orjson.JSONDecodeError:
        return found | {"malformed_json"}
    rt = r["resourceType"]
    if rt in ("Organization", "Location"):
        return found
    subject = "patient" if rt == "Claim" else "subject"
    if "id" not in r or (rt != "Patient" and subject not in r):
        found.add("missing_field")
    found |= _date_problems(_dates(r))
    if rt == "Patient" and r.get("gender") not in GENDERS:
        found.add("unknown_code")
    if rt == "Encounter":
        if r["class"]["code"] not in CLASSES or r["status"] != "finished":
            found.add("unknown_code")
        prio = r.get("priority")
        if prio is not None and prio["coding"][0]["code"] not in PRIORITIES:
            found.add("unknown_code")
        try:
            if ts(r["period"]["end"]) < ts(r["period"]["start"]):
                found.add("impossible_date")
        except ValueError:
            pass
    if rt == "Condition":
        for ext in r.get("extension", []):
            if ext["url"] == POA_EXTENSION and ext["valueCodeableConcept"]["coding"][0]["code"] not in POA:
                found.add("unknown_code")
    if rt == "AdverseEvent" and r["extension"][0]["valueCode"] not in HARM_LEVELS:
        found.add("unknown_code")
    if rt == "Claim":
        if any(d["onAdmission"]["coding"][0]["code"] not in POA for d in r["diagnosis"]):
            found.add("unknown_code")
        try:
            period = r["billablePeriod"]
            if ts(period["end"]) < ts(period["start"]):
                found.add("impossible_date")
        except ValueError:
            pass
    return found


def _int_in(value: str, lo: int, hi: int) -> bool:
    try:
        return lo <= int(value) <= hi
    except ValueError:
        return False


def row_problems(name: str, row: dict[str, str], raw: tuple[str, ...], earlier: set[tuple[str, ...]]) -> set[str]:
    found: set[str] = set()
    if raw in earlier:
        found.add("duplicate")
    if not row["facility_id"]:
        found.add("missing_field")
    if name == "survey_responses.csv":
        found |= _date_problems([row["completed_on"]])
        ok = (
            row["mode"] in MODES
            and _int_in(row["recommend"], 1, 4)
            and _int_in(row["overall_rating"], 0, 10)
            and all(_int_in(row[q], 1, 5) for q in LIKERT)
        )
        if not ok:
            found.add("unknown_code")
        return found
    stamps = [row[c] for c in ("received_at", "acknowledged_at", "resolved_at") if row[c]]
    found |= _date_problems(stamps)
    vocab_ok = (
        row["channel"] in CHANNELS
        and row["category"] in CATEGORIES
        and row["severity"] in SEVERITIES
        and row["status"] in STATUSES
        and (row["outcome"] in OUTCOMES if row["status"] == "resolved" else row["outcome"] == "")
    )
    if not vocab_ok:
        found.add("unknown_code")
    try:
        received = ts(row["received_at"])
        for c in ("acknowledged_at", "resolved_at"):
            if row[c] and ts(row[c]) < received:
                found.add("impossible_date")
    except ValueError:
        pass
    consistent = {
        "open": not row["acknowledged_at"] and not row["resolved_at"],
        "acknowledged": bool(row["acknowledged_at"]) and not row["resolved_at"],
        "resolved": bool(row["acknowledged_at"]) and bool(row["resolved_at"]),
    }.get(row["status"], True)
    if not consistent:
        found.add("inconsistent_status")
    return found


def ref_id(ref: dict[str, Any] | None) -> str | None:
    return ref["reference"].split("/", 1)[1] if ref else None


def subject_id(r: dict[str, Any]) -> str | None:
    """The patient a record belongs to (a Claim names it ``patient``)."""
    return ref_id(r["patient"] if r["resourceType"] == "Claim" else r["subject"])


def claim_encounter(claim: dict[str, Any]) -> str | None:
    """The stay a claim bills: the encounter of its first item (how CQMCommon links them)."""
    return ref_id(claim["item"][0]["encounter"][0])


def claim_diagnoses(claim: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(system, code, POA indicator) of each Claim.diagnosis."""
    out = []
    for d in claim["diagnosis"]:
        coding = d["diagnosisCodeableConcept"]["coding"][0]
        out.append((coding["system"], coding["code"], d["onAdmission"]["coding"][0]["code"]))
    return out
