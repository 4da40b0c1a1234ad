"""Run a measure test deck through the real pipeline path and compare population counts.

Path per deck (the same code a monthly run uses, no conformance-only logic):
``extract_paths`` on the case Bundles -> the indicator whose ``cms_id`` names the
Measure -> :func:`pipelines.compute.evaluate` for the measurement period of the expected
MeasureReports -> population counts per case -> compared with the expected counts.

Columnar by design: every case Bundle is extracted in one call and all cases are
evaluated together, then subject rows are attributed back to their case through the
provenance column ``source_file`` of the basis table (``<patient>/<case>.json``). That is
only sound when no two cases share a record id: the engine keeps one row per record id
(the latest delivery), so a shared id would silently drop one case's record. MADiE
decks do reuse ids (eleven CMS108 cases share one Claim id), so cases are planned into
*rounds* in which every resource id and every table key is unique, and each round is
evaluated on its own. Usually that is a single round.

Every record of a case belongs to that case's Patient. The reference engine (MADiE /
fqm-execution) evaluates each test-case Bundle as ONE patient's record: it hands the
whole Bundle to CQL as the patient's data, so a resource counts for the Bundle's Patient
whatever its own subject reference says. Decks rely on that, knowingly or not (a CMS108
case has a not-done MedicationAdministration whose subject id lacks its last
character). So after extraction, :func:`attribute_to_case_patient` sets ``patient_id``
on every row of every table with that column to the Patient of the Bundle the row came
from (``source_file``). This is the only conformance-specific step, and it is about the
shape of the input (one Bundle = one patient), not about any measure or case; a monthly
batch never gets it, since there references are the only link between records. A
Bundle without exactly one Patient is left as extracted.

Value sets the Measure declares but nobody supplied (the shared CMS1017 copy lacks
three) are loaded as empty placeholders with one warning, so the rest of the deck still
runs. A mismatch in a deck whose indicator uses such a set is flagged "possibly due to
missing value sets" - never counted as matched.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import yaml

from pipelines.compute import (
    Indicator,
    ValueSet,
    ValueSetIndex,
    evaluate,
    load_indicator_file,
    load_valuesets,
)
from pipelines.compute import model as m
from pipelines.compute.needs import needs_of
from pipelines.compute.registry import BASIS_TABLE
from pipelines.config import Settings, load_settings
from pipelines.conformance.deck import COMPARED_CODES, CaseProblem, Deck, TestCase, cms_number, read_deck
from pipelines.errors import ConfigError
from pipelines.extract import extract_paths
from pipelines.load.snapshot import Snapshot
from pipelines.tables import TABLES

log = logging.getLogger(__name__)

#: Measure populationBasis -> the indicator basis that counts the same things.
_BASIS = {"encounter": m.Basis.ENCOUNTER, "boolean": m.Basis.PATIENT, "patient": m.Basis.PATIENT}
PLACEHOLDER_URL = "http://cts.nlm.nih.gov/fhir/ValueSet/"


# ------------------------------------------------------------------ value sets
class _RecordingIndex(ValueSetIndex):
    """A value-set index that remembers which placeholder (missing) sets were asked for,
    so a mismatch can honestly say whether a missing set could be involved."""

    def __init__(self, base: ValueSetIndex) -> None:
        super().__init__()
        self.__dict__.update(base.__dict__)  # adopt the loaded sets (plain attributes)
        self.placeholders: dict[int, str] = {}
        self.used_placeholders: set[str] = set()

    def add_placeholder(self, oid: str) -> None:
        vs = self.add(
            {
                "resourceType": "ValueSet",
                "id": oid,
                "url": PLACEHOLDER_URL + oid,
                "name": f"missing-{oid}",
                "status": "unknown",
                "expansion": {"contains": []},
            }
        )
        self.placeholders[id(vs)] = oid

    def get(self, ref: str) -> ValueSet:
        vs = super().get(ref)
        oid = self.placeholders.get(id(vs))
        if oid is not None:
            self.used_placeholders.add(oid)
        return vs


def load_deck_valuesets(deck: Deck, settings: Settings, valueset_dirs: Sequence[Path] | None = None) -> _RecordingIndex:
    """The deck's value sets (or ``valueset_dirs``) plus the project's own, with an empty
    placeholder for every set the Measure declares (or INDEX.csv lists as MISSING) that
    none of them holds."""
    dirs = [Path(d) for d in valueset_dirs] if valueset_dirs else [deck.valueset_dir]
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"value set folder {d} does not exist")
    own = settings.indicators_dir / "valuesets"
    if own.is_dir():
        dirs.append(own)
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in {u.resolve() for u in unique}:
            unique.append(d)
    index = _RecordingIndex(load_valuesets(unique))
    missing = sorted(oid for oid in deck.declared_valuesets | deck.missing_valuesets if oid not in index)
    for oid in missing:
        index.add_placeholder(oid)
    if missing:
        log.warning(
            "%d value set(s) named by measure %s are not supplied and are treated as empty: %s",
            len(missing),
            deck.measure_name,
            ", ".join(missing),
        )
    return index


# ------------------------------------------------------------------ indicator
def _indicator_files(indicators_dir: Path) -> list[Path]:
    return sorted([*indicators_dir.glob("*.yaml"), *indicators_dir.glob("*.yml")])


def matching_indicator_files(deck: Deck, indicators_dir: Path, indicator_id: str | None = None) -> list[Path]:
    """Indicator files whose ``cms_id`` names the deck's Measure (by CMS number, name or url)."""
    if not Path(indicators_dir).is_dir():
        raise ConfigError(f"indicator folder {indicators_dir} does not exist")
    found: list[Path] = []
    for path in _indicator_files(Path(indicators_dir)):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:  # reported by the catalogue loader, not our concern here
            log.info("skipping %s while looking for a cms_id: %s", path.name, exc)
            continue
        if not isinstance(doc, dict) or not doc.get("cms_id"):
            continue
        cms = str(doc["cms_id"]).strip()
        if cms in deck.names or (deck.cms_id is not None and cms_number(cms) == deck.cms_id):
            if indicator_id is None or doc.get("id") == indicator_id or path.stem == indicator_id:
                found.append(path)
    return found


