"""Expectation suites: ``expectations/<table>.json`` -> Great Expectations 1.x suites.

The suite files are the reviewable statement of what "acceptable data" means for each
table, so a malformed file must stop the run with the file's name rather than quietly
validate less. Besides GX's own parsing, three project rules are enforced here because
the quarantine needs them:

* every expectation is row-level (column map, column pair or multicolumn map): a
  failure must name the rows to quarantine, and table-level expectations cannot;
* every expectation's ``meta`` carries a plain-language ``description`` and a Kahn
  data-quality ``category`` (conformance, completeness, plausibility, uniqueness;
  Kahn et al., eGEMs 2016) -- the description becomes the quarantine reason;
* ``meta.keep == "first"`` is allowed only on ``expect_column_values_to_be_unique`` and
  ``expect_compound_columns_to_be_unique`` (a (type, id) key): GX flags every copy of a
  duplicated id, the runner keeps the first copy.

Cross-row checks (references that must resolve, dates after another record's,
durations) live in the same file under ``meta.relations``
(:mod:`pipelines.validate.relations`). Date bounds relative to the batch are GX
expectation parameters: ``{"$PARAMETER": "latest_plausible"}`` is the end of the batch
month plus ``CAREQI_FUTURE_DAYS`` (:data:`PARAMETERS`).

Files use the GX 1.x serialisation (``name``, ``expectations[].type/kwargs/meta``);
the 0.x keys (``expectation_suite_name``, ``expectation_type``) are rejected with a hint.

GX is imported lazily (it takes several seconds) so that importing this package, e.g.
while Airflow parses DAG files, stays cheap.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import ConfigError
from pipelines.tables import TABLES, TS, TableSpec
from pipelines.validate.relations import CATEGORIES, Relation, parse_relations

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations.expectation import Expectation

# GX logs every metric computation and configuration hiccup; keep only warnings and
# errors so pipeline logs (and Airflow task logs) stay readable.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

#: Expectation parameters a suite may use (``{"$PARAMETER": name}``), set per batch by
#: the validate stage: what each one means.
PARAMETERS = {
    "latest_plausible": "the latest plausible timestamp for the batch: its month's end plus CAREQI_FUTURE_DAYS",
}
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
_SUITE_KEYS = {"name", "id", "expectations", "meta", "notes", "suite_parameters"}
_EXPECTATION_KEYS = {"type", "kwargs", "meta", "id", "severity", "notes", "rendered_content"}
_OLD_KEYS = {"expectation_suite_name": "name", "expectation_type": "type"}


def load_suites(expectations_dir: Path) -> dict[str, gx.ExpectationSuite]:
    """Read every ``<table>.json`` in ``expectations_dir``; table name -> suite.

    Raises ConfigError naming the file for anything malformed: unreadable JSON, a
    0.x-shaped file, a file for a table the contract does not know, an unknown
    expectation or bad kwargs, a column the table does not have, missing meta.
    """
    folder = Path(expectations_dir)
    if not folder.is_dir():
        raise ConfigError(f"expectations folder {folder} does not exist (set CAREQI_EXPECTATIONS_DIR)")
    return {path.stem: _load_suite(path) for path in sorted(folder.glob("*.json"))}


def check_name(expectation: Expectation) -> str:
    """The check's identity in quarantine reasons and the checks table: type(columns),
    plus ``where <condition>`` for a conditional expectation (one per code and unit)."""
    name = f"{expectation.expectation_type}({', '.join(expectation_columns(expectation))})"
    condition = row_condition(expectation)
    return f"{name} where {condition}" if condition else name


def row_condition(expectation: Expectation) -> str | None:
    """A readable form of a conditional expectation's ``row_condition`` (GX 1.x Condition
    objects, serialised as ``{"type": "comparison", "column": {"name": ...}, ...}`` or
    ``{"type": "and", "conditions": [...]}``), else None."""
    condition = expectation.configuration.kwargs.get("row_condition")
    return _condition_text(condition) if condition else None


def condition_columns(condition: Any) -> set[str]:
    """Columns a serialised GX Condition reads."""
    if hasattr(condition, "model_dump"):
        condition = condition.model_dump()
    if isinstance(condition, dict):
        if condition.get("type") in ("and", "or"):
            return set().union(*(condition_columns(c) for c in condition.get("conditions") or []))
        column = condition.get("column")
        if isinstance(column, dict) and isinstance(column.get("name"), str):
            return {column["name"]}
    return set()


def _condition_text(condition: Any) -> str:
    if hasattr(condition, "model_dump"):
        condition = condition.model_dump()
    if isinstance(condition, dict):
        kind = condition.get("type")
        if kind in ("and", "or"):
            return f" {kind} ".join(_condition_text(c) for c in condition.get("conditions") or [])
        column = (condition.get("column") or {}).get("name")
        return f"{column} {condition.get('operator')} {condition.get('parameter')!r}"
    return str(condition)


def expectation_columns(expectation: Expectation) -> list[str]:
    """Columns an expectation reads, in the order its kwargs name them."""
    kwargs = expectation.configuration.kwargs
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list", []))


def _load_suite(path: Path) -> gx.ExpectationSuite:
    import great_expectations as gx

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"expectation suite {path.name}: not readable JSON ({exc})") from exc
    spec = _check_shape(path.name, data)
    expectations = [build_expectation(item, f"expectation suite {path.name}") for item in data["expectations"]]
    suite = gx.ExpectationSuite(name=data["name"], expectations=expectations, meta=data.get("meta"))
    if len(suite.expectations) != len(expectations):  # GX drops duplicates silently
        raise ConfigError(f"expectation suite {path.name}: the same expectation is listed twice")
    for expectation in suite.expectations:
        _check_expectation(path.name, spec, expectation)
    parse_relations((data.get("meta") or {}).get("relations"), spec, f"expectation suite {path.name}")
    return suite


def suite_relations(suite: gx.ExpectationSuite, table: str) -> list[Relation]:
    """The cross-row checks declared in a loaded suite's ``meta.relations``."""
    return parse_relations((suite.meta or {}).get("relations"), TABLES[table], f"expectation suite {table}.json")


