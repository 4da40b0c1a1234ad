"""``careqi export ...``: tools for a regulator export package that need no warehouse.

* ``package --period P``: write the export package of a month (``YYYY-MM``), a quarter
  (``YYYY-Qn``) or a year (``YYYY``, the eCQMs' measurement period), and deliver it
  when ``CAREQI_EXPORT_CONNECTION`` names a destination. ``careqi export --period P``
  (no sub-command) is the same, kept for the command line of earlier releases.
* ``verify DIR``: every check of :func:`pipelines.export.verify.verify_package`
  (manifest complete, checksums, FHIR validity, small-number suppression re-checked
  from the published CSV, no identifiers); one line per problem and exit status 1 on
  any, else ``package OK: N files verified``. A recipient can run it on what arrived,
  and the monthly job before sending.

Kept apart from :mod:`pipelines.cli` so the monthly job's commands stay one screen long.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

export_app = typer.Typer(
    help="Regulator export packages: write one for a period (--period), or verify one.",
    no_args_is_help=True,
    invoke_without_command=True,
)

console = Console(stderr=True, soft_wrap=True, highlight=False)
out = Console(soft_wrap=True, highlight=False)


@export_app.callback()
def export(
    ctx: typer.Context,
    period: Annotated[
        str | None, typer.Option("--period", "-p", help="Same as `package --period` (YYYY-MM, YYYY-Qn or YYYY).")
    ] = None,
) -> None:
    """Write the regulator export package (CSV, Parquet, data dictionary, FHIR Bundle,
    manifest) for a period (``package --period``), or verify one (``verify DIR``)."""
    if ctx.invoked_subcommand is not None:
        if period is not None:
            raise typer.BadParameter("--period writes a package; give it without a sub-command")
        return
    if period is None:
        out.print(ctx.get_help(), markup=False)
        raise typer.Exit(2)
    _write_package(period)


def _write_package(period: str) -> None:
    from pipelines import packaging
    from pipelines.config import load_settings
    from pipelines.periods import MeasurementPeriod

    written = packaging.export_package(MeasurementPeriod.parse(period).label, load_settings())
    for paths in written.values():
        for path in paths:
            out.print(path, markup=False)


@export_app.command("package")
def package(
    period: Annotated[str, typer.Option("--period", "-p", help="A month YYYY-MM, a quarter YYYY-Qn or a year YYYY.")],
) -> None:
    """Write one period's export package into the exports folder (and deliver it when an
    export connection is set); a quarter or a year is evaluated over the whole period."""
    _write_package(period)


@export_app.command("verify")
def verify(
    folder: Annotated[Path, typer.Argument(help="The export package folder (the one holding manifest.json).")],
) -> None:
    """Check an export package: complete, unchanged, valid FHIR, suppression intact, no identifiers."""
    from pipelines.export.verify import verified_file_count, verify_package

    problems = verify_package(folder)
    if problems:
        for problem in problems:
            console.print(problem, markup=False)
        console.print(f"{len(problems)} problem(s): {folder} is not a valid export package", markup=False)
        raise typer.Exit(1)
    out.print(f"package OK: {verified_file_count(folder)} files verified", markup=False)


__all__ = ["export_app"]
