"""What an indicator *is*, once its YAML file has been read and checked.

The vocabulary follows the eCQM population model (CMS eCQM logic guidance, FHIR
Measure): a subject enters the initial population, then the denominator, may be
excluded from it, may meet the numerator, and may be excluded from that. Continuous
measures use a measure population instead. Population names are the snake_case forms
of the FHIR measure-population codes (:attr:`Population.code`), so one name travels from
the YAML file to the MeasureReport. Labels a reader sees live on the enums.

Criteria are a small closed set of frozen dataclasses: the registry builds them from
YAML and the engine interprets them as vectorised masks. Nothing here is ever
evaluated as code (see STYLE.md, Anchor 3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.periods import MeasurementPeriod
from pipelines.tables import POPULATIONS


class Scoring(StrEnum):
    PROPORTION = "proportion"
    RATIO = "ratio"
    CONTINUOUS = "continuous"


class Basis(StrEnum):
    PATIENT = "patient"
    ENCOUNTER = "encounter"
    COMPLAINT = "complaint"
    SURVEY_RESPONSE = "survey_response"


class Improvement(StrEnum):
    INCREASE = "increase"
    DECREASE = "decrease"


class Domain(StrEnum):
    """The report's domains, in the order the scorecard shows them."""

    PATIENT_SAFETY = "patient_safety"
    GUIDELINE_ADHERENCE = "guideline_adherence"
    PATIENT_EXPERIENCE = "patient_experience"
    RESPONSIVENESS = "responsiveness"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def quality(self) -> str:
        """Grönroos's two sides of service quality (1984, "A service quality model and its
        marketing implications"): *technical* quality is what care achieved (no harm,
        guideline care given), *functional* quality is how it was delivered (what patients
        perceived, how fast complaints were answered)."""
        return "technical" if self in (Domain.PATIENT_SAFETY, Domain.GUIDELINE_ADHERENCE) else "functional"


class Aggregate(StrEnum):
    """The statistic of a continuous measure's observations: ``p90`` is the 90th
    percentile, the tail a complaints service level is judged by ("nine in ten
    complaints resolved within N days")."""

    MEDIAN = "median"
    MEAN = "mean"
    P90 = "p90"


class DayCount(StrEnum):
    """How a difference between two timestamps becomes a number of days.

    ``calendar``: whole calendar days between the two dates (times ignored), the
    midnight-census convention used for patient-days and readmission windows.
    ``elapsed``: exact elapsed time in fractional days (e.g. "more than 24 hours").
    ``working``: working days in (start, end] of the subject's facility calendar
    (weekends and public holidays do not count, :mod:`pipelines.workdays`): the day
    after receipt is working day 1, as in NHS complaint handling.
    """

    CALENDAR = "calendar"
    ELAPSED = "elapsed"
    WORKING = "working"


class Population(StrEnum):
    INITIAL_POPULATION = "initial_population"
    DENOMINATOR = "denominator"
    DENOMINATOR_EXCLUSION = "denominator_exclusion"
    NUMERATOR = "numerator"
    NUMERATOR_EXCLUSION = "numerator_exclusion"
    MEASURE_POPULATION = "measure_population"
    MEASURE_POPULATION_EXCLUSION = "measure_population_exclusion"

    @property
    def code(self) -> str:
        """The FHIR measure-population code (``denominator-exclusion``)."""
        return self.value.replace("_", "-")

    @property
    def label(self) -> str:
        """What a reader calls it (``Denominator exclusions``)."""
        text = self.value.replace("_", " ").capitalize()
        return text + "s" if text.endswith("exclusion") else text

    @property
    def column(self) -> str:
        """The results / subjects column that stores it. Continuous measures use the shared
        columns: measure population -> ``denominator``, its exclusion ->
        ``denominator_exclusion``."""
        return {"measure_population": "denominator", "measure_population_exclusion": "denominator_exclusion"}.get(
            self.value, self.value
        )


#: Populations each scoring allows, in evaluation order; the required ones first.
SCORING_POPULATIONS: dict[Scoring, tuple[Population, ...]] = {
    Scoring.PROPORTION: (
        Population.INITIAL_POPULATION,
        Population.DENOMINATOR,
        Population.DENOMINATOR_EXCLUSION,
        Population.NUMERATOR,
        Population.NUMERATOR_EXCLUSION,
    ),
    Scoring.RATIO: (
        Population.INITIAL_POPULATION,
        Population.DENOMINATOR,
        Population.DENOMINATOR_EXCLUSION,
        Population.NUMERATOR,
        Population.NUMERATOR_EXCLUSION,
    ),
    Scoring.CONTINUOUS: (
        Population.INITIAL_POPULATION,
        Population.MEASURE_POPULATION,
        Population.MEASURE_POPULATION_EXCLUSION,
    ),
}
REQUIRED_POPULATIONS: dict[Scoring, tuple[Population, ...]] = {
    Scoring.PROPORTION: (Population.INITIAL_POPULATION, Population.DENOMINATOR, Population.NUMERATOR),
    Scoring.RATIO: (Population.INITIAL_POPULATION, Population.DENOMINATOR, Population.NUMERATOR),
    Scoring.CONTINUOUS: (Population.INITIAL_POPULATION, Population.MEASURE_POPULATION),
}
if {p.column for p in Population} != set(POPULATIONS):  # pragma: no cover - a contract edit
    raise RuntimeError("Population.column and tables.POPULATIONS disagree")