def build_expectation(item: dict[str, Any], where: str) -> Expectation:
    """One expectation from its 1.x JSON form, failing loudly.

    Built one by one because ``gx.ExpectationSuite(expectations=[...dicts])`` logs
    and silently DROPS an expectation it cannot build -- a typo in a suite file
    would quietly validate less.
    """
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        configuration = ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"], meta=item["meta"])
        return configuration.to_domain_obj()
    except Exception as exc:  # GX raises pydantic, marshmallow and its own errors here
        text = str(exc).strip()
        first_line = " ".join(text.splitlines()[:3]) if text else type(exc).__name__
        raise ConfigError(f"{where}, {item.get('type')}: invalid expectation ({first_line})") from exc


def _check_shape(file_name: str, data: Any) -> TableSpec:
    """Structural checks GX does not make (or makes with unhelpful messages)."""
    where = f"expectation suite {file_name}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object with 'name' and 'expectations'")
    for old, new in _OLD_KEYS.items():
        if old in data:
            raise ConfigError(f"{where}: '{old}' is the GX 0.x format; GX 1.x calls it '{new}'")
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    table = Path(file_name).stem
    if table not in TABLES:
        raise ConfigError(f"{where}: no table named {table!r} in pipelines.tables")
    if data.get("name") != table:
        raise ConfigError(f"{where}: 'name' must be {table!r} (the file name), got {data.get('name')!r}")
    expectations = data.get("expectations")
    if not isinstance(expectations, list):
        raise ConfigError(f"{where}: 'expectations' must be a list")
    for i, item in enumerate(expectations):
        at = f"{where}, expectation #{i + 1}"
        if not isinstance(item, dict):
            raise ConfigError(f"{at}: expected an object with 'type', 'kwargs' and 'meta'")
        if "expectation_type" in item:
            raise ConfigError(f"{at}: 'expectation_type' is the GX 0.x format; GX 1.x calls it 'type'")
        missing = {"type", "kwargs", "meta"} - set(item)
        if missing:
            raise ConfigError(f"{at}: missing {sorted(missing)}")
        unknown = set(item) - _EXPECTATION_KEYS
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {sorted(unknown)}")
        if not isinstance(item["kwargs"], dict) or not isinstance(item["meta"], dict):
            raise ConfigError(f"{at}: 'kwargs' and 'meta' must be objects")
    return TABLES[table]