def find_indicator(
    deck: Deck, indicators_dir: Path, valuesets: ValueSetIndex, indicator_id: str | None = None
) -> Indicator:
    paths = matching_indicator_files(deck, indicators_dir, indicator_id)
    label = f"{deck.measure_name} ({deck.cms_id or 'no CMS id'})"
    if not paths:
        which = f" with id {indicator_id!r}" if indicator_id else ""
        raise ConfigError(
            f"no indicator{which} in {indicators_dir} has a cms_id matching measure {label}: "
            f"add `cms_id: {deck.cms_id or deck.measure_name}` to its YAML"
        )
    if len(paths) > 1:
        names = ", ".join(p.stem for p in paths)
        raise ConfigError(f"several indicators match measure {label}: {names}; choose one with --indicator")
    return load_indicator_file(paths[0], valuesets)


def _compatibility_notes(deck: Deck, indicator: Indicator) -> list[str]:
    notes = []
    if deck.scoring and deck.scoring.lower() != indicator.scoring.value:
        notes.append(f"measure scoring is {deck.scoring}, indicator scoring is {indicator.scoring.value}")
    basis = _BASIS.get((deck.population_basis or "").lower())
    if deck.population_basis and basis is not indicator.basis:
        notes.append(
            f"measure population basis is {deck.population_basis}, indicator basis is "
            f"{indicator.basis.value}: per-case counts count different things"
        )
    return notes


# ------------------------------------------------------------------ attribution
def attribute_to_case_patient(tables: Mapping[str, pd.DataFrame], cases: Sequence[TestCase]) -> dict[str, pd.DataFrame]:
    """Every row's ``patient_id`` set to the Patient of the case Bundle it came from.

    The engine evaluates a Bundle as one patient's record (module docstring); rows of a
    case without exactly one Patient keep their own reference. The patients table is
    left alone: there ``patient_id`` is the record id itself.
    """
    owner = {c.case: c.patient_id for c in cases if c.patient_id is not None}
    if not owner:
        return dict(tables)
    out: dict[str, pd.DataFrame] = {}
    for name, df in tables.items():
        spec = TABLES.get(name)
        if (
            not len(df)
            or "patient_id" not in df.columns
            or "source_file" not in df.columns
            or (spec is not None and spec.key == "patient_id")
        ):
            out[name] = df
            continue
        case_patient = df["source_file"].map(owner).astype(df["patient_id"].dtype)
        out[name] = df.assign(patient_id=case_patient.where(case_patient.notna(), df["patient_id"]))
    return out


