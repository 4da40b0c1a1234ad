"""FHIR R4 ``QuestionnaireResponse`` -> one ``survey_responses`` row, through the survey's map.

A survey provider sending FHIR sends each return as a QuestionnaireResponse that names its
``Questionnaire`` (a canonical URL). Which ``linkId`` answers which column is the survey
file's business (:mod:`pipelines.surveys`), so a hospital brings its own survey without
code. Reading a response:

* only *returns* count: ``status`` completed or amended; ``in-progress`` and ``stopped``
  forms are not survey returns and are counted as ignored (``entered-in-error`` too); a
  response with no status, or one FHIR does not define, is quarantined saying so;
* items are found at any depth (groups nest items), answers in ``answer[0]``:
  ``valueInteger`` / ``valueDecimal`` as numbers, ``valueCoding`` by its ``code`` (through
  the file's ``codes`` table, else the coding's ``ordinalValue`` extension, the FHIR R4
  way to score a coded answer, else a numeric code), ``valueString`` for text, and a
  ``valueBoolean`` as 1 / 0. An item with no answer is a *skipped* item (null), as on paper;
* the facility is the Organization among ``author`` and ``source`` (or, failing that, the
  facility of the response's Encounter, filled in when the batch is finished);
* ``authored`` is the completion date (the facility's local day, like every timestamp);
* a response whose Questionnaire has no survey file is quarantined with that reason (a
  feed the hospital has not mapped yet), never dropped.

An answer that cannot be read for its column (text where a number belongs) is kept as
written, so conformance flags the row instead of nulling the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipelines.extract.references import ref_id
from pipelines.surveys import Survey, Surveys

TABLE = "survey_responses"
RETURNED = frozenset({"completed", "amended"})
#: Forms that are not survey returns: counted as ignored, not quarantined.
NOT_RETURNED = frozenset({"in-progress", "stopped", "entered-in-error"})
#: FHIR R4 core extension: the numeric score of a coded answer (e.g. a Glasgow coma score).
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"


class UnmappedQuestionnaire(ValueError):
    """The response cannot be read as a survey return: its Questionnaire has no survey file
    (or it names none), or its status is not that of a return."""


def _items(items: Any) -> Iterator[dict[str, Any]]:
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        yield item
        yield from _items(item.get("item"))
        for answer in item.get("answer") or []:
            if isinstance(answer, dict):
                yield from _items(answer.get("item"))


def _answer(item: dict[str, Any], codes: dict[str, int] | None) -> Any:
    answers = item.get("answer")
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], dict):
        return None
    a = answers[0]
    for key in ("valueInteger", "valueDecimal", "valueString", "valueDate", "valueDateTime"):
        if key in a:
            return a[key]
    if "valueBoolean" in a:
        return 1 if a["valueBoolean"] is True else 0 if a["valueBoolean"] is False else a["valueBoolean"]
    coding = a.get("valueCoding")
    if isinstance(coding, dict):
        code = coding.get("code")
        if codes and isinstance(code, str) and code in codes:
            return codes[code]
        for ext in coding.get("extension") or []:
            if isinstance(ext, dict) and ext.get("url") == ORDINAL_VALUE and "valueDecimal" in ext:
                return ext["valueDecimal"]
        if isinstance(code, str):
            try:
                return int(code)
            except ValueError:
                return code
    return None


def _organization(r: dict[str, Any]) -> str | None:
    for element in ("author", "source"):
        ref = r.get(element)
        if isinstance(ref, dict):
            text = ref.get("reference")
            if isinstance(text, str) and "Organization/" in text or ref.get("type") == "Organization":
                return ref_id(ref)
    return None


def is_return(r: dict[str, Any]) -> bool:
    return r.get("status") in RETURNED


def is_unfinished(r: dict[str, Any]) -> bool:
    """A form FHIR says is not (or no longer) a return: skipped, not quarantined."""
    return r.get("status") in NOT_RETURNED


def survey_of(r: dict[str, Any], surveys: Surveys) -> Survey:
    if not is_return(r):
        raise UnmappedQuestionnaire(f"status {r.get('status')!r} is not a QuestionnaireResponse status of a return")
    canonical = r.get("questionnaire")
    survey = surveys.for_questionnaire(canonical if isinstance(canonical, str) else None)
    if survey is None:
        raise UnmappedQuestionnaire(
            f"no survey file maps Questionnaire {canonical!r} (add one to CAREQI_SURVEYS_DIR)"
            if canonical
            else "the response names no Questionnaire"
        )
    return survey


def flatten_questionnaire_response(r: dict[str, Any], survey: Survey) -> dict[str, Any]:
    """One returned QuestionnaireResponse as a survey_responses row (column -> value)."""
    row: dict[str, Any] = {
        "response_id": r.get("id"),
        "encounter_id": ref_id(r.get("encounter")),
        "facility_id": _organization(r),
        "completed_on": r.get("authored"),
    }
    for item in _items(r.get("item")):
        link = item.get("linkId")
        if not isinstance(link, str):
            continue
        column = survey.answers.get(link)
        if column is None or column in row and row[column] is not None:
            continue
        row[column] = _answer(item, dict(survey.codes.get(link, {})) or None)
    return row


__all__ = [
    "ORDINAL_VALUE",
    "NOT_RETURNED",
    "RETURNED",
    "UnmappedQuestionnaire",
    "flatten_questionnaire_response",
    "is_return",
    "is_unfinished",
    "survey_of",
]
