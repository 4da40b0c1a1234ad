"""CQL retrieves by value set or code, over every coding of a record.

CQL's ``in`` on a CodeableConcept is true when ANY of its codings is in the set. The tidy
tables keep each record's first coding in its own columns; the ``codings`` table keeps
them all (named by FHIR element, ``codings.element``). A record matches when its own
coding matches or any of its codings of the element does. Where the contract keeps a
code without a system (route, an observation's value), that column is matched on the
code alone.

Value sets and direct-reference codes are named as the CQL names them; the indicator's
YAML declares what each name is (:class:`~pipelines.compute.valuesets.DeclaredValueSets`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.compute.ecqm.columns import isin, strs
from pipelines.compute.valuesets import DeclaredValueSets
from pipelines.tables import TABLES, coding_record_keys, record_keys

_SEP = "\x1f"

#: ``codings.element`` names under which each coded element may arrive: the extractor
#: names elements after FHIR (``children.CODED_ELEMENTS``); the aliases keep the logic
#: independent of how a feed spells nested elements.
ELEMENTS: dict[str, tuple[str, ...]] = {
    "code": ("code",),
    "medication": ("code", "medication", "medicationCodeableConcept"),
    "request": ("code", "codeCodeableConcept"),
    "type": ("type",),
    "reason": ("reasonCode", "reason"),
    "route": ("route", "dosage.route", "dosageInstruction.route"),
    "status_reason": ("statusReason", "status_reason"),
    "refused": ("reasonRefused", "doNotPerformReason", "reasonCode", "reason"),
    "value": ("value", "valueCodeableConcept"),
    "diagnosis": ("diagnosis", "code", "diagnosisCodeableConcept"),
    "procedure": ("procedure", "code", "procedureCodeableConcept"),
    "event": ("event", "code"),
    "disposition": ("dischargeDisposition", "hospitalization.dischargeDisposition"),
}
#: The element a retrieve of each table matches by default (CQL's code path).
DEFAULT_ELEMENT: dict[str, str] = {
    "encounters": "type",
    "medications": "medication",
    "requests": "request",
    "locations": "type",
    "claim_diagnoses": "diagnosis",
    "claim_procedures": "procedure",
    "adverse_events": "event",
}
#: A table's own columns holding the first coding of its default element (code, system).
OWN_CODING: dict[str, tuple[str, str]] = {
    "encounters": ("type_code", "type_system"),
    "locations": ("kind_code", "kind_system"),
}
#: Own coding: (code column, system column); system None means the code alone.
Own = tuple[str, str | None] | None


class Retrieve:
    """One evaluation's access to the read model, with coding subsets built once."""

    def __init__(self, data: Mapping[str, pd.DataFrame], valuesets: DeclaredValueSets) -> None:
        self.data = data
        self.vs = valuesets
        self._codings: dict[tuple[str, tuple[str, ...]], pd.DataFrame] = {}

    def table(self, name: str) -> pd.DataFrame:
        """One row per record (the data is a read-model snapshot)."""
        return self.data[name]

    def codings(self, table: str, element: str) -> pd.DataFrame:
        """``key`` (the record's :func:`tables.record_keys`), ``record_id``, ``system`` and
        ``code`` of every coding of ``element`` of ``table``'s records."""
        aliases = ELEMENTS.get(element, (element,))
        if (table, aliases) not in self._codings:
            c = self.table("codings")
            c = c[isin(c["table_name"], [table]) & isin(c["element"], aliases)]
            self._codings[(table, aliases)] = pd.DataFrame(
                {
                    "key": strs(coding_record_keys(c)),
                    "record_id": strs(c["record_id"]),
                    "system": strs(c["system"]),
                    "code": strs(c["code"]),
                }
            ).reset_index(drop=True)
        return self._codings[(table, aliases)]

    # ------------------------------------------------------------------ value sets
    def keys_in(self, table: str, element: str, names: Iterable[str]) -> np.ndarray:
        """Record keys of ``table`` with a coding of ``element`` in any of the value sets."""
        c = self.codings(table, element)
        if c.empty:
            return np.array([], dtype=object)
        hit = np.zeros(len(c), dtype=bool)
        for name in names:
            hit |= self.vs.mask(name, c["system"], c["code"])
        return c.loc[hit, "key"].unique()

    def in_valueset(
        self,
        frame: pd.DataFrame,
        table: str,
        names: Iterable[str] | str,
        *,
        element: str | None = None,
        own: Own | Literal["default"] = "default",
        key: str | None = None,
    ) -> np.ndarray:
        """Rows of ``frame`` (records of ``table``) whose own coding or any coding of
        ``element`` is in one of the named value sets."""
        names = (names,) if isinstance(names, str) else tuple(names)

        def match(system: pd.Series, code: pd.Series) -> np.ndarray:
            hit = np.zeros(len(code), dtype=bool)
            for name in names:
                hit |= self.vs.mask(name, system, code)
            return hit

        return self._rows(
            frame,
            table,
            element,
            own,
            key,
            match,
            lambda: {c for name in names for _, c in self.vs.codes(name)},
            lambda el: self.keys_in(table, el, names),
        )

    def ids_in(self, table: str, names: Iterable[str] | str, **kwargs: object) -> np.ndarray:
        """The record ids of ``table`` in any of the value sets (a retrieve of the table)."""
        frame = self.table(table)
        hit = self.in_valueset(frame, table, names, **kwargs)  # type: ignore[arg-type]
        return strs(frame.loc[hit, TABLES[table].key]).dropna().unique()

    # ------------------------------------------------------------------ direct codes
    def keys_with(self, table: str, element: str, codes: Iterable[tuple[str, str]]) -> np.ndarray:
        """Record keys of ``table`` with a coding of ``element`` equal to one of ``codes``."""
        c = self.codings(table, element)
        return c.loc[code_mask(c["system"], c["code"], codes), "key"].unique()

    def with_code(
        self,
        frame: pd.DataFrame,
        table: str,
        codes: Iterable[tuple[str, str] | str],
        *,
        element: str | None = None,
        own: Own | Literal["default"] = "default",
        key: str | None = None,
    ) -> np.ndarray:
        """Rows whose own coding or any coding of ``element`` is one of ``codes`` (CQL ``~``
        on a direct-reference code); a code may be given by its declared name."""
        pairs = [self.vs.code(c) if isinstance(c, str) else c for c in codes]
        return self._rows(
            frame,
            table,
            element,
            own,
            key,
            lambda system, code: code_mask(system, code, pairs),
            lambda: {c for _, c in pairs},
            lambda el: self.keys_with(table, el, pairs),
        )

    def _rows(
        self,
        frame: pd.DataFrame,
        table: str,
        element: str | None,
        own: Own | Literal["default"],
        key: str | None,
        match: Callable[[pd.Series, pd.Series], np.ndarray],
        codes: Callable[[], set[str]],
        keys: Callable[[str], np.ndarray],
    ) -> np.ndarray:
        """Rows of ``frame`` whose own coding matches (``match`` on system and code; on the
        code alone, in ``codes``, where the contract keeps no system) or whose record has
        a matching coding of ``element`` (``keys``)."""
        element = element or DEFAULT_ELEMENT.get(table, "code")
        mine = _default_own(table, element) if isinstance(own, str) else own
        out = np.zeros(len(frame), dtype=bool)
        if frame.empty:
            return out
        if mine is not None:
            code_col, system_col = mine
            out |= isin(frame[code_col], codes()) if system_col is None else match(frame[system_col], frame[code_col])
        out |= isin(record_keys(table, frame, key), keys(element))
        return out


def _default_own(table: str, element: str) -> Own:
    """The table's own first coding stands for its default element only."""
    if element != DEFAULT_ELEMENT.get(table, "code"):
        return None
    return OWN_CODING.get(table, ("code", "code_system"))


def code_mask(system: pd.Series, code: pd.Series, codes: Iterable[tuple[str, str]]) -> np.ndarray:
    """(system, code) of each row equal to one of ``codes``; nulls never match."""
    wanted = [f"{s}{_SEP}{c}" for s, c in codes]
    return (strs(system) + _SEP + strs(code)).isin(wanted).to_numpy(dtype=bool, na_value=False)


__all__ = ["DEFAULT_ELEMENT", "ELEMENTS", "OWN_CODING", "Retrieve", "code_mask"]
