"""Indicator definitions (indicators/*.yaml) -> population membership per subject -> scores.

Public API used by the stage glue::

    load_indicators(indicators_dir, valueset_dirs=()) -> list[Indicator]
    load_valuesets(dirs) -> ValueSetIndex
    evaluate(indicator, data, period, valuesets) -> INDICATOR_SUBJECTS frame
    aggregate(indicator, subjects, period) -> INDICATOR_RESULTS frame
    subjects_of(indicators, data, period, valuesets) -> INDICATOR_SUBJECTS of one shard
    results_of(indicators, subjects, period) -> INDICATOR_RESULTS of the combined shards
    compute_period(indicators, data, period, valuesets) -> (subjects, results), unsharded
"""

from __future__ import annotations

from pipelines.compute.engine import evaluate
from pipelines.compute.model import Indicator, Period, Population, Scoring
from pipelines.compute.registry import load_indicator_file, load_indicators, parse_indicator
from pipelines.compute.scoring import aggregate, compute_period, in_subject_order, results_of, subjects_of
from pipelines.compute.valuesets import ValueSet, ValueSetIndex, load_valuesets

__all__ = [
    "Indicator",
    "Period",
    "Population",
    "Scoring",
    "ValueSet",
    "ValueSetIndex",
    "aggregate",
    "compute_period",
    "in_subject_order",
    "results_of",
    "subjects_of",
    "evaluate",
    "load_indicator_file",
    "load_indicators",
    "load_valuesets",
    "parse_indicator",
]
