"""Export: regulator extracts with small-number suppression, one module per format.

Every format is a writer with the same signature (:data:`Writer`): the month's results,
the indicators they belong to, the period and the folder to write into; it returns the
files it wrote. :data:`FORMATS` lists them, and the export stage writes every one into
one folder published as a set. A new format is one module here and one line in
:data:`FORMATS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd

from pipelines.compute.model import Indicator
from pipelines.export.csv_export import export_csv
from pipelines.export.dictionary import export_dictionary
from pipelines.export.manifest import read_manifest, write_manifest
from pipelines.export.measure_report import export_measure_reports, measure_report_from_counts
from pipelines.export.parquet_export import export_parquet
from pipelines.export.verify import verify_package


class Writer(Protocol):
    def __call__(
        self,
        results: pd.DataFrame,
        indicators: Sequence[Indicator],
        period: str,
        out_dir: Path,
        *,
        small_number_threshold: int = ...,
        rounding: int = ...,
        controlled: pd.DataFrame | None = ...,
    ) -> list[Path]: ...


#: Format name -> its writer, in the order they are written.
FORMATS: dict[str, Writer] = {
    "csv": export_csv,
    "measure_reports": export_measure_reports,
    "data_dictionary": export_dictionary,
    "parquet": export_parquet,
}

__all__ = [
    "FORMATS",
    "Writer",
    "export_csv",
    "export_dictionary",
    "export_measure_reports",
    "export_parquet",
    "measure_report_from_counts",
    "read_manifest",
    "verify_package",
    "write_manifest",
]
