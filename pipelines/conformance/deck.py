"""A measure test deck on disk: the FHIR Measure, its value sets, and MADiE test cases.

Layout (as exported from MADiE and kept in the shared ``ecqm-qicore-2025`` folders)::

    <measure>/measure/Measure-<name>.json      the FHIR Measure (exactly one)
    <measure>/valuesets/*.json (+ INDEX.csv)   VSAC expansions; INDEX.csv may list MISSING sets
    <measure>/testcases/<patient>/<file>.json  one transaction Bundle per case

Each case Bundle holds the patient's resources and exactly one *expected* MeasureReport
(``modifierExtension`` cqfm-isTestCase, type ``individual``). Its ``group[0].population``
counts are the oracle: the SERIES token and title in the file name are the author's label
and sometimes contradict the counts (see SOURCE.md), so they are shown, never compared.
A case that cannot be read is kept as a *problem* (it counts as not matched) rather than
dropped, so a broken deck can never look like a passing one.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from pipelines.errors import ConfigError
from pipelines.periods import MeasurementPeriod

POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
#: Population codes the conformance check compares; measure-observation values and
#: measureScore are not compared (MADiE's observation counts are undocumented and its
#: measureScore is unreliable, SOURCE.md "How the expected results are encoded").
COMPARED_CODES = (
    "initial-population",
    "denominator",
    "denominator-exclusion",
    "numerator",
    "numerator-exclusion",
    "measure-population",
    "measure-population-exclusion",
)
_OID = re.compile(r"[0-2](?:\.\d+){3,}")
_VALUESET_URL = re.compile(r"https?://[^\s\"']*/ValueSet/[^\s\"'|]+")
_CMS = re.compile(r"CMS\s*0*(\d+)", re.IGNORECASE)
#: ``CMS108FHIR-v0.3.002-IPPass-Title`` -> series ``IPPass``, title ``IPPass-Title``.
_CASE_NAME = re.compile(r"^[A-Za-z0-9]+-v[0-9][0-9.]*-(?P<rest>(?P<series>[^-]+)(?:-.*)?)$")


@dataclass(frozen=True)
class TestCase:
    """One MADiE test case: where it is, what it claims, and what it expects."""

    __test__ = False  # not a pytest class, despite the name

    case: str  # "<patient folder>/<file name>", unique within the deck
    patient_folder: str
    path: Path
    title: str
    series: str
    patient_id: str | None
    period_start: str
    period_end: str
    period: str  # label for pipelines.compute.evaluate: "YYYY" or "YYYY-MM"
    expected: Mapping[str, int]  # population code -> count (compared codes only)
    resource_ids: frozenset[tuple[str, str]]  # (resourceType, id) of every resource but the report


@dataclass(frozen=True)
class CaseProblem:
    """A case file the deck cannot use; reported as not matched, with the reason."""

    case: str
    title: str
    reason: str


@dataclass(frozen=True)
class Deck:
    root: Path
    measure_id: str
    measure_name: str
    measure_url: str | None
    measure_title: str
    measure_version: str | None
    cms_id: str | None  # "CMS108", from the Measure's name, url or CMS identifiers
    names: frozenset[str]  # every name the Measure goes by (name, id, url, identifiers)
    scoring: str | None
    population_basis: str | None
    improvement: str | None
    declared_valuesets: frozenset[str]  # OIDs the Measure references
    missing_valuesets: frozenset[str]  # OIDs INDEX.csv says no copy holds
    valueset_dir: Path
    cases: tuple[TestCase, ...] = ()
    problems: tuple[CaseProblem, ...] = field(default_factory=tuple)


def cms_number(text: str | None) -> str | None:
    """``CMS108FHIRVTEProphylaxis`` / ``https://.../Measure/CMS108FHIR...`` / ``CMS108`` -> ``CMS108``."""
    if not text:
        return None
    tail = str(text).strip().rstrip("/").rsplit("/", 1)[-1]
    m = _CMS.search(tail)
    return f"CMS{int(m.group(1))}" if m else None


def period_label(start: str, end: str) -> str:
    """The evaluation period for an expected MeasureReport.period.

    MADiE writes inclusive end dates (2026-01-01 .. 2026-12-31); the pipeline's
    :class:`~pipelines.compute.Period` knows calendar years and months only, so any
    other span is refused rather than silently widened.
    """
    try:
        first = date.fromisoformat(str(start)[:10])
        last = date.fromisoformat(str(end)[:10])
    except ValueError as exc:
        raise ConfigError(f"measurement period {start!r}..{end!r} is not two ISO dates") from exc
    return MeasurementPeriod.from_inclusive(first, last).label


def expected_counts(report: Mapping[str, Any]) -> dict[str, int]:
    """Population code -> count from ``group[0]`` of an expected MeasureReport.

    A population without ``count`` is absent (not zero): it is not compared.
    """
    groups = report.get("group") or []
    if not groups:
        raise ConfigError("expected MeasureReport has no group")
    out: dict[str, int] = {}
    for pop in groups[0].get("population") or []:
        codings = ((pop.get("code") or {}).get("coding")) or []
        code = next((c.get("code") for c in codings if c.get("system") == POPULATION_SYSTEM), None)
        code = code or (codings[0].get("code") if codings else None)
        if code not in COMPARED_CODES or pop.get("count") is None:
            continue
        count = pop["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"expected MeasureReport population {code} has count {count!r}")
        if code in out:
            raise ConfigError(f"expected MeasureReport lists population {code} twice")
        out[code] = count
    if "initial-population" not in out:
        raise ConfigError("expected MeasureReport has no initial-population count")
    return out


def _title(stem: str) -> tuple[str, str]:
    m = _CASE_NAME.match(stem)
    if not m:
        return stem, ""
    return m.group("rest"), m.group("series")


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path.name}: {exc}") from exc


