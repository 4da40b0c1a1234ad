"""``careqi``: the monthly job without a scheduler.

Every command calls the same stage functions as the Airflow DAG (``pipelines.stages``),
so a run from a laptop and a run from Airflow cannot drift apart. Errors a user can
act on are printed as one line (``error: ...``) with exit status 2; only a bug shows a
traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines import periods
from pipelines.cli_committee import actions_app, appendix_app, spc_app
from pipelines.cli_export import export_app
from pipelines.cli_feedback import feedback_app
from pipelines.config import Settings, load_settings
from pipelines.errors import CareQIError

app = typer.Typer(
    name="careqi",
    help="Healthcare quality indicators: FHIR R4 + patient feedback in, monthly quality reports out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
indicators_app = typer.Typer(help="Inspect the indicator catalogue.", no_args_is_help=True)
app.add_typer(indicators_app, name="indicators")
app.add_typer(feedback_app, name="feedback")
app.add_typer(actions_app, name="actions")
app.add_typer(spc_app, name="spc")
app.add_typer(appendix_app, name="appendix")
app.add_typer(export_app, name="export")

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DEFAULT_END = "2026-10"

PeriodOpt = Annotated[str, typer.Option("--period", "-p", help="Reporting month, YYYY-MM.")]


def _settings() -> Settings:
    return load_settings()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("great_expectations", "airflow", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each stage.")] = False,
) -> None:
    _setup_logging(verbose)


def _stage_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # gone when the step ends: an error stays the one line on stderr
    )


# ------------------------------------------------------------------------- generate
@app.command()
def generate(
    patients: Annotated[int, typer.Option(min=1, help="Number of synthetic patients.")] = 2000,
    months: Annotated[int, typer.Option(min=1, max=120, help="Months of history to write.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives identical files.")] = 42,
    end: Annotated[str, typer.Option(help="Last month to generate, YYYY-MM.")] = DEFAULT_END,
    defect_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of records made deliberately defective.")
    ] = 0.005,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default: the incoming folder).")] = None,
) -> None:
    """Write a deterministic synthetic hospital system as monthly FHIR NDJSON + feedback CSV batches."""
    from pipelines.generate import generate as run_generate

    settings = _settings()
    end = periods.validate_period(end)
    target = out_dir or settings.incoming_dir
    with _stage_progress() as progress:
        task = progress.add_task("generating patients", total=patients)
        summary = run_generate(
            target,
            patients=patients,
            months=months,
            seed=seed,
            end_period=end,
            defect_rate=defect_rate,
            progress=lambda n: progress.advance(task, n),
        )
    records = sum(sum(files.values()) for files in summary.records.values())
    out.print(
        f"wrote {len(summary.batches)} monthly batches ({summary.batches[0]} .. {summary.batches[-1]}) "
        f"to {target}: {records:,} records, {sum(summary.defects.values()):,} deliberately defective"
    )


# ------------------------------------------------------------------------------ run
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Load the delivery even if the delivery guard or the quarantine fail ratio refuses it "
        "(recorded with the batch).",
    ),
]
EmptyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--empty",
        metavar="TABLE",
        help="Declare a table truly empty this month (repeatable; 'all' for the whole batch), so the "
        "delivery guard accepts it.",
    ),
]


def _empty_tables(empty: list[str] | None) -> list[str]:
    return ["*" if t == "all" else t for t in (empty or [])]


def _run_one(
    period: str,
    settings: Settings,
    input_dir: Path | None,
    history: bool,
    report: bool,
    force: bool = False,
    empty_tables: list[str] | None = None,
) -> dict:
    from pipelines import stages

    steps = stages.period_steps(
        period, settings, input_dir=input_dir, history=history, report=report, force=force,
        empty_tables=empty_tables or [],
    )  # fmt: skip
    with _stage_progress() as progress:
        task = progress.add_task(f"{period}", total=len(steps))

        def step(name: str) -> None:
            progress.update(task, description=f"{period}: {name}")
            if name != "extract":
                progress.advance(task)

        outcome = stages.run_period(
            period,
            settings,
            input_dir=input_dir,
            history=history,
            report=report,
            force=force,
            empty_tables=empty_tables or [],
            on_step=step,
        )
        progress.advance(task)
        progress.update(task, description=f"{period}: done")
    return outcome


@app.command()
def run(
    period: PeriodOpt,
    input_dir: Annotated[
        Path | None,
        typer.Option("--input", help="Folder holding this month's extract (default: <incoming>/<period>)."),
    ] = None,
    history: Annotated[bool, typer.Option(help="Also recompute the previous months of the trend window.")] = False,
    report: Annotated[bool, typer.Option(help="Render the report and exports.")] = True,
    force: ForceOpt = False,
    empty: EmptyOpt = None,
) -> None:
    """Run the whole monthly job for one period: extract, validate, load, compute, report, export."""
    period = periods.validate_period(period)
    outcome = _run_one(period, _settings(), input_dir, history, report, force, _empty_tables(empty))
    _print_outcome(outcome)


@app.command()
def backfill(
    first: Annotated[str, typer.Option("--from", help="First month, YYYY-MM.")],
    last: Annotated[str, typer.Option("--to", help="Last month, YYYY-MM.")],
    report: Annotated[bool, typer.Option(help="Render the report and exports for every month.")] = False,
) -> None:
    """Load a range of months in order, then compute each month once (idempotent).

    Each month's results come from the batches up to that month plus the revision
    window, exactly as month-by-month runs would leave them, but without recomputing
    every month three times on the way.
    """
    from pipelines import stages

    settings = _settings()
    months = periods.span(periods.validate_period(first), periods.validate_period(last))
    with _stage_progress() as progress:
        task = progress.add_task("loading", total=3 * len(months) + 1)

        def step(name: str) -> None:
            progress.update(task, description=name)
            progress.advance(task)

        done = stages.backfill(months[0], months[-1], settings, on_step=step)
        progress.update(task, description="done")
    out.print(f"backfilled {months[0]} .. {months[-1]}: {_computed_text(done['compute'])} x {len(months)} months")
    if report:
        for period in months:
            out.print(f"{period}: {stages.report_stage(period, settings)}")
            stages.export_stage(period, settings)


def _computed_text(computed: dict) -> str:
    """``7 indicators computed, 4 not computed (value sets not supplied)``."""
    total = int(computed.get("indicators", 0))
    skipped = computed.get("not_computed") or {}
    text = f"{total - len(skipped)} indicators computed"
    if skipped:
        reasons = sorted({str(r).split(":")[0] for r in skipped.values()})
        text += f", {len(skipped)} not computed ({'; '.join(reasons)})"
    return text


def _print_outcome(outcome: dict, brief: bool = False) -> None:
    loaded = outcome.get("load") or {}
    computed = outcome.get("compute") or {}
    out.print(f"{outcome['period']}: loaded {sum(loaded.values()):,} rows, {_computed_text(computed)}")
    if computed.get("provisional"):
        out.print(f"{outcome['period']} is provisional: {computed['provisional']}")
    if not brief and "report" in outcome:
        out.print(f"report:  {outcome['report']}")
        written = outcome["export"]
        out.print("exports: " + ", ".join(f"{len(paths)} {name}" for name, paths in written.items()))


# ------------------------------------------------------------------------- validate
@app.command()
def validate(
    period: PeriodOpt,
    input_dir: Annotated[
        Path | None, typer.Option("--input", help="Folder to validate (default: <incoming>/<period>).")
    ] = None,
) -> None:
    """Extract and validate one month without loading: prints reconciliation and failed checks."""
    import pandas as pd

    from pipelines import stages
    from pipelines.errors import ValidationFailed

    settings = _settings()
    period = periods.validate_period(period)
    stages.extract_stage(period, settings, input_dir=input_dir)
    failure: ValidationFailed | None = None
    try:
        stages.validate_stage(period, settings)
    except ValidationFailed as exc:
        failure = exc
    folder = stages.stage_dir(settings, period, "validate")
    recon = pd.read_parquet(folder / "_reconciliation.parquet")
    checks = pd.read_parquet(folder / "_checks.parquet")
    table = Table(title=f"Reconciliation {period}")
    for col in ("table", "read", "accepted", "quarantined", "balanced"):
        table.add_column(col, justify="right" if col not in ("table",) else "left")
    for row in recon.itertuples():
        table.add_row(
            row.table_name,
            f"{row.rows_read:,}",
            f"{row.rows_accepted:,}",
            f"{row.rows_quarantined:,}",
            "yes" if row.balanced else "NO",
        )
    out.print(table)
    failed = checks[checks["status"] == "fail"]
    if len(failed):
        ft = Table(title="Failed checks")
        for col in ("table", "check", "violated", "%"):
            ft.add_column(col)
        for row in failed.itertuples():
            ft.add_row(row.table_name, row.check, f"{row.violated:,}", f"{row.pct:.2f}%")
        out.print(ft)
    out.print(f"quarantine: {folder / stages.QUARANTINE_FILE}")
    if failure is not None:
        raise failure


# --------------------------------------------------------------------- report/export
@app.command()
def report(period: PeriodOpt) -> None:
    """Render the monthly committee report for a computed period: HTML (and PDF) in each
    CAREQI_REPORT_LANGUAGES language, and the restricted case appendix."""
    from pipelines import stages

    out.print(stages.report_stage(periods.validate_period(period), _settings()))


# ----------------------------------------------------------------------- indicators
@indicators_app.command("list")
def indicators_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalogue as JSON.")] = False,
) -> None:
    """List every indicator with its domain, scoring, target and owner."""
    from pipelines.publish.formatting import format_value
    from pipelines.stages import indicator_catalogue

    indicators, _ = indicator_catalogue(_settings())
    if as_json:
        out.print_json(json.dumps([i.metadata() for i in indicators]))
        return
    table = Table(title=f"{len(indicators)} indicators")
    for col in ("id", "title", "domain", "scoring", "basis", "target", "improvement", "owner"):
        table.add_column(col)
    for i in indicators:
        table.add_row(
            i.id, i.title, i.domain.label, i.scoring.value, i.basis.value, format_value(i.target, i),
            i.improvement.value, i.owner,
        )  # fmt: skip
    out.print(table)


@indicators_app.command("retire")
def indicators_retire(
    indicator_id: Annotated[str, typer.Argument(help="Indicator id whose file was removed.")],
) -> None:
    """Archive the stored results of an indicator whose definition was removed, so that
    months holding its old results can be reported and exported again."""
    from pipelines.stages import retire_stage

    moved = retire_stage(indicator_id, _settings())
    out.print(
        f"retired {indicator_id}: {moved.get('indicator_results', 0):,} result rows and "
        f"{moved.get('indicator_subjects', 0):,} subject rows archived"
    )


@indicators_app.command("show")
def indicators_show(indicator_id: Annotated[str, typer.Argument(help="Indicator id.")]) -> None:
    """Print one indicator's full definition."""
    from pipelines.stages import indicator_catalogue

    indicators, _ = indicator_catalogue(_settings())
    for ind in indicators:
        if ind.id == indicator_id:
            out.print_json(json.dumps(ind.metadata()))
            return
    known = ", ".join(i.id for i in indicators)
    raise CareQIError(f"no indicator {indicator_id!r}; known: {known}")