# ----------------------------------------------------------------------------- period
@dataclass(frozen=True)
class Period:
    """A reporting period: ``start`` inclusive, ``end`` exclusive (local midnight).

    Monthly runs use ``YYYY-MM``; eCQM measurement periods are calendar years, written
    ``YYYY`` (CMS test decks use 2026-01-01 .. 2026-12-31). Parsing is
    :class:`pipelines.periods.MeasurementPeriod`'s; this adds the pandas timestamps the
    engine compares with.
    """

    label: str
    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def parse(cls, text: str) -> Period:
        p = MeasurementPeriod.parse(text)
        return cls(p.label, pd.Timestamp(p.start), pd.Timestamp(p.end))


# --------------------------------------------------------------------------- criteria
#: Comparison operators allowed in ``compare``.
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge")


@dataclass(frozen=True)
class AllOf:
    items: tuple[Criterion, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Criterion, ...]


@dataclass(frozen=True)
class Not:
    item: Criterion


@dataclass(frozen=True)
class PopulationRef:
    """True where the subject is in an earlier population of the same indicator."""

    population: Population


@dataclass(frozen=True)
class InPeriod:
    """``period_start <= column < period_end``."""

    column: str


@dataclass(frozen=True)
class OverlapsPeriod:
    """The span ``start`` .. ``end`` touches the period: it starts before the period ends
    and has not ended before it began (an open span, ``end`` null, is still going on).
    How bed-day indicators pick the stays that occupied a bed during the month."""

    start: str
    end: str


@dataclass(frozen=True)
class OpenAtPeriodEnd:
    """The span ``start`` .. ``end`` was still open when the period ended: it started
    before the period's end and had not ended by then (``end`` null or later). A
    complaints backlog is the complaints open at month end."""

    start: str
    end: str


@dataclass(frozen=True)
class OverdueAtPeriodEnd:
    """The deadline ``days`` (calendar or working) after ``start`` had wholly passed by
    the period's end: the last day allowed is before the period's end day."""

    start: str
    days: int
    by: DayCount


@dataclass(frozen=True)
class Equals:
    column: str
    value: Any


@dataclass(frozen=True)
class OneOf:
    column: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class IsNull:
    column: str


@dataclass(frozen=True)
class NotNull:
    column: str


@dataclass(frozen=True)
class Compare:
    """``column <op> value`` or ``column <op> other`` (another column). Nulls are false."""

    column: str
    op: str
    value: Any = None
    other: str | None = None


@dataclass(frozen=True)
class InValueSet:
    """(system, code) of the row is in the value set (matched on both, per FHIR)."""

    valueset: str
    code: str = "code"
    system: str = "code_system"


@dataclass(frozen=True)
class DaysBetween:
    """``min <= days(start -> end) <= max`` counted by ``by``; a null date is false."""

    start: str
    end: str
    by: DayCount
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Exists:
    """Semi-join: some row of ``table`` shares the key and meets every ``where``.

    Inside ``where`` plain column names are the related table's; ``subject.<column>``
    names the subject row's (including derived columns), which is how time windows
    relative to the subject's dates are written.
    """

    table: str
    related_key: str
    subject_key: str
    where: tuple[Criterion, ...]


Criterion = (
    AllOf
    | AnyOf
    | Not
    | PopulationRef
    | InPeriod
    | OverlapsPeriod
    | OpenAtPeriodEnd
    | OverdueAtPeriodEnd
    | Equals
    | OneOf
    | IsNull
    | NotNull
    | Compare
    | InValueSet
    | DaysBetween
    | Exists
)


# ------------------------------------------------------------------------ derivations
@dataclass(frozen=True)
class DeriveDays:
    """Day difference start -> end as a float (null when either date is), floored at ``minimum``."""

    start: str
    end: str
    by: DayCount
    minimum: float | None = None


@dataclass(frozen=True)
class DeriveDaysInPeriod:
    """Occupied bed days of a stay within the reporting period (midnight census): the
    nights from the admission date to the day before the discharge date that fall in
    the period; a same-day stay counts one day, on its day. An open stay counts to the
    period's end."""

    start: str
    end: str


