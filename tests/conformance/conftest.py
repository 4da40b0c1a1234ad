"""A tiny measure deck written to tmp_path: Measure, one value set, MADiE-style case Bundles,
and a matching indicator catalogue, so the runner is tested without the shared CMS decks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings, load_settings

VS_OID = "2.16.840.1.999.1"
MISSING_OID = "2.16.840.1.999.404"
VS_URL = "http://cts.nlm.nih.gov/fhir/ValueSet/"
PROC_SYSTEM = "http://snomed.info/sct"
PROC_IN_SET = "111111"
PROC_NOT_IN_SET = "222222"
MEASURE_NAME = "CMS9999FHIRTinyMeasure"

INDICATOR = """\
id: {id}
cms_id: {cms_id}
title: Tiny measure
description: Adult inpatient stays with a procedure from a value set (test indicator).
domain: guideline_adherence
owner: Test
scoring: proportion
basis: encounter
improvement: increase
target: 0.9
unit: "%"
grain: one row per adult inpatient encounter ending in the period
derive:
  birth_date:
    lookup: {{table: patients, join: patient_id, column: birth_date}}
  age_at_admission:
    years_between: {{start: birth_date, end: start_at}}
populations:
  initial_population:
    sentence: Adult inpatient encounters ending in the period.
    criteria:
      - equals: {{column: class_code, value: IMP}}
      - in_period: end_at
      - compare: {{column: age_at_admission, op: ge, value: 18}}
  denominator:
    sentence: All of them.
  numerator:
    sentence: A procedure from the value set during the encounter.
    criteria:
      any:
{numerator}
"""
NUMERATOR_SET = """\
        - exists:
            table: procedures
            join: encounter_id
            where:
              - in_valueset: "{oid}"
