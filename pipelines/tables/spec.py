"""How a table of the contract is declared: its columns, their pandas dtypes, its key.

Every table (source tables, the warehouse's bookkeeping and results tables) is a
:class:`TableSpec`; load creates warehouse tables from them and :func:`empty_frame`
gives the shape a stage returns when there is nothing to return.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

#: Columns every source row carries: where it came from, to the line.
PROVENANCE = (("source_file", "string"), ("source_line", "Int64"))
#: The timestamp dtype: naive facility-local wall-clock time (see the package docstring).
TS = "datetime64[us]"


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # pandas dtype: string | Int64 | Float64 | boolean | datetime64[us]
    nullable: bool = True
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract.

    ``key`` is the record id column. A table fed by several FHIR resource types
    (medications: MedicationAdministration and MedicationRequest) names the column
    holding the type in ``type_column``: FHIR ids are unique per type only, so such a
    record is identified by (type, id) - :attr:`key_columns` - and two resources of
    different types with the same id are two records, not a duplicate.
    """

    name: str
    key: str
    columns: tuple[Column, ...]
    grain: str
    provenance: bool = True
    type_column: str | None = None

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The columns that identify a record within a batch."""
        return (self.type_column, self.key) if self.type_column else (self.key,)

    @property
    def column_names(self) -> list[str]:
        names = [c.name for c in self.columns]
        if self.provenance:
            names += [p for p, _ in PROVENANCE]
        return names

    @property
    def dtypes(self) -> dict[str, str]:
        d = {c.name: c.dtype for c in self.columns}
        if self.provenance:
            d.update(dict(PROVENANCE))
        return d


def col(name: str, dtype: str = "string", nullable: bool = True, doc: str = "") -> Column:
    return Column(name, dtype, nullable, doc)


def empty_frame(spec: TableSpec) -> pd.DataFrame:
    """An empty frame with the table's columns and dtypes."""
    return pd.DataFrame({n: pd.Series(dtype=t) for n, t in spec.dtypes.items()})


__all__ = ["PROVENANCE", "TS", "Column", "TableSpec", "col", "empty_frame"]
