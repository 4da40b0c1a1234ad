"""Value sets: FHIR ValueSet JSON files in, "is this (system, code) in the set" out.

Codes are matched on the pair (system, code), never the code alone: the same string is
a different concept in SNOMED CT and ICD-10 (FHIR R4 ValueSet, Coding equality).
A set is found by its canonical url, its id (our slugs, such as
``adverse-event-fall``), its name, or its OID (``urn:oid:2.16...`` or bare), so the
project's own sets and VSAC expansions (whose id is the OID) are referenced alike.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from pipelines.errors import MissingValueSets, ValueSetError
from pipelines.strings import arrow_strings

log = logging.getLogger(__name__)

_OID = re.compile(r"^[0-2](\.\d+)+$")
_SEP = "\x1f"


@dataclass(frozen=True)
class ValueSet:
    url: str | None
    id: str | None
    name: str | None
    version: str | None
    title: str | None
    codes: frozenset[tuple[str, str]]
    source: Path | None = None
    #: Why the set cannot be used (e.g. an intensional definition without expansion);
    #: reported when an indicator uses it, so unrelated sets in a VSAC folder do no harm.
    problem: str | None = None

    @property
    def keys(self) -> frozenset[str]:
        """(system, code) joined into one string, for vectorised ``isin``."""
        return coding_keys(self.codes)


def _walk_contains(items: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for item in items:
        if item.get("code") is not None and item.get("system") and not item.get("abstract", False):
            yield str(item["system"]), str(item["code"])
        yield from _walk_contains(item.get("contains", []) or [])


def parse_valueset(resource: dict[str, Any], source: Path | None = None) -> ValueSet:
    """Codes from ``expansion.contains`` (nested allowed) plus enumerated ``compose.include.concept``.

    An include that only names a filter, a whole code system or another value set cannot
    be expanded here; without an expansion the set is marked unusable (``problem``), and
    using it is an error, because silently matching nothing would empty a population.
    """
    where = f" in {source}" if source else ""
    if resource.get("resourceType") != "ValueSet":
        raise ValueSetError(f"expected a FHIR ValueSet{where}, got resourceType {resource.get('resourceType')!r}")
    codes: set[tuple[str, str]] = set()
    expansion = resource.get("expansion") or {}
    codes.update(_walk_contains(expansion.get("contains", []) or []))
    unexpandable = []
    for include in (resource.get("compose") or {}).get("include", []) or []:
        system = include.get("system")
        concepts = include.get("concept") or []
        for concept in concepts:
            if system and concept.get("code") is not None:
                codes.add((str(system), str(concept["code"])))
        if not concepts and (include.get("filter") or include.get("valueSet") or system):
            unexpandable.append(include)
    problem = None
    if unexpandable and not expansion:
        problem = (
            f"value set {resource.get('url') or resource.get('id')}{where} uses filters or whole code "
            "systems in compose.include and has no expansion: supply an expanded copy (e.g. VSAC $expand)"
        )
    return ValueSet(
        url=resource.get("url"),
        id=resource.get("id"),
        name=resource.get("name"),
        version=resource.get("version"),
        title=resource.get("title"),
        codes=frozenset(codes),
        source=source,
        problem=problem,
    )


def _aliases(vs: ValueSet, resource: dict[str, Any]) -> set[str]:
    names = {x for x in (vs.url, vs.id, vs.name) if x}
    if vs.url and vs.version:
        names.add(f"{vs.url}|{vs.version}")
    for ident in resource.get("identifier", []) or []:
        if ident.get("value"):
            names.add(str(ident["value"]))
    oids = {n.removeprefix("urn:oid:") for n in names if _OID.match(n.removeprefix("urn:oid:"))}
    if vs.url and _OID.match(vs.url.rsplit("/", 1)[-1]):
        oids.add(vs.url.rsplit("/", 1)[-1])
    names |= oids | {f"urn:oid:{o}" for o in oids}
    return names


def _encode(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's number among the distinct values (-1 where missing), and those values."""
    encoded = pc.dictionary_encode(arrow_strings(values))
    return encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


class CodedColumn:
    """A column of codes, with their systems or alone, whose distinct values are numbered
    once (``ids``, -1 where a value is missing).

    A month's codings hold hundreds of thousands of rows but few distinct codes, and one
    evaluation tests the same columns against dozens of value sets: testing each distinct
    value once and gathering per row makes each further value set a cheap integer lookup
    instead of hashing every row's strings again.
    """

    def __init__(self, code: pd.Series, system: pd.Series | None = None) -> None:
        #: Whether values are (system, code) pairs; else codes alone (no system kept).
        self.paired = system is not None
        code_ids, codes = _encode(code)
        if system is None:
            self.ids: np.ndarray = code_ids
            #: The distinct values: ``system + _SEP + code`` when paired, else the code.
            self.values: list[str] = codes
            return
        system_ids, systems = _encode(system)
        known = (system_ids >= 0) & (code_ids >= 0)  # a missing system or code: no pair
        pairs, distinct = pd.factorize(system_ids[known] * len(codes) + code_ids[known])
        self.ids = np.full(len(code_ids), -1, dtype=np.int64)
        self.ids[known] = pairs
        self.values = [f"{systems[p // len(codes)]}{_SEP}{codes[p % len(codes)]}" for p in distinct.tolist()]

    def __len__(self) -> int:
        return len(self.ids)

    def member(self, wanted: frozenset[str]) -> np.ndarray:
        """Per distinct value (plus a trailing False for missing), whether it is in
        ``wanted`` (joined keys when paired, else codes): index it with ``ids``."""
        found = np.fromiter((v in wanted for v in self.values), dtype=bool, count=len(self.values))
        return np.append(found, False)

    def isin(self, wanted: frozenset[str]) -> np.ndarray:
        """Rows whose value is in ``wanted``; a missing system or code never matches."""
        return self.member(wanted)[self.ids]