@dataclass(frozen=True)
class DeriveYears:
    """Completed years between two dates: age at a date from a birth date."""

    start: str
    end: str


@dataclass(frozen=True)
class DeriveLookup:
    """One column of the related row with the same key (the latest when a row is re-sent)."""

    table: str
    related_key: str
    subject_key: str
    column: str


@dataclass(frozen=True)
class DeriveAggregate:
    """Count of related rows meeting ``where`` (``fn`` count) or the sum of ``column`` over them."""

    fn: str  # count | sum
    table: str
    related_key: str
    subject_key: str
    where: tuple[Criterion, ...]
    column: str | None = None


Derivation = DeriveDays | DeriveDaysInPeriod | DeriveYears | DeriveLookup | DeriveAggregate


def criterion_parts(criterion: Criterion | None) -> Iterator[Criterion]:
    """The criterion and every criterion nested in it (all / any / not), depth first: for
    code that asks what an indicator's populations test (which deadline, which span)."""
    if criterion is None:
        return
    yield criterion
    match criterion:
        case AllOf(items) | AnyOf(items):
            for item in items:
                yield from criterion_parts(item)
        case Not(item):
            yield from criterion_parts(item)


def criterion_columns(criterion: Criterion) -> set[str]:
    """Every column name a criterion reads in its own context (not inside ``exists``)."""
    match criterion:
        case AllOf(items) | AnyOf(items):
            return set().union(*(criterion_columns(c) for c in items)) if items else set()
        case Not(item):
            return criterion_columns(item)
        case InPeriod(column) | Equals(column, _) | OneOf(column, _) | IsNull(column) | NotNull(column):
            return {column}
        case OverlapsPeriod(start, end) | OpenAtPeriodEnd(start, end):
            return {start, end}
        case OverdueAtPeriodEnd(start, _, _):
            return {start, "facility_id"}
        case Compare(column, _, _, other):
            return {column} | ({other} if other else set())
        case InValueSet(_, code, system):
            return {code, system}
        case DaysBetween(start, end, _, _, _):
            return {start, end}
        case Exists(_, _, subject_key, where):
            inner = set().union(*(criterion_columns(c) for c in where)) if where else set()
            return {subject_key} | {c.removeprefix("subject.") for c in inner if c.startswith("subject.")}
        case _:
            return set()


def criterion_valuesets(criterion: Criterion) -> set[str]:
    match criterion:
        case AllOf(items) | AnyOf(items) | Exists(_, _, _, items):
            return set().union(*(criterion_valuesets(c) for c in items)) if items else set()
        case Not(item):
            return criterion_valuesets(item)
        case InValueSet(valueset, _, _):
            return {valueset}
        case _:
            return set()


# ---------------------------------------------------------------------------- indicator
#: Signature of an escape-hatch population function in ``indicators/<id>.py``:
#: ``f(subjects, data, period, terms) -> boolean mask aligned with subjects``, where
#: ``data`` is the read-model snapshot of the tables the indicator ``reads`` and
#: ``terms`` the evaluation's :class:`~pipelines.compute.ecqm.Retrieve` over it, with the
#: value sets and codes the indicator declares by name (``terms.vs``). One ``terms``
#: serves every population of an evaluation, so what it builds is built once.
PopulationFunction = Callable[[pd.DataFrame, Mapping[str, pd.DataFrame], Period, Any], Any]


@dataclass(frozen=True)
class SpcSpec:
    """How the indicator's SPC chart is drawn and read (the ``spc`` key): the chart type
    (None: chosen from the scoring), the special-cause rule set (a preset name or a
    mapping, :class:`pipelines.analyse.spc.RuleSet`) and how many months of each phase fix
    its limits (None: all of them)."""

    chart: str | None = None
    rules: Any = None
    baseline_months: int | None = None


#: Patient factors a risk model may use: what the warehouse holds for every stay.
RISK_FACTORS = ("age_band", "sex", "comorbidity_band", "admission_type", "service")


@dataclass(frozen=True)
class RiskAdjustment:
    """Observed/expected from a logistic model of the numerator on patient factors,
    fitted on the ``reference_months`` before the reporting month (``risk_adjustment``)."""

    factors: tuple[str, ...]
    reference_months: int = 12


@dataclass(frozen=True)
class FollowUp:
    """How long after ``start`` a subject's outcome is known (a rule's deadline).

    A complaint received on the last working day of the month cannot yet have failed
    "acknowledged within 2 working days"; a discharge on the 25th cannot yet show a
    30-day readmission. Until ``days`` (counted ``by`` calendar or working days) after
    the subject's ``start`` have passed by the end of the data, the subject is
    *censored*: left out of the denominator, counted, and the result is provisional.
    """

    sentence: str
    start: str
    days: int
    by: DayCount