# ---------------------------------------------------------------------- conformance
@app.command()
def conformance(
    measure_dir: Annotated[
        Path, typer.Argument(help="Measure deck: measure/, valuesets/, testcases/<patient>/<case>.json.")
    ],
    valuesets: Annotated[
        list[Path] | None,
        typer.Option(
            "--valuesets",
            metavar="DIR",
            help="Value-set folder (repeatable; default: MEASURE_DIR/valuesets). "
            "The project's indicators/valuesets is always added.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Write the computed individual MeasureReports and a summary here."),
    ] = None,
    indicator: Annotated[str | None, typer.Option(help="Indicator id, when several have the measure's cms_id.")] = None,
) -> None:
    """Run a CMS eCQM test deck through extract + indicator and compare population counts per case.

    Exit status 0 only when every case matches (1 otherwise; 2 for a folder that is not a deck).
    """
    from pipelines.conformance import render_text, run_deck, to_json, write_measure_reports

    run_result = run_deck(measure_dir, _settings(), valueset_dirs=valuesets or None, indicator_id=indicator)
    written = write_measure_reports(run_result, out_dir) if out_dir is not None else []
    if as_json:
        typer.echo(json.dumps(to_json(run_result), indent=2))
    else:
        out.print(render_text(run_result), highlight=False, markup=False)
        if written:
            out.print(f"wrote {len(written)} MeasureReports to {out_dir}", highlight=False, markup=False)
    if not run_result.ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- bench