def coding_keys(codes: Iterable[tuple[str, str]]) -> frozenset[str]:
    """(system, code) pairs as the joined keys :class:`CodedColumn` compares."""
    return frozenset(f"{s}{_SEP}{c}" for s, c in codes)


class ValueSetIndex:
    """Every loaded value set, reachable by any of its names."""

    def __init__(self) -> None:
        self._by_name: dict[str, ValueSet] = {}
        self._keys: dict[int, frozenset[str]] = {}
        self._sets: list[ValueSet] = []

    def add(self, resource: dict[str, Any], source: Path | None = None) -> ValueSet:
        vs = parse_valueset(resource, source)
        for alias in _aliases(vs, resource):
            known = self._by_name.get(alias)
            if known is not None and known.codes != vs.codes:
                raise ValueSetError(
                    f"value set {alias!r} is defined twice with different codes: {known.source} and {source}"
                )
            self._by_name[alias] = vs
        self._sets.append(vs)
        return vs

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and self._find(ref) is not None

    def __len__(self) -> int:
        return len(self._sets)

    def _find(self, ref: str) -> ValueSet | None:
        ref = ref.strip()
        for candidate in (ref, ref.removeprefix("urn:oid:"), ref.split("|", 1)[0], ref.rsplit("/", 1)[-1]):
            if candidate in self._by_name:
                return self._by_name[candidate]
        return None

    def get(self, ref: str) -> ValueSet:
        vs = self._find(ref)
        if vs is None:
            raise MissingValueSets(f"value set {ref!r} not found among {len(self._sets)} loaded value sets", [ref])
        if vs.problem:
            raise ValueSetError(vs.problem)
        return vs

    def codes(self, ref: str) -> frozenset[tuple[str, str]]:
        return self.get(ref).codes

    def keys(self, ref: str) -> frozenset[str]:
        """The set's (system, code) pairs as joined keys (:func:`coding_keys`), built once."""
        vs = self.get(ref)
        key_id = id(vs)
        if key_id not in self._keys:
            self._keys[key_id] = vs.keys
        return self._keys[key_id]

    def mask(self, ref: str, system: pd.Series, code: pd.Series) -> np.ndarray:
        """Boolean array: row's (system, code) is in the set. Nulls never match."""
        return CodedColumn(code, system).isin(self.keys(ref))


class DeclaredValueSets:
    """The value sets and codes one indicator declares, by the names its logic uses.

    What a population function receives: ``vs.mask("Encounter Inpatient", system, code)``
    reads as the CQL does, and the canonical URL behind each name is in the indicator's
    own file, not in code. Names are checked on use (an undeclared name is a definition
    error); canonical URLs work too, for the criteria vocabulary's own sets.
    """

    def __init__(self, index: ValueSetIndex, names: dict[str, str], codes: dict[str, tuple[str, str]]) -> None:
        self.index = index
        self.names = dict(names)
        self.declared_codes = dict(codes)

    def url(self, name: str) -> str:
        if name in self.names:
            return self.names[name]
        if name in self.names.values() or name in self.index:
            return name
        raise ValueSetError(f"value set {name!r} is not declared by the indicator (its YAML valuesets:)")

    def code(self, name: str) -> tuple[str, str]:
        """A declared direct-reference code: (system, code)."""
        try:
            return self.declared_codes[name]
        except KeyError:
            raise ValueSetError(f"code {name!r} is not declared by the indicator (its YAML codes:)") from None

    def codes(self, ref: str) -> frozenset[tuple[str, str]]:
        return self.index.codes(self.url(ref))

    def keys(self, ref: str) -> frozenset[str]:
        return self.index.keys(self.url(ref))

    def mask(self, ref: str, system: pd.Series, code: pd.Series) -> np.ndarray:
        return self.index.mask(self.url(ref), system, code)


def _resources(doc: Any) -> Iterator[dict[str, Any]]:
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        for entry in doc.get("entry", []) or []:
            res = entry.get("resource") or {}
            if res.get("resourceType") == "ValueSet":
                yield res
    elif isinstance(doc, dict):
        yield doc


def load_valuesets(dirs: Sequence[Path]) -> ValueSetIndex:
    """Read every ``*.json`` ValueSet (or Bundle of ValueSets) under ``dirs`` (recursively).

    A folder that does not exist is an error (a mistyped CAREQI_VALUESET_DIR would
    otherwise surface later as "value set not found"). Non-ValueSet JSON files, such as
    an index, are skipped with a log line.
    """
    index = ValueSetIndex()
    for folder in dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueSetError(f"value set folder {folder} does not exist")
        for path in sorted(folder.rglob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueSetError(f"cannot read value set file {path}: {exc}") from exc
            found = False
            for res in _resources(doc):
                if res.get("resourceType") == "ValueSet":
                    index.add(res, path)
                    found = True
            if not found:
                log.info("skipping %s: not a FHIR ValueSet", path)
    return index


__all__ = [
    "CodedColumn",
    "DeclaredValueSets",
    "ValueSet",
    "ValueSetIndex",
    "coding_keys",
    "load_valuesets",
    "parse_valueset",
]
