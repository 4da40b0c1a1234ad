from __future__ import annotations

import pandas as pd

from pipelines.tables import QUARANTINE, RECONCILIATION, TABLES, empty_frame
from pipelines.validate import reconcile, validate_tables
from tests.validate.helpers import SUITES_DIR, frame


def extract_quarantine(table: str, n: int) -> pd.DataFrame:
    """What extract writes for lines it could not parse."""
    return pd.DataFrame(
        {
            "table_name": [table] * n,
            "record_id": [pd.NA] * n,
            "stage": ["extract"] * n,
            "reasons": ["malformed JSON: Expecting value"] * n,
            "payload": ["{not json"] * n,
            "source_file": ["Patient.ndjson"] * n,
            "source_line": list(range(10, 10 + n)),
        }
    ).astype(QUARANTINE.dtypes)


def test_reconciliation_balances_with_extract_and_validate_quarantine() -> None:
    patients = frame(
        "patients",
        [
            {"patient_id": "p1", "gender": "female", "birth_date": "1950-02-03"},
            {"patient_id": "p2", "gender": "robot"},
            {"patient_id": "p1", "gender": "female"},
        ],
    )
    result = validate_tables({"patients": patients, "complaints": empty_frame(TABLES["complaints"])}, SUITES_DIR)
    quarantine = pd.concat([extract_quarantine("patients", 2), result.quarantine], ignore_index=True)

    rec = reconcile({"patients": 5, "complaints": 0}, result.valid, quarantine)

    assert list(rec.columns) == RECONCILIATION.column_names
    assert rec.dtypes.astype(str).tolist() == ["string", "Int64", "Int64", "Int64", "boolean"]
    got = rec.set_index("table_name")
    assert got.loc["patients"].tolist() == [5, 1, 4, True]
    assert got.loc["complaints"].tolist() == [0, 0, 0, True]


def test_lost_rows_and_unread_tables_show_as_unbalanced() -> None:
    valid = {"patients": frame("patients", [{"patient_id": "p1"}])}
    rec = reconcile({"patients": 3}, valid, extract_quarantine("encounters", 1)).set_index("table_name")
    assert rec.loc["patients"].tolist() == [3, 1, 0, False]
    assert rec.loc["encounters"].tolist() == [0, 0, 1, False]


def test_nothing_read_gives_an_empty_reconciliation() -> None:
    rec = reconcile({}, {}, empty_frame(QUARANTINE))
    assert rec.empty and list(rec.columns) == RECONCILIATION.column_names