# ---------------------------------------------------------------------- rounds
def plan_rounds(cases: Sequence[TestCase], tables: Mapping[str, pd.DataFrame]) -> list[list[str]]:
    """Split cases into groups in which no resource id and no table key is shared.

    Two sources of clash are checked: (resourceType, id) of the Bundle resources, and
    each extracted table's key seen in more than one case file (derived keys such as
    ``<claim_id>/<n>`` included). Cases are placed greedily, in deck order, into the
    first round holding none of the cases they clash with.
    """
    clashes: dict[str, set[str]] = defaultdict(set)

    def clash(group: Iterable[str]) -> None:
        members = sorted(set(group))
        for a in members:
            clashes[a].update(b for b in members if b != a)

    owners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for case in cases:
        for rid in case.resource_ids:
            owners[rid].append(case.case)
    for group in owners.values():
        if len(group) > 1:
            clash(group)
    for name, df in tables.items():
        spec = TABLES.get(name)
        if spec is None or not len(df) or "source_file" not in df.columns:
            continue
        pairs = df[[spec.key, "source_file"]].dropna().drop_duplicates()
        shared = pairs[pairs[spec.key].duplicated(keep=False)]
        for _, files in shared.groupby(spec.key)["source_file"]:
            clash(files.astype(str))

    rounds: list[list[str]] = []
    members: list[set[str]] = []
    for case in cases:
        for group, names in zip(rounds, members, strict=True):
            if not clashes[case.case] & names:
                group.append(case.case)
                names.add(case.case)
                break
        else:
            rounds.append([case.case])
            members.append({case.case})
    return rounds


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class CaseResult:
    case: str
    title: str
    series: str
    patient_id: str | None
    expected: Mapping[str, int]
    computed: Mapping[str, int]
    quarantined: int = 0
    possible_cause: str | None = None

    @property
    def differing(self) -> list[str]:
        return [code for code, e in self.expected.items() if self.computed.get(code, 0) != e]

    @property
    def matched(self) -> bool:
        return not self.differing


@dataclass
class ConformanceRun:
    deck: Deck
    indicator: Indicator
    results: list[CaseResult]
    problems: list[CaseProblem]
    missing_valuesets: list[str]  # declared/listed but not supplied: loaded as empty
    referenced_missing: list[str]  # of those, the ones the indicator uses
    rounds: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return len(self.results) + len(self.problems)

    @property
    def matched(self) -> list[CaseResult]:
        return [r for r in self.results if r.matched]

    @property
    def mismatches(self) -> list[CaseResult]:
        return [r for r in self.results if not r.matched]

    @property
    def unmatchable(self) -> list[CaseResult]:
        return [r for r in self.mismatches if r.possible_cause]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.mismatches

    @property
    def codes(self) -> list[str]:
        present = {code for r in self.results for code in r.expected}
        return [c for c in COMPARED_CODES if c in present]

    def totals(self) -> dict[str, dict[str, int]]:
        return {
            code: {
                "expected": sum(r.expected.get(code, 0) for r in self.results if code in r.expected),
                "computed": sum(r.computed.get(code, 0) for r in self.results if code in r.expected),
            }
            for code in self.codes
        }


def population_columns(indicator: Indicator) -> list[tuple[str, str]]:
    """(measure-population code, INDICATOR_SUBJECTS column) for the indicator's scoring."""
    return [(p.code, p.column) for p in indicator.reported_populations]


def population_totals(
    indicator: Indicator, tables: Mapping[str, pd.DataFrame], period: str, valuesets: ValueSetIndex
) -> dict[str, int]:
    """The runner's evaluation of a whole extraction at once (no test cases to attribute
    to): each population's subject count over ``period``, from the same columns and
    codings a warehouse snapshot would hold. What an export of the same data must say."""
    needs = needs_of([indicator], valuesets)
    subjects = evaluate(indicator, Snapshot.of(tables, needs=needs), period, valuesets)
    return {code: int(subjects[col].fillna(False).astype(bool).sum()) for code, col in population_columns(indicator)}


def _case_counts(
    indicator: Indicator, subjects: pd.DataFrame, basis_table: pd.DataFrame, round_cases: set[str]
) -> tuple[pd.DataFrame, int]:
    """Per case file: the number of subjects in each population (and unattributed subjects)."""
    key = TABLES[BASIS_TABLE[indicator.basis]].key
    owner = basis_table[[key, "source_file"]].dropna().drop_duplicates(key, keep="last")
    where = pd.Series(owner["source_file"].to_numpy(), index=owner[key].astype("string").to_numpy())
    case = subjects["subject_id"].astype("string").map(where)
    columns = population_columns(indicator)
    flags = pd.DataFrame({code: subjects[col].fillna(False).astype(bool).to_numpy() for code, col in columns}).astype(
        "int64"
    )
    flags["case"] = case.to_numpy()
    attributed = flags["case"].isin(round_cases)
    counts = flags[attributed].groupby("case").sum()
    return counts, int((~attributed).sum())


