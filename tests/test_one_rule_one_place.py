"""Each rule in one place: a second implementation of a rule the house keeps once fails here.

Read from the source (AST), so it does not matter what a copy is called:

* **Latest delivery wins** is :func:`pipelines.load.snapshot.latest_per_key`. Anything
  that orders or de-duplicates rows by their ``batch`` is a second implementation;
  compute, publish, export, the conformance runner and the indicators read source
  tables only through the read model (never SQL, never the warehouse schema).
* **A reporting month** is :class:`pipelines.periods.Month`: no other module holds a
  ``YYYY-MM`` pattern or format, parses one by hand, or raises the month error.
* **A population's code, label and column** live on
  :class:`pipelines.compute.model.Population`, a domain's label on ``Domain``: no
  table of them anywhere else.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    p
    for root in ("pipelines", "dags", "indicators")
    for p in (REPO / root).rglob("*.py")
    if "__pycache__" not in p.parts
)
READ_MODEL = "pipelines/load/snapshot.py"
PERIODS = "pipelines/periods.py"
#: Packages that must read source tables through the read model only.
READERS = ("pipelines/compute/", "pipelines/publish/", "pipelines/export/", "pipelines/conformance/", "indicators/")
#: Ordering by ``batch`` that is not about records: (file, why).
BATCH_ORDER_ALLOWED = {
    "pipelines/load/batches.py": "lists the loaded batches themselves (load_batches) in order",
    "pipelines/publish/data_quality.py": "orders reconciliation rows (one per table and batch) for display",
}
ORDERING_CALLS = {"sort_values", "drop_duplicates", "duplicated", "order_by", "groupby", "nlargest", "idxmax"}


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _trees() -> Iterator[tuple[str, ast.Module]]:
    for path in SOURCES:
        yield _rel(path), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _names_batch(node: ast.AST) -> bool:
    """The ``batch`` column, spelled as a literal or as the schema's ``BATCH`` constant."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and sub.value == "batch":
            return True
        if (
            isinstance(sub, ast.Name | ast.Attribute)
            and (getattr(sub, "id", None) or getattr(sub, "attr", "")) == "BATCH"
        ):
            return True
    return False


def test_only_the_read_model_orders_or_deduplicates_by_delivery() -> None:
    found = []
    for rel, tree in _trees():
        if rel == READ_MODEL or rel in BATCH_ORDER_ALLOWED:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ORDERING_CALLS:
                args = [*node.args, *(k.value for k in node.keywords)]
                if any(_names_batch(a) for a in args):
                    found.append(f"{rel}:{node.lineno} {node.func.attr}(... batch ...)")
    assert not found, "a second latest-delivery rule (use pipelines.load.snapshot):\n" + "\n".join(found)


def test_compute_publish_and_export_read_through_the_read_model() -> None:
    forbidden_modules = ("sqlalchemy", "pipelines.load.schema", "pipelines.load.engine", "pipelines.load.frames")
    forbidden_names = {"read_deliveries", "lookup_records", "read_batches", "SOURCE_TABLES"}
    found = []
    for rel, tree in _trees():
        if not rel.startswith(READERS):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [
                    f"{rel}:{node.lineno} import {a.name}" for a in node.names if a.name.startswith(forbidden_modules)
                ]
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith(forbidden_modules):
                    found.append(f"{rel}:{node.lineno} from {node.module} import ...")
                found += [f"{rel}:{node.lineno} {a.name}" for a in node.names if a.name in forbidden_names]
            elif isinstance(node, ast.Attribute) and node.attr in forbidden_names:
                found.append(f"{rel}:{node.lineno} .{node.attr}")
    assert not found, "source tables read around the read model:\n" + "\n".join(found)


def test_latest_per_key_is_defined_once() -> None:
    defined = [
        f"{rel}:{node.lineno}"
        for rel, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and re.search(r"latest|dedup|delivery_wins", node.name)
        and rel != READ_MODEL
    ]  # fmt: skip
    assert not defined, f"latest-delivery helpers outside {READ_MODEL}: {defined}"


#: Text that only month parsing or formatting needs.
MONTH_TEXT = (
    re.compile(r"\\d\{4\}-(\\d\{2\}|\(0\[1-9\])"),  # a YYYY-MM regex
    re.compile(r"^%Y-%m$"),  # a YYYY-MM format
)


def test_only_the_month_type_parses_months() -> None:
    found = []
    for rel, tree in _trees():
        if rel == PERIODS:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if any(p.search(node.value) for p in MONTH_TEXT):
                    found.append(f"{rel}:{node.lineno} {node.value!r}")
            elif isinstance(node, ast.FunctionDef) and re.fullmatch(
                r"_?(parse|check|validate)_(period|month)s?|_?period_bounds|_?month_bounds", node.name
            ):
                found.append(f"{rel}:{node.lineno} def {node.name}")
            elif isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(call, ast.Name) and call.id == "PeriodError":
                    found.append(f"{rel}:{node.lineno} raise PeriodError")
    assert not found, "month parsing outside pipelines.periods:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "pattern",
    [
        r'"initial_population":\s*"initial-population"',  # population code tables
        r'"denominator_exclusion":\s*"Denominator exclusions?"',  # population label tables
        r'"patient_safety":\s*"Patient safety"',  # domain label tables
        r"madie\.cms\.gov/Measure/CMS\d+",  # measure canonicals outside the YAML that declares them
    ],
)
def test_vocabulary_lives_on_its_enum_or_in_its_indicator_file(pattern: str) -> None:
    found = [f"{_rel(path)}" for path in SOURCES if re.search(pattern, path.read_text(encoding="utf-8"))]
    assert not found, f"{pattern} found in {found}"
