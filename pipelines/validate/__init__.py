"""Validation room: GX 1.x suites (``expectations/*.json``) over the conformed tables.

``validate_tables`` splits each table into valid rows and quarantine rows (one per
record, all reasons listed) and reports one check row per table x expectation;
``reconcile`` proves rows read = accepted + quarantined.
"""

from __future__ import annotations

from pipelines.validate.reconcile import reconcile
from pipelines.validate.run import ValidationResult, validate_tables
from pipelines.validate.suites import load_suites

__all__ = ["ValidationResult", "load_suites", "reconcile", "validate_tables"]