@app.command()
def bench(
    patients: Annotated[int, typer.Option(min=100, help="Synthetic patients to generate and process.")] = 100_000,
    months: Annotated[int, typer.Option(min=2, max=24, help="Months of data (the last is the monthly run).")] = 12,
    workdir: Annotated[Path | None, typer.Option(help="Scratch folder (default: <home>/bench; wiped first).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON document.")] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Compute shards run at once (an executor's slots; the cores to use).")
    ] = 1,
) -> None:
    """Time every stage on N synthetic patients: the backfill, then the monthly run
    (one new month into a warehouse holding the others), with records/s and the peak
    memory of each stage's processes (one per task, as the DAG runs them), the NDJSON
    parser's ceiling and each indicator's populations."""
    import json

    from pipelines.bench import run_benchmark

    settings = _settings()
    result = run_benchmark(
        settings,
        patients=patients,
        months=months,
        workdir=workdir,
        console=None if as_json else console,
        workers=workers,
    )
    if as_json:
        out.print_json(json.dumps(result))
        return
    for part, title in (("backfill", f"backfill: {months - 1} months"), ("monthly", "monthly run: one more month")):
        table = Table(title=f"CareQI benchmark, {patients:,} patients: {title}")
        for col in ("stage", "records", "seconds", "records/s", "processes", "peak RSS MiB"):
            table.add_column(col, justify="right" if col != "stage" else "left")
        rows = result[part] + ([result["extract_ceiling"]] if part == "monthly" else [])
        for row in rows:
            table.add_row(
                row["stage"],
                f"{row['records']:,}",
                f"{row['seconds']:.2f}",
                f"{row['rate']:,.0f}",
                f"{row.get('processes', 1):,}",
                f"{row['peak_mib']:,.0f}",
            )
        out.print(table)
    out.print(f"monthly run: {result['monthly_seconds']:.1f} s", highlight=False)
    out.print(f"largest process: {result['peak_process_mib']:,.0f} MiB resident ({result['machine']['process']})")
    shard = f"{result['shard_patients']:,} patients"
    table = Table(title=f"Indicators: populations in the monthly run; patients/s on one shard ({shard})")
    for col in ("indicator", "patients/s", "initial population", "denominator", "numerator"):
        table.add_column(col, justify="right" if col != "indicator" else "left")
    for row in result["indicators"]:
        pops = row["populations"]
        table.add_row(
            row["indicator"],
            f"{row['patients_per_s']:,.0f}",
            *(f"{pops.get(p, 0):,}" for p in ("initial_population", "denominator", "numerator")),
        )
    out.print(table)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors for users, tracebacks only for bugs."""
    command = typer.main.get_command(app)
    try:
        # With standalone_mode=False click returns a typer.Exit's code instead of raising it.
        code = command.main(args=argv, prog_name="careqi", standalone_mode=False)
        if isinstance(code, int) and code:
            return code
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except typer.Abort:
        console.print("aborted")
        return 130
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, no such command
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: show its help, not an error
            out.print(exc.format_message(), highlight=False, markup=False)  # type: ignore[attr-defined]
            return 0
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        console.print(f"error: {message}{hint}", highlight=False, soft_wrap=True, markup=False)
        return 2
    except CareQIError as exc:
        console.print(f"error: {exc}", highlight=False, soft_wrap=True, markup=False)
        return 2
    except OSError as exc:  # disk full, read-only folder, permissions: the user can act on it
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        console.print(f"error: {exc.strerror or exc}{where}", highlight=False, soft_wrap=True, markup=False)
        return 2
    except Exception as exc:
        if not _database_error(exc):
            raise  # a bug: show the traceback
        from pipelines.load.engine import one_line

        console.print(f"error: warehouse: {one_line(exc)}", highlight=False, soft_wrap=True, markup=False)
        return 2
    return 0


def _database_error(exc: BaseException) -> bool:
    """A database error that escaped the warehouse room (the server said no): one line,
    not a traceback. Checked lazily so that ``careqi --help`` does not import SQLAlchemy."""
    import sys as _sys

    if "sqlalchemy" not in _sys.modules and "psycopg" not in _sys.modules:
        return False
    from pipelines.load.engine import DRIVER_ERRORS

    return isinstance(exc, DRIVER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
