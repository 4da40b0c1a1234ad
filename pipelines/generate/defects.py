"""Deliberate, recorded data-quality defects.

Real feeds are never clean, and a pipeline that has only seen clean data has not
been tested. Each defect breaks a record in exactly one detectable way (so that the
validation room can prove it catches each kind, and reconciliation can match the
quarantine to the manifest), and every one is listed in ``_defects.jsonl``.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import orjson

from pipelines.generate.clock import iso, minute_of

MALFORMED_JSON = "malformed_json"
MISSING_FIELD = "missing_field"
IMPOSSIBLE_DATE = "impossible_date"
UNKNOWN_CODE = "unknown_code"
DUPLICATE = "duplicate"
UNPARSEABLE_DATE = "unparseable_date"
KINDS = (MALFORMED_JSON, MISSING_FIELD, IMPOSSIBLE_DATE, UNKNOWN_CODE, DUPLICATE, UNPARSEABLE_DATE)

#: Codes outside every vocabulary the validation suites allow.
BAD_GENDER = "robot"
BAD_CLASS = "ZZZ"
BAD_POA = "Q"
BAD_HARM = "catastrophic"
BAD_CHANNEL = "carrier_pigeon"
BAD_RECOMMEND = 9
BAD_LIKERT = 7
#: The year used for impossible (future) dates: parseable, but after 2100.
FUTURE_YEAR = "2199"

#: Which date each resource type gets an impossible / unparseable value in (dotted path).
_IMPOSSIBLE_FIELD = {
    "Patient": "birthDate",
    "Condition": "recordedDate",
    "MedicationAdministration": "effectiveDateTime",
    "Observation": "effectiveDateTime",
    "AdverseEvent": "recordedDate",
    "Claim": "billablePeriod.end",
}
_UNPARSEABLE_FIELD = {
    "Patient": "birthDate",
    "Encounter": "period.start",
    "Condition": "recordedDate",
    "MedicationAdministration": "effectiveDateTime",
    "Observation": "effectiveDateTime",
    "AdverseEvent": "date",
    "Claim": "billablePeriod.start",
}
#: The reference to the patient a record cannot do without (a Claim names it ``patient``).
_SUBJECT_FIELD = {"Claim": "patient"}
SURVEY_LIKERT = ("q_reliability", "q_responsiveness", "q_assurance", "q_empathy", "q_tangibles")


def future(value: str) -> str:
    """Same date in 2199 (Feb 29 becomes Feb 28: 2199 is not a leap year)."""
    out = FUTURE_YEAR + value[4:]
    return out.replace("-02-29", "-02-28", 1) if value[5:10] == "02-29" else out


def feb30(value: str) -> str:
    """A well-formed but non-existent date: 30 February of the same year."""
    return value[:5] + "02-30" + value[10:]


def _get(res: dict[str, Any], path: str) -> Any:
    cur: Any = res
    for part in path.split("."):
        cur = cur[part]
    return cur


def _set(res: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur = res
    for part in parts[:-1]:
        cur = cur[part]
    cur[parts[-1]] = value


def _procedure_date_field(res: dict[str, Any], which: str) -> str:
    if "performedDateTime" in res:
        return "performedDateTime"
    return f"performedPeriod.{which}"


def resource_kinds(res: dict[str, Any]) -> tuple[str, ...]:
    rt = res["resourceType"]
    kinds = [MALFORMED_JSON, MISSING_FIELD, IMPOSSIBLE_DATE, DUPLICATE, UNPARSEABLE_DATE]
    if rt in ("Patient", "Encounter", "AdverseEvent", "Claim") or (rt == "Condition" and "extension" in res):
        kinds.append(UNKNOWN_CODE)
    return tuple(kinds)


def break_resource(res: dict[str, Any], kind: str, rng: random.Random) -> tuple[bytes, str | None]:
    """The defective line for ``res`` (not newline-terminated) and the record id it still carries."""
    rid: str | None = res.get("id")
    if kind == MALFORMED_JSON:
        line = orjson.dumps(res)
        return line[: max(1, int(len(line) * rng.uniform(0.3, 0.8)))], rid
    if kind == DUPLICATE:
        return orjson.dumps(res), rid
    r = orjson.loads(orjson.dumps(res))  # private deep copy: clean dicts are shared
    rt = r["resourceType"]
    if kind == MISSING_FIELD:
        if rt == "Patient":
            del r["id"]
            rid = None
        else:
            del r[_SUBJECT_FIELD.get(rt, "subject")]
    elif kind == IMPOSSIBLE_DATE:
        if rt == "Encounter":
            start = minute_of(datetime.fromisoformat(r["period"]["start"]))
            r["period"]["end"] = iso(start - rng.randint(60, 48 * 60))
        else:
            path = _procedure_date_field(r, "end") if rt == "Procedure" else _IMPOSSIBLE_FIELD[rt]
            _set(r, path, future(_get(r, path)))
    elif kind == UNPARSEABLE_DATE:
        path = _procedure_date_field(r, "start") if rt == "Procedure" else _UNPARSEABLE_FIELD[rt]
        _set(r, path, feb30(_get(r, path)))
    elif kind == UNKNOWN_CODE:
        if rt == "Patient":
            r["gender"] = BAD_GENDER
        elif rt == "Encounter":
            r["class"]["code"] = BAD_CLASS
            r["class"].pop("display", None)
        elif rt == "Condition":
            r["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = BAD_POA
        elif rt == "AdverseEvent":
            r["extension"][0]["valueCode"] = BAD_HARM
        elif rt == "Claim":
            diagnosis = r["diagnosis"][rng.randrange(len(r["diagnosis"]))]
            diagnosis["onAdmission"]["coding"][0]["code"] = BAD_POA
        else:
            raise ValueError(f"no unknown_code defect for {rt}")
    else:
        raise ValueError(f"unknown defect kind {kind!r}")
    return orjson.dumps(r), rid


def row_kinds(table: str, row: dict[str, Any]) -> tuple[str, ...]:
    kinds = [MISSING_FIELD, UNKNOWN_CODE, DUPLICATE, UNPARSEABLE_DATE]
    if table == "survey_responses" or row.get("acknowledged_at"):
        kinds.insert(1, IMPOSSIBLE_DATE)
    return tuple(kinds)


def break_row(table: str, row: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
    """A defective copy of a feedback CSV row (column -> value)."""
    r = dict(row)
    survey = table == "survey_responses"
    if kind == MISSING_FIELD:
        r["facility_id"] = None
    elif kind == IMPOSSIBLE_DATE:
        if survey:
            r["completed_on"] = future(r["completed_on"])
        else:
            received = minute_of(datetime.fromisoformat(r["received_at"]))
            r["acknowledged_at"] = iso(received - rng.randint(60, 3 * 24 * 60))
    elif kind == UNPARSEABLE_DATE:
        col = "completed_on" if survey else "received_at"
        r[col] = feb30(r[col])
    elif kind == UNKNOWN_CODE:
        if not survey:
            r["channel"] = BAD_CHANNEL
        elif rng.random() < 0.5:
            r["recommend"] = BAD_RECOMMEND
        else:
            r[SURVEY_LIKERT[rng.randrange(len(SURVEY_LIKERT))]] = BAD_LIKERT
    elif kind != DUPLICATE:
        raise ValueError(f"unknown defect kind {kind!r}")
    return r
