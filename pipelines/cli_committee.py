"""``careqi actions ...``, ``careqi spc ...``, ``careqi appendix ...``: the committee's records.

* ``actions import FILE``: load (upsert by id) the improvement-action register from a
  YAML or CSV file (:mod:`pipelines.actions`); ``actions set`` records or updates one;
  ``actions list`` prints the register with overdue ones marked.
* ``spc rephase --indicator I --from YYYY-MM --approved-by WHO --reason WHY``: record an
  approved change point, after which the indicator's SPC chart has a new baseline.
  Refused without an approver and a reason; ``spc phases`` lists them, ``spc withdraw``
  removes one.
* ``appendix reidentify --period P PSEUDONYM...``: the data team's look-up from a
  pseudonym in the restricted case appendix to the record it stands for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

actions_app = typer.Typer(help="The improvement-action register (owner, due date, status).", no_args_is_help=True)
spc_app = typer.Typer(help="SPC baselines: approved change points (re-phasing).", no_args_is_help=True)
appendix_app = typer.Typer(help="The restricted case appendix: re-identify a pseudonym.", no_args_is_help=True)

out = Console(soft_wrap=True)


@contextmanager
def _warehouse() -> Iterator[Engine]:
    """The configured warehouse (schema checked first), disposed of afterwards."""
    from pipelines.config import load_settings
    from pipelines.stages import check_warehouse, warehouse

    settings = load_settings()
    check_warehouse(settings)
    engine = warehouse(settings)
    try:
        yield engine
    finally:
        engine.dispose()


def _indicator_ids() -> list[str]:
    from pipelines.config import load_settings
    from pipelines.stages import indicator_catalogue

    indicators, _ = indicator_catalogue(load_settings())
    return [i.id for i in indicators]


@actions_app.command("import")
def actions_import(path: Annotated[Path, typer.Argument(help="YAML (a list of actions) or CSV file.")]) -> None:
    """Load actions from a file; an action already recorded with the same id is replaced."""
    from pipelines.actions import action_rows, read_action_file
    from pipelines.load.governance import upsert_actions

    rows = action_rows(read_action_file(path), today=date.today(), known_indicators=_indicator_ids())
    with _warehouse() as engine:
        n = upsert_actions(engine, rows)
    out.print(f"{n} action(s) stored from {path}")


@actions_app.command("set")
def actions_set(
    action_id: Annotated[str, typer.Option("--id", help="The action's key.")],
    indicator: Annotated[str, typer.Option("--indicator", help="The indicator it is about.")],
    title: Annotated[str, typer.Option("--title", help="What will be done.")],
    owner: Annotated[str, typer.Option("--owner", help="Who is accountable.")],
    due: Annotated[str, typer.Option("--due", help="Due date, YYYY-MM-DD.")],
    unit: Annotated[str, typer.Option("--unit", help="ALL, a facility, department or ward id.")] = "ALL",
    status: Annotated[str, typer.Option("--status", help="open | in_progress | done | cancelled")] = "open",
    note: Annotated[str, typer.Option("--note", help="Progress so far.")] = "",
) -> None:
    """Record one action, or update it (same id)."""
    from pipelines.actions import action_rows
    from pipelines.load.governance import upsert_actions

    record = {"action_id": action_id, "indicator_id": indicator, "unit": unit, "title": title, "owner": owner,
              "due_on": due, "status": status, "note": note}  # fmt: skip
    rows = action_rows([record], today=date.today(), known_indicators=_indicator_ids())
    with _warehouse() as engine:
        upsert_actions(engine, rows)
    out.print(f"action {action_id} stored")


@actions_app.command("list")
def actions_list(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date overdue is judged on (default: today).")] = None,
) -> None:
    """The register, overdue actions marked."""
    from pipelines.actions import is_overdue
    from pipelines.load.governance import read_actions

    with _warehouse() as engine:
        actions = read_actions(engine)
    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        from pipelines.errors import ConfigError

        raise ConfigError(f"--as-of must be a date YYYY-MM-DD, got {as_of!r}") from None
    if not len(actions):
        out.print("no improvement actions recorded (careqi actions import FILE, or careqi actions set ...)")
        return
    late = is_overdue(actions, day) if len(actions) else []
    table = Table("id", "indicator", "unit", "owner", "due", "status", "title")
    for rec, overdue in zip(actions.to_dict("records"), list(late), strict=True):
        due = f"{rec['due_on']:%Y-%m-%d}" + (" OVERDUE" if overdue else "")
        table.add_row(rec["action_id"], rec["indicator_id"], rec["unit"], rec["owner"], due, rec["status"],
                      rec["title"])  # fmt: skip
    out.print(table)


@spc_app.command("rephase")
def spc_rephase(
    indicator: Annotated[str, typer.Option("--indicator", help="The indicator whose chart gets a new baseline.")],
    starts: Annotated[str, typer.Option("--from", help="First month of the new phase, YYYY-MM.")],
    approved_by: Annotated[str, typer.Option("--approved-by", help="Who approved it (name and role).")] = "",
    reason: Annotated[str, typer.Option("--reason", help="Why the process changed.")] = "",
    unit: Annotated[str, typer.Option("--unit", help="ALL (the system) or a facility id.")] = "ALL",
) -> None:
    """Record an approved change point. Refused without --approved-by and --reason."""
    from pipelines.errors import ConfigError
    from pipelines.load.governance import add_phase

    if indicator not in _indicator_ids():
        raise ConfigError(f"no indicator {indicator!r}")
    with _warehouse() as engine:
        add_phase(engine, indicator_id=indicator, unit=unit, starts=starts, approved_by=approved_by, reason=reason,
                  approved_at=datetime.now(UTC))  # fmt: skip
    out.print(f"{indicator} ({unit}): new SPC baseline from {starts}, approved by {approved_by.strip()}")


@spc_app.command("phases")
def spc_phases() -> None:
    """Every approved change point."""
    from pipelines.load.governance import read_phases

    with _warehouse() as engine:
        phases = read_phases(engine)
    table = Table("indicator", "unit", "from", "approved by", "approved at", "reason")
    for rec in phases.to_dict("records"):
        table.add_row(rec["indicator_id"], rec["unit"], rec["starts"], rec["approved_by"],
                      f"{rec['approved_at']:%Y-%m-%d %H:%M}", rec["reason"])  # fmt: skip
    out.print(table)


@spc_app.command("withdraw")
def spc_withdraw(
    indicator: Annotated[str, typer.Option("--indicator")],
    starts: Annotated[str, typer.Option("--from", help="The change point's month, YYYY-MM.")],
    unit: Annotated[str, typer.Option("--unit")] = "ALL",
) -> None:
    """Remove a recorded change point."""
    from pipelines.errors import ConfigError
    from pipelines.load.governance import remove_phase

    with _warehouse() as engine:
        n = remove_phase(engine, indicator_id=indicator, unit=unit, starts=starts)
    if not n:
        raise ConfigError(f"no change point of {indicator} in {unit} from {starts}")
    out.print(f"withdrawn: {indicator} ({unit}) from {starts}")


@appendix_app.command("reidentify")
def appendix_reidentify(
    period: Annotated[str, typer.Option("--period", "-p", help="The appendix's month, YYYY-MM.")],
    pseudonyms: Annotated[list[str], typer.Argument(help="Pseudonyms from the appendix (S-...).")],
) -> None:
    """Which record each pseudonym stands for (needs the warehouse's key)."""
    from pipelines import periods
    from pipelines.load import read_subjects
    from pipelines.load.governance import pseudonym_key
    from pipelines.publish.appendix import reidentify

    period = periods.validate_period(period)
    with _warehouse() as engine:
        _, secret = pseudonym_key(engine, create=False)
        subjects = read_subjects(engine, period)
    found = reidentify(secret, pseudonyms, subjects["subject_id"].astype(str))
    code = 0
    for p in pseudonyms:
        hits = found.get(p.strip(), [])
        out.print(f"{p}: {', '.join(hits) if hits else 'not found in ' + period}")
        code = code or (0 if hits else 1)
    if code:
        raise typer.Exit(code)


__all__ = ["actions_app", "appendix_app", "spc_app"]