@dataclass(frozen=True)
class PopulationDef:
    population: Population
    sentence: str
    criteria: Criterion | None = None
    function: PopulationFunction | None = None


@dataclass(frozen=True)
class Indicator:
    """One indicator file, validated: what compute, the report and the exports all read
    (``metadata()`` is its JSON form, for ``careqi indicators show --json``)."""

    id: str
    title: str
    description: str
    domain: Domain
    owner: str
    scoring: Scoring
    basis: Basis
    improvement: Improvement
    target: float
    unit: str
    multiplier: float
    grain: str
    populations: dict[Population, PopulationDef]
    stratifiers: tuple[str, ...] = ()
    aggregate: Aggregate | None = None
    cms_id: str | None = None
    references: tuple[str, ...] = ()
    derive: dict[str, Derivation] = field(default_factory=dict)
    numerator_events: str | None = None
    denominator_value: str | None = None
    observation: str | None = None
    follow_up: FollowUp | None = None
    spc: SpcSpec = field(default_factory=SpcSpec)
    risk_adjustment: RiskAdjustment | None = None
    #: Declared, not discovered (eCQMs): value set name -> canonical URL, direct-reference
    #: code name -> (system, code), the tables the population functions read, and the
    #: canonical Measure this indicator implements.
    declared_valuesets: dict[str, str] = field(default_factory=dict)
    declared_codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    measure_url: str | None = None
    measure_version: str | None = None
    source: Path | None = None

    def population(self, name: Population | str) -> PopulationDef | None:
        return self.populations.get(Population(name))

    @property
    def reported_populations(self) -> tuple[Population, ...]:
        """The populations its scoring reports (a MeasureReport group, the stored columns)."""
        return SCORING_POPULATIONS[self.scoring]

    def definition(self, population: Population) -> str:
        """The population's sentence ("" when the file does not define it)."""
        pop = self.populations.get(population)
        return "" if pop is None else pop.sentence

    @property
    def valuesets(self) -> set[str]:
        """Every value set the indicator needs: those its criteria name and those it declares."""
        refs: set[str] = set(self.declared_valuesets.values())
        for pop in self.populations.values():
            if pop.criteria is not None:
                refs |= criterion_valuesets(pop.criteria)
        for d in self.derive.values():
            if isinstance(d, DeriveAggregate):
                for c in d.where:
                    refs |= criterion_valuesets(c)
        return refs

    def metadata(self) -> dict[str, Any]:
        """JSON-able description. Proportion scores are fractions (0..1): ``multiplier``
        (100) tells the report how to display them; ratio scores already include it."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "domain": self.domain.value,
            "owner": self.owner,
            "scoring": self.scoring.value,
            "basis": self.basis.value,
            "improvement": self.improvement.value,
            "target": self.target,
            "unit": self.unit,
            "multiplier": self.multiplier,
            "aggregate": self.aggregate.value if self.aggregate else None,
            "stratifiers": list(self.stratifiers),
            "cms_id": self.cms_id,
            "measure_url": self.measure_url,
            "measure_version": self.measure_version,
            "grain": self.grain,
            "references": list(self.references),
            "populations": {p.value: d.sentence for p, d in self.populations.items()},
            "follow_up": (
                None
                if self.follow_up is None
                else {"sentence": self.follow_up.sentence, "days": self.follow_up.days, "by": self.follow_up.by.value}
            ),
            "population_codes": {p.value: p.code for p in self.populations},
            "subject_columns": {p.value: p.column for p in self.populations},
        }


__all__ = [
    "OPERATORS",
    "REQUIRED_POPULATIONS",
    "SCORING_POPULATIONS",
    "Aggregate",
    "AllOf",
    "AnyOf",
    "Basis",
    "Compare",
    "Criterion",
    "DayCount",
    "DaysBetween",
    "Derivation",
    "DeriveAggregate",
    "DeriveDays",
    "DeriveDaysInPeriod",
    "DeriveLookup",
    "DeriveYears",
    "Domain",
    "Equals",
    "Exists",
    "FollowUp",
    "Improvement",
    "InPeriod",
    "InValueSet",
    "Indicator",
    "IsNull",
    "Not",
    "NotNull",
    "OneOf",
    "OpenAtPeriodEnd",
    "criterion_parts",
    "OverdueAtPeriodEnd",
    "OverlapsPeriod",
    "Period",
    "Population",
    "PopulationDef",
    "PopulationFunction",
    "PopulationRef",
    "Scoring",
    "criterion_columns",
    "criterion_valuesets",
]