"""


@dataclass
class Case:
    """One test case: a patient, inpatient encounters (start, end) and procedures (encounter, code)."""

    title: str
    expected: dict[str, int]
    birth: str = "1960-05-01"
    encounters: list[tuple[str, str, str]] = field(default_factory=list)  # (id, start, end)
    procedures: list[tuple[str, str, str]] = field(default_factory=list)  # (id, encounter id, code)
    patient_id: str | None = None
    folder: str | None = None
    period: tuple[str, str] = ("2026-01-01", "2026-12-31")
    with_report: bool = True


def counts(ip: int, den: int | None = None, denex: int = 0, num: int = 0) -> dict[str, int]:
    return {
        "initial-population": ip,
        "denominator": ip if den is None else den,
        "denominator-exclusion": denex,
        "numerator": num,
    }


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    rid = f"{resource['resourceType']}/{resource['id']}"
    return {
        "fullUrl": f"https://madie.cms.gov/{rid}",
        "resource": resource,
        "request": {"method": "PUT", "url": rid},
    }


def _report(case: Case) -> dict[str, Any]:
    return {
        "resourceType": "MeasureReport",
        "id": f"report-{case.folder}",
        "modifierExtension": [
            {
                "url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-isTestCase",
                "valueBoolean": True,
            }
        ],
        "status": "complete",
        "type": "individual",
        "measure": f"https://madie.cms.gov/Measure/{MEASURE_NAME}",
        "period": {"start": case.period[0], "end": case.period[1]},
        "group": [
            {
                "id": "Group_1",
                "population": [
                    {
                        "code": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/measure-population",
                                    "code": code,
                                }
                            ]
                        },
                        "count": n,
                    }
                    for code, n in case.expected.items()
                ]
                + [
                    {
                        "code": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/measure-population",
                                    "code": "measure-observation",
                                }
                            ]
                        },
                        "count": 7,
                    }
                ],
                "measureScore": {"value": 1.0},
            }
        ],
    }


def write_case(testcases: Path, case: Case, n: int) -> Path:
    case.folder = case.folder or f"00000000-0000-4000-8000-{n:012d}"
    pid = case.patient_id or case.folder
    resources: list[dict[str, Any]] = [{"resourceType": "Patient", "id": pid, "birthDate": case.birth}]
    for eid, start, end in case.encounters:
        resources.append(
            {
                "resourceType": "Encounter",
                "id": eid,
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": f"Patient/{pid}"},
                "period": {"start": start, "end": end},
            }
        )
    for prid, eid, code in case.procedures:
        start = next(s for e, s, _ in case.encounters if e == eid)
        resources.append(
            {
                "resourceType": "Procedure",
                "id": prid,
                "status": "completed",
                "code": {"coding": [{"system": PROC_SYSTEM, "code": code}]},
                "subject": {"reference": f"Patient/{pid}"},
                "encounter": {"reference": f"Encounter/{eid}"},
                "performedDateTime": start,
            }
        )
    if case.with_report:
        resources.append(_report(case))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(r) for r in resources]}
    path = testcases / case.folder / f"CMS9999FHIR-v0.0.1-{case.title}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


def write_deck(root: Path, cases: list[Case], *, missing: tuple[str, ...] = ()) -> Path:
    """A measure folder laid out like the shared ecqm-qicore-2025 ones."""
    (root / "measure").mkdir(parents=True)
    declared = [VS_OID, *missing]
    measure = {
        "resourceType": "Measure",
        "id": MEASURE_NAME,
        "name": MEASURE_NAME,
        "title": "Tiny Measure",
        "version": "0.0.1",
        "url": f"https://madie.cms.gov/Measure/{MEASURE_NAME}",
        "identifier": [{"system": "https://madie.cms.gov/measure/cmsId", "value": "9999FHIR"}],
        "status": "draft",
        "relatedArtifact": [{"type": "depends-on", "resource": VS_URL + oid} for oid in declared],
        "group": [
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-scoring",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/measure-scoring",
                                    "code": "proportion",
                                }
                            ]
                        },
                    },
                    {
                        "url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-populationBasis",
                        "valueCode": "Encounter",
                    },
                ]
            }
        ],
    }
    (root / "measure" / f"Measure-{MEASURE_NAME}.json").write_text(json.dumps(measure), encoding="utf-8")
    vs_dir = root / "valuesets"
    vs_dir.mkdir()
    valueset = {
        "resourceType": "ValueSet",
        "id": VS_OID,
        "url": VS_URL + VS_OID,
        "name": "TinyProcedures",
        "status": "active",
        "expansion": {"contains": [{"system": PROC_SYSTEM, "code": PROC_IN_SET}]},
    }
    (vs_dir / f"valueset-{VS_OID}.json").write_text(json.dumps(valueset), encoding="utf-8")
    index = [
        "oid,name,version,expansion_codes,source_repo,source_path",
        f"{VS_OID},TinyProcedures,1,1,test,x",
    ]
    index += [f"{oid},MISSING,,,," for oid in missing]
    (vs_dir / "INDEX.csv").write_text("\n".join(index) + "\n", encoding="utf-8")
    for n, case in enumerate(cases):
        write_case(root / "testcases", case, n)
    return root


def write_indicator(
    folder: Path, *, ind_id: str = "tiny_measure", cms_id: str = "CMS9999", oids: tuple[str, ...] = (VS_OID,)
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    numerator = "".join(NUMERATOR_SET.format(oid=oid) for oid in oids)
    path = folder / f"{ind_id}.yaml"
    path.write_text(INDICATOR.format(id=ind_id, cms_id=cms_id, numerator=numerator), encoding="utf-8")
    return path


def standard_cases() -> list[Case]:
    """Three cases: numerator met, numerator not met, and two stays of which one qualifies."""
    return [
        Case(
            "NUMERPass-ProcedureInSet",
            counts(1, num=1),
            encounters=[("enc-a", "2026-03-01T10:00:00Z", "2026-03-04T10:00:00Z")],
            procedures=[("proc-a", "enc-a", PROC_IN_SET)],
        ),
        Case(
            "NUMERFail-ProcedureNotInSet",
            counts(1, num=0),
            encounters=[("enc-b", "2026-04-01T10:00:00Z", "2026-04-03T10:00:00Z")],
            procedures=[("proc-b", "enc-b", PROC_NOT_IN_SET)],
        ),
        Case(
            "IPPass-TwoStaysOneWithProcedure",
            counts(2, num=1),
            encounters=[
                ("enc-c1", "2026-05-01T10:00:00Z", "2026-05-02T10:00:00Z"),
                ("enc-c2", "2026-06-01T10:00:00Z", "2026-06-05T10:00:00Z"),
                ("enc-c3", "2025-06-01T10:00:00Z", "2025-06-05T10:00:00Z"),  # ends before the period
            ],
            procedures=[("proc-c", "enc-c2", PROC_IN_SET)],
        ),
    ]


DeckFactory = Callable[..., tuple[Path, Settings]]


@pytest.fixture
def make_deck(tmp_path: Path) -> DeckFactory:
    """Write a deck and an indicator catalogue; return (measure dir, settings pointing at it)."""

    def make(
        cases: list[Case] | None = None,
        *,
        missing: tuple[str, ...] = (),
        oids: tuple[str, ...] = (VS_OID,),
        cms_id: str = "CMS9999",
    ) -> tuple[Path, Settings]:
        deck = write_deck(tmp_path / MEASURE_NAME, standard_cases() if cases is None else cases, missing=missing)
        indicators = tmp_path / "indicators"
        write_indicator(indicators, cms_id=cms_id, oids=oids)
        settings = load_settings(
            {**os.environ, "CAREQI_HOME": str(tmp_path / "home"), "CAREQI_INDICATORS_DIR": str(indicators)}
        )
        return deck, settings

    return make
