"""Survey definitions: which question answers which column, and what each column measures.

A hospital's experience survey is configuration, not code (``surveys/*.yaml``, or
``CAREQI_SURVEYS_DIR``). One file per survey says

* which FHIR ``Questionnaire`` (canonical URL) its ``QuestionnaireResponse``s answer, and
  which ``linkId`` fills which column of ``survey_responses`` (``answers``), with code
  tables for coded answers (``codes``): extraction reads responses through it
  (:mod:`pipelines.extract.questionnaire`);
* which columns are SERVQUAL items, for which dimension (the ten of Parasuraman, Zeithaml &
  Berry 1985 or the five RATER ones of 1988), asked as expectation or perception
  (``servqual``): the report's dimension scores and gaps come from it
  (:mod:`pipelines.analyse.servqual`);
* how the global items are scored HCAHPS-style (``scales``: top / middle / bottom box and
  linear mean, :mod:`pipelines.analyse.experience`).

Files are loaded with ``yaml.safe_load`` and checked whole: an unknown column, dimension,
kind or scale is a ConfigError naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import ConfigError

TABLE = "survey_responses"

#: The ten original dimensions (Parasuraman, Zeithaml & Berry 1985), in their order.
TEN_DIMENSIONS: tuple[str, ...] = (
    "reliability",
    "responsiveness",
    "competence",
    "access",
    "courtesy",
    "communication",
    "credibility",
    "security",
    "understanding_the_patient",
    "tangibles",
)

#: The five SERVQUAL dimensions (Parasuraman, Zeithaml & Berry 1988), in RATER order.
RATER_DIMENSIONS: tuple[str, ...] = ("reliability", "assurance", "tangibles", "empathy", "responsiveness")

#: Ten -> five consolidation (Parasuraman, Zeithaml & Berry 1988; Zeithaml, Parasuraman &
#: Berry 1990, *Delivering Quality Service*, the correspondence of the two sets).
TEN_TO_RATER: dict[str, str] = {
    "reliability": "reliability",
    "responsiveness": "responsiveness",
    "competence": "assurance",
    "courtesy": "assurance",
    "credibility": "assurance",
    "security": "assurance",
    "access": "empathy",
    "communication": "empathy",
    "understanding_the_patient": "empathy",
    "tangibles": "tangibles",
}

EXPECTATION, PERCEPTION = "expectation", "perception"
KINDS = (EXPECTATION, PERCEPTION)
#: Scale names -> the scales of :mod:`pipelines.analyse.experience`.
SCALES = ("recommend", "rating_0_10", "frequency", "yes_no", "agreement")
_TOP_KEYS = {"id", "title", "questionnaire", "answers", "codes", "servqual", "scales", "stars"}


@dataclass(frozen=True)
class ServqualItem:
    column: str
    dimension: str
    kind: str
    text: str


@dataclass(frozen=True)
class Survey:
    """One survey file, checked."""

    id: str
    title: str
    path: Path
    questionnaire: str | None = None
    answers: Mapping[str, str] = field(default_factory=dict)
    codes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    servqual: tuple[ServqualItem, ...] = ()
    scale_min: int = 1
    scale_max: int = 5
    scales: Mapping[str, str] = field(default_factory=dict)
    #: column -> the 4 ascending linear-score cut points of 2, 3, 4 and 5 stars.
    stars: Mapping[str, tuple[float, float, float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Surveys:
    """Every configured survey, found by its Questionnaire's canonical URL."""

    surveys: tuple[Survey, ...] = ()

    def for_questionnaire(self, canonical: str | None) -> Survey | None:
        if not canonical:
            return None
        url = canonical.split("|", 1)[0].strip()
        for s in self.surveys:
            if s.questionnaire == url:
                return s
        return None

    @property
    def servqual_items(self) -> tuple[ServqualItem, ...]:
        """The SERVQUAL items of every survey, each column once (the first file's meaning wins)."""
        seen: dict[str, ServqualItem] = {}
        for s in self.surveys:
            for item in s.servqual:
                seen.setdefault(item.column, item)
        return tuple(seen.values())

    @property
    def stars(self) -> dict[str, tuple[float, float, float, float]]:
        out: dict[str, tuple[float, float, float, float]] = {}
        for s in self.surveys:
            for column, cuts in s.stars.items():
                out.setdefault(column, cuts)
        return out

    @property
    def scales(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for s in self.surveys:
            for column, scale in s.scales.items():
                out.setdefault(column, scale)
        return out


def _columns() -> dict[str, str]:
    from pipelines.tables import TABLES

    return {c.name: c.dtype for c in TABLES[TABLE].columns}


def _fail(path: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path.name}: {where}: {message}")


def parse_survey(doc: Any, path: Path) -> Survey:
    """One survey document (already YAML-parsed) -> :class:`Survey`, or a ConfigError."""
    if not isinstance(doc, dict):
        raise _fail(path, "top level", "expected a mapping")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise _fail(path, "top level", f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    for key in ("id", "title"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise _fail(path, key, "required text")
    columns = _columns()
    answers = doc.get("answers") or {}
    if not isinstance(answers, dict):
        raise _fail(path, "answers", "expected linkId: column pairs")
    for link, column in answers.items():
        if column not in columns or column in ("response_id", "facility_id"):
            raise _fail(path, f"answers.{link}", f"{column!r} is not an answer column of {TABLE}")
    codes: dict[str, dict[str, int]] = {}
    for link, table in (doc.get("codes") or {}).items():
        if link not in answers:
            raise _fail(path, f"codes.{link}", "names no linkId of answers")
        if not isinstance(table, dict) or not all(isinstance(v, int) for v in table.values()):
            raise _fail(path, f"codes.{link}", "expected code: whole number pairs")
        codes[str(link)] = {str(k): int(v) for k, v in table.items()}
    questionnaire = doc.get("questionnaire")
    if answers and not (isinstance(questionnaire, str) and questionnaire.strip()):
        raise _fail(path, "questionnaire", "a survey with answers names its Questionnaire's canonical URL")
    sq = doc.get("servqual") or {}
    scale = sq.get("scale") or {"min": 1, "max": 5}
    lo, hi = scale.get("min"), scale.get("max")
    if not (isinstance(lo, int) and isinstance(hi, int) and lo < hi):
        raise _fail(path, "servqual.scale", "expected whole numbers min < max")
    dimensions = set(TEN_DIMENSIONS) | set(RATER_DIMENSIONS)
    items = []
    for column, spec in (sq.get("items") or {}).items():
        where = f"servqual.items.{column}"
        if columns.get(column) not in ("Int64", "Float64"):
            raise _fail(path, where, f"not a numeric column of {TABLE}")
        if not isinstance(spec, dict) or spec.get("dimension") not in dimensions or spec.get("kind") not in KINDS:
            raise _fail(path, where, f"needs dimension (one of {', '.join(sorted(dimensions))}) and kind "
                        f"({' or '.join(KINDS)})")  # fmt: skip
        items.append(ServqualItem(str(column), spec["dimension"], spec["kind"], str(spec.get("text") or column)))
    scales = doc.get("scales") or {}
    for column, name in scales.items():
        if column not in columns or name not in SCALES:
            raise _fail(path, f"scales.{column}", f"expected a {TABLE} column and one of {', '.join(SCALES)}")
    stars: dict[str, tuple[float, float, float, float]] = {}
    for column, cuts in (doc.get("stars") or {}).items():
        ok = isinstance(cuts, list) and len(cuts) == 4 and all(isinstance(c, int | float) for c in cuts)
        if not ok or list(cuts) != sorted(cuts) or len(set(cuts)) != 4 or not 0 <= cuts[0] <= cuts[-1] <= 100:
            raise _fail(path, f"stars.{column}", "expected 4 ascending linear-score cut points between 0 and 100")
        if column not in scales:
            raise _fail(path, f"stars.{column}", "a starred column needs its scale under scales")
        stars[str(column)] = (float(cuts[0]), float(cuts[1]), float(cuts[2]), float(cuts[3]))
    return Survey(
        id=doc["id"].strip(),
        title=doc["title"].strip(),
        path=path,
        questionnaire=questionnaire.strip() if isinstance(questionnaire, str) else None,
        answers={str(k): str(v) for k, v in answers.items()},
        codes=codes,
        servqual=tuple(items),
        scale_min=lo,
        scale_max=hi,
        scales={str(k): str(v) for k, v in scales.items()},
        stars=stars,
    )


def load_surveys(folder: Path) -> Surveys:
    """Every ``*.yaml`` survey in ``folder`` (sorted); an absent folder is no surveys."""
    if not folder.is_dir():
        return Surveys()
    found = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path.name}: not valid YAML: {exc}") from None
        found.append(parse_survey(doc, path))
    urls = [s.questionnaire for s in found if s.questionnaire]
    dupes = sorted({u for u in urls if urls.count(u) > 1})
    if dupes:
        raise ConfigError(f"{folder}: more than one survey file reads Questionnaire {dupes[0]}")
    return Surveys(tuple(found))


__all__ = [
    "EXPECTATION",
    "KINDS",
    "PERCEPTION",
    "RATER_DIMENSIONS",
    "TEN_DIMENSIONS",
    "TEN_TO_RATER",
    "SCALES",
    "ServqualItem",
    "Survey",
    "Surveys",
    "load_surveys",
    "parse_survey",
]