def run_deck(
    measure_dir: Path,
    settings: Settings | None = None,
    *,
    valueset_dirs: Sequence[Path] | None = None,
    indicator_id: str | None = None,
) -> ConformanceRun:
    """Run every case of a deck through extract -> indicator -> evaluate and compare.

    ``settings.indicators_dir`` is where the indicator is looked up (its ``cms_id``
    must name the Measure), so tests and users can point it at another catalogue.
    """
    settings = settings or load_settings()
    started = time.perf_counter()
    deck = read_deck(Path(measure_dir))
    index = load_deck_valuesets(deck, settings, valueset_dirs)
    indicator = find_indicator(deck, settings.indicators_dir, index, indicator_id)
    notes = _compatibility_notes(deck, indicator)

    root = deck.root / "testcases"
    extracted = extract_paths([c.path for c in deck.cases], root=root)
    tables = attribute_to_case_patient(extracted.tables, deck.cases)
    quarantined = extracted.quarantine["source_file"].astype("string").value_counts().to_dict()
    basis_name = BASIS_TABLE[indicator.basis]
    # The same columns and codings a warehouse snapshot would hold for this measure: the
    # decks check the read model's filter as well as the logic.
    needs = needs_of([indicator], index)
    counts: dict[str, dict[str, int]] = {c.case: {} for c in deck.cases}
    unattributed = 0
    rounds = 0
    periods = sorted({c.period for c in deck.cases})
    for period in periods:
        in_period = [c for c in deck.cases if c.period == period]
        for group in plan_rounds(in_period, tables):
            rounds += 1
            files = set(group)
            part = {
                name: df[df["source_file"].isin(files)] if "source_file" in df.columns else df
                for name, df in tables.items()
            }
            subjects = evaluate(indicator, Snapshot.of(part, needs=needs), period, index)
            per_case, lost = _case_counts(indicator, subjects, part[basis_name], files)
            unattributed += lost
            for case, row in per_case.iterrows():
                counts[str(case)] = {code: int(v) for code, v in row.items()}
    if unattributed:
        notes.append(f"{unattributed} subject(s) could not be traced to a case file and were not counted")
        log.warning("%d evaluated subject(s) could not be traced to a case file", unattributed)

    used = set(index.used_placeholders)
    sources = [p for p in (indicator.source, indicator.source.with_suffix(".py") if indicator.source else None) if p]
    text = " ".join(p.read_text(encoding="utf-8") for p in sources if p.is_file())
    used |= {oid for oid in index.placeholders.values() if oid in text}
    referenced_missing = sorted(used)
    cause = f"possibly due to missing value sets {', '.join(referenced_missing)}" if referenced_missing else None

    results: list[CaseResult] = []
    for case in deck.cases:
        computed = {code: counts[case.case].get(code, 0) for code in case.expected}
        result = CaseResult(
            case=case.case,
            title=case.title,
            series=case.series,
            patient_id=case.patient_id,
            expected=dict(case.expected),
            computed=computed,
            quarantined=int(quarantined.get(case.case, 0)),
        )
        if cause and not result.matched:
            result = replace(result, possible_cause=cause)
        results.append(result)
    run = ConformanceRun(
        deck=deck,
        indicator=indicator,
        results=results,
        problems=list(deck.problems),
        missing_valuesets=sorted(index.placeholders.values()),
        referenced_missing=referenced_missing,
        rounds=rounds,
        seconds=time.perf_counter() - started,
        notes=notes,
    )
    log.info(
        "conformance %s via %s: %d/%d cases match (%d round(s), %.2fs)",
        deck.measure_name,
        indicator.id,
        len(run.matched),
        run.cases,
        rounds,
        run.seconds,
    )
    return run


__all__ = [
    "CaseResult",
    "ConformanceRun",
    "attribute_to_case_patient",
    "find_indicator",
    "load_deck_valuesets",
    "matching_indicator_files",
    "plan_rounds",
    "population_columns",
    "population_totals",
    "run_deck",
]
