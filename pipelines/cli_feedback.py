"""``careqi feedback ...``: patient-experience tools that work on a file, no warehouse needed.

* ``hcahps-stars IN.csv -o OUT.csv``: a file in the CMS Hospital Compare HCAHPS layout,
  written back unchanged with ``computed_summary_star`` added (CMS's summary-star rule,
  :mod:`pipelines.analyse.experience`), so a hospital can check a published figure.
* ``classify IN.csv --text-column COL -o OUT.csv``: every comment's themes and sentiment
  (:mod:`pipelines.analyse.text`), with a progress bar.
* ``day --day D``: the daily run (``patient_feedback_daily`` without Airflow): ingest
  and validate the day's delivery, label new comments, store and raise SLA breaches.
* ``days --month M``: write the daily deliveries the generated system implies for each
  day of a month (for demos and tests of the daily run).
* ``bench-text``: the comment model's precision, recall and F1 per theme and its
  sentiment accuracy on the labelled NHS Friends and Family Test comments (held-out
  respondents only).

Kept apart from :mod:`pipelines.cli` so the monthly job's commands stay one screen long.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

feedback_app = typer.Typer(
    help="Patient-experience tools: HCAHPS summary stars, comment themes and sentiment.", no_args_is_help=True
)

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _refuse_overwrite(source: Path, target: Path) -> None:
    from pipelines.errors import ConfigError

    if source.resolve() == target.resolve():
        raise ConfigError(f"-o {target} is the input file: write the result to another file")


@feedback_app.command("hcahps-stars")
def hcahps_stars(
    source: Annotated[Path, typer.Argument(help="CSV in the CMS HCAHPS hospital layout (one row per hospital).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the file with the new column.")],
) -> None:
    """Add ``computed_summary_star`` (CMS's rule, from the file's own measure stars) to an HCAHPS file.

    Prints how many hospitals have a published summary star and how many of those the
    computed one matches.
    """
    import pandas as pd

    from pipelines.analyse.experience import add_computed_summary_star, read_cms_layout, write_cms_layout

    _refuse_overwrite(source, output)
    frame = add_computed_summary_star(read_cms_layout(source))
    write_cms_layout(frame, output)
    computed = frame["computed_summary_star"]
    published = pd.to_numeric(frame.get("H_STAR_RATING", pd.Series(dtype="string")), errors="coerce")
    both = published.notna() & computed.notna()
    agree = int((published[both] == computed[both].astype("float64")).sum())
    out.print(
        f"{len(frame)} hospitals, {int(computed.notna().sum())} with a computed summary star; "
        f"{agree} of {int(both.sum())} with a published one agree. Wrote {output}",
        highlight=False,
        markup=False,
    )


@feedback_app.command("classify")
def classify(
    source: Annotated[Path, typer.Argument(help="CSV with a free-text column (survey comments, complaint texts).")],
    text_column: Annotated[str, typer.Option("--text-column", help="The column holding the text.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the copy with the new columns.")],
) -> None:
    """Copy the CSV and add ``themes`` (semicolon-separated) and ``sentiment`` (positive | neutral | negative)."""
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.analyse.text.classifier import classify as classify_texts
    from pipelines.errors import ConfigError

    _refuse_overwrite(source, output)
    frame = pd.read_csv(source, dtype="string", keep_default_na=False, na_values=[])
    if text_column not in frame.columns:
        raise ConfigError(f"{source}: no column {text_column!r} (columns: {', '.join(map(str, frame.columns))})")
    texts = frame[text_column].tolist()
    with Progress(
        TextColumn("classifying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("classify", total=len(texts))
        labels = classify_texts(texts, progress=lambda n: bar.advance(task, n))
    result = frame.assign(themes=labels["themes"].to_numpy(), sentiment=labels["sentiment"].to_numpy())
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output, index=False)
    out.print(f"classified {len(result)} texts; wrote {output}", highlight=False, markup=False)


@feedback_app.command("day")
def day(
    day: Annotated[str, typer.Option("--day", "-d", help="Day of the delivery, YYYY-MM-DD.")],
    input_dir: Annotated[
        Path | None, typer.Option("--input", help="The delivery folder (default: <incoming>/feedback/DAY).")
    ] = None,
) -> None:
    """Ingest one day's feedback delivery, label new comments, store and raise complaints past a deadline."""
    from pipelines.alerts import notify_breaches
    from pipelines.feedback_day import run_day

    summary = run_day(day, input_dir=input_dir)
    notify_breaches(summary)
    rules = "; ".join(f"{v['title']}: {v['open']} open ({v['new']} new)" for v in summary["by_rule"].values())
    out.print(
        f"{summary['day']}: {summary['labelled']} new texts labelled; {summary['open']} complaint(s) open past a "
        f"deadline, {summary['new']} new. {rules}",
        highlight=False,
        markup=False,
    )


@feedback_app.command("days")
def days(
    month: Annotated[str, typer.Option("--month", "-m", help="Month whose days to write, YYYY-MM.")],
) -> None:
    """Write the daily feedback deliveries of a generated month under <incoming>/feedback/."""
    from pipelines.config import load_settings
    from pipelines.generate.daily import write_feedback_days

    settings = load_settings()
    written = write_feedback_days(settings.incoming_dir, month, timezones=settings.timezones)
    out.print(f"wrote {len(written)} daily deliveries under {settings.incoming_dir / 'feedback'}", highlight=False)


@feedback_app.command("bench-text")
def bench_text(
    source: Annotated[
        Path | None,
        typer.Argument(help="Labelled FFT comments (default: CAREQI_SHARED_DATA/nhs-fft-feedback-pxtextmining)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Theme precision / recall / F1 and sentiment accuracy of the comment model on held-out labelled comments."""
    from pipelines.analyse.text.evaluate import DEFAULT_FILE, evaluate, render_text
    from pipelines.config import load_settings

    path = source or load_settings().shared_data_dir / DEFAULT_FILE
    result = evaluate(path)
    if as_json:
        typer.echo(json.dumps(result if isinstance(result, dict) else result.to_dict(), indent=2))
    else:
        out.print(render_text(result), highlight=False, markup=False)


__all__ = ["feedback_app"]