def _resources(bundle: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in bundle.get("entry") or []:
        res = (entry or {}).get("resource")
        if isinstance(res, dict):
            yield res


def read_case(path: Path, root: Path) -> TestCase:
    """Parse one case Bundle; a ConfigError names what is wrong with it."""
    rel = path.relative_to(root).as_posix()
    title, series = _title(path.stem)
    doc = _read_json(path)
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise ConfigError("not a FHIR Bundle")
    reports = []
    ids: set[tuple[str, str]] = set()
    patients: list[str] = []
    for res in _resources(doc):
        rtype = str(res.get("resourceType"))
        if rtype == "MeasureReport":
            reports.append(res)
            continue
        if res.get("id"):
            ids.add((rtype, str(res["id"])))
        if rtype == "Patient" and res.get("id"):
            patients.append(str(res["id"]))
    if len(reports) != 1:
        raise ConfigError(f"expected exactly one MeasureReport (the expected result), found {len(reports)}")
    report = reports[0]
    period = report.get("period") or {}
    if not period.get("start") or not period.get("end"):
        raise ConfigError("expected MeasureReport has no period start/end")
    return TestCase(
        case=rel,
        patient_folder=path.parent.name,
        path=path,
        title=title,
        series=series,
        patient_id=patients[0] if len(patients) == 1 else None,
        period_start=str(period["start"]),
        period_end=str(period["end"]),
        period=period_label(period["start"], period["end"]),
        expected=expected_counts(report),
        resource_ids=frozenset(ids),
    )


def _group_extension(group: Mapping[str, Any], suffix: str) -> Any:
    for ext in group.get("extension") or []:
        if str(ext.get("url", "")).endswith(suffix):
            if "valueCode" in ext:
                return ext["valueCode"]
            codings = (ext.get("valueCodeableConcept") or {}).get("coding") or []
            return codings[0].get("code") if codings else None
    return None


def _missing_from_index(folder: Path) -> set[str]:
    index = folder / "INDEX.csv"
    if not index.is_file():
        return set()
    with index.open(newline="", encoding="utf-8") as fh:
        return {
            row["oid"].strip()
            for row in csv.DictReader(fh)
            if (row.get("name") or "").strip().upper() == "MISSING" and row.get("oid")
        }


def _measure_file(root: Path) -> Path:
    folder = root / "measure"
    found = sorted(folder.glob("*.json")) if folder.is_dir() else []
    measures = [p for p in found if isinstance(d := _read_json(p), dict) and d.get("resourceType") == "Measure"]
    if len(measures) != 1:
        raise ConfigError(
            f"{root} is not a measure deck: expected one FHIR Measure in {folder}, found {len(measures)} "
            "(layout: measure/Measure-<name>.json, valuesets/, testcases/<patient>/<case>.json)"
        )
    return measures[0]


def read_deck(root: Path) -> Deck:
    """Read a measure directory; a folder that is not a deck is a ConfigError."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"measure deck {root} does not exist or is not a folder")
    measure = _read_json(_measure_file(root))
    cases_dir = root / "testcases"
    files = sorted(cases_dir.glob("*/*.json")) if cases_dir.is_dir() else []
    if not files:
        raise ConfigError(f"{root} is not a measure deck: no test cases under {cases_dir}/<patient>/<case>.json")

    identifiers = [str(i.get("value")) for i in measure.get("identifier") or [] if i.get("value")]
    names = {str(x) for x in (measure.get("id"), measure.get("name"), measure.get("url")) if x}
    names |= set(identifiers)
    cms_ids = [cms_number(measure.get("name")), cms_number(measure.get("url"))]
    cms_ids += [
        cms_number(v if v.upper().startswith("CMS") else f"CMS{v}")
        for i in measure.get("identifier") or []
        if (v := str(i.get("value") or "")) and "cmsid" in str(i.get("system", "")).lower()
    ]
    cms_ids += [cms_number(v) for v in identifiers]
    cms_id = next((c for c in cms_ids if c), None)

    groups = measure.get("group") or [{}]
    text = orjson.dumps(measure).decode()
    declared = {u.rsplit("/", 1)[-1] for u in _VALUESET_URL.findall(text)}
    declared = {d for d in declared if _OID.fullmatch(d)}

    cases: list[TestCase] = []
    problems: list[CaseProblem] = []
    for path in files:
        try:
            cases.append(read_case(path, cases_dir))
        except ConfigError as exc:
            problems.append(CaseProblem(path.relative_to(cases_dir).as_posix(), _title(path.stem)[0], str(exc)))
    return Deck(
        root=root,
        measure_id=str(measure.get("id") or measure.get("name") or root.name),
        measure_name=str(measure.get("name") or measure.get("id") or root.name),
        measure_url=measure.get("url"),
        measure_title=str(measure.get("title") or measure.get("name") or root.name),
        measure_version=measure.get("version"),
        cms_id=cms_id,
        names=frozenset(names),
        scoring=_group_extension(groups[0], "cqfm-scoring")
        or ((measure.get("scoring") or {}).get("coding") or [{}])[0].get("code"),
        population_basis=_group_extension(groups[0], "cqfm-populationBasis"),
        improvement=_group_extension(groups[0], "cqfm-improvementNotation"),
        declared_valuesets=frozenset(declared),
        missing_valuesets=frozenset(_missing_from_index(root / "valuesets")),
        valueset_dir=root / "valuesets",
        cases=tuple(cases),
        problems=tuple(problems),
    )


__all__ = [
    "COMPARED_CODES",
    "CaseProblem",
    "Deck",
    "TestCase",
    "cms_number",
    "expected_counts",
    "period_label",
    "read_case",
    "read_deck",
]