def _check_expectation(file_name: str, spec: TableSpec, expectation: Expectation) -> None:
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    name = check_name(expectation)
    at = f"expectation suite {file_name}, {name}"
    row_level = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    if not isinstance(expectation, row_level):
        raise ConfigError(f"{at}: only row-level expectations can quarantine rows; this one checks the table")
    unknown = [c for c in expectation_columns(expectation) if c not in spec.column_names]
    if unknown:
        raise ConfigError(f"{at}: table {spec.name} has no column(s) {unknown}")
    meta = expectation.meta or {}
    description = meta.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{at}: meta.description (plain-language statement) is required")
    if "; " in description:
        raise ConfigError(f"{at}: meta.description must not contain '; ' (it separates quarantine reasons)")
    if meta.get("category") not in CATEGORIES:
        raise ConfigError(f"{at}: meta.category must be one of {', '.join(CATEGORIES)}")
    keep = meta.get("keep")
    if keep is not None and (keep != "first" or expectation.expectation_type not in (UNIQUE, COMPOUND_UNIQUE)):
        raise ConfigError(f"{at}: meta.keep='first' is only supported on {UNIQUE} and {COMPOUND_UNIQUE}")
    _check_bounds(at, spec, expectation)
    if isinstance(expectation.configuration.kwargs.get("row_condition"), str):
        raise ConfigError(f"{at}: write row_condition as a GX Condition object, not a string (deprecated in GX 1.9)")
    unknown = [c for c in _row_condition_columns(expectation) if c not in spec.column_names]
    if unknown:
        raise ConfigError(f"{at}: row_condition names column(s) {unknown} that table {spec.name} does not have")
    if getattr(expectation, "mostly", 1) != 1:
        raise ConfigError(f"{at}: 'mostly' below 1 would accept rows that break the rule; row checks use 1.0")


def _row_condition_columns(expectation: Expectation) -> set[str]:
    return condition_columns(expectation.configuration.kwargs.get("row_condition"))


def _check_bounds(at: str, spec: TableSpec, expectation: Expectation) -> None:
    """GX turns "1900-01-01" into a ``date``, which pandas will not compare with a
    timestamp column; "1900-01-01T00:00:00" becomes a ``datetime``, which it will.
    Catch the mismatch here, with a fix, rather than as a failed run."""
    kwargs = expectation.configuration.kwargs
    if "min_value" not in kwargs and "max_value" not in kwargs:
        return
    dtype = spec.dtypes.get(kwargs.get("column", ""))
    for bound in ("min_value", "max_value"):
        value = kwargs.get(bound)
        if value is None or dtype is None:
            continue
        if isinstance(value, dict):
            name = value.get("$PARAMETER")
            if set(value) != {"$PARAMETER"} or name not in PARAMETERS:
                raise ConfigError(f"{at}: {bound} parameter must be one of {', '.join(PARAMETERS)}, got {value!r}")
            continue
        if dtype == TS and not isinstance(value, datetime):
            raise ConfigError(f"{at}: {bound} must be a timestamp such as '1900-01-01T00:00:00', got {value!r}")
        if dtype in ("Int64", "Float64") and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{at}: {bound} must be a number, got {value!r}")
