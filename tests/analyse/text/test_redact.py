from __future__ import annotations

import time

import pandas as pd
import pytest

from pipelines.analyse.text.redact import mask_identifiers, mask_series, nhs_number_valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nurse Jane was lovely", "Nurse [name] was lovely"),
        ("Dr Okafor explained it all", "Dr [name] explained it all"),
        ("Mrs. Patel on reception", "Mrs. [name] on reception"),
        ("seen by Dr. J. Hartley today", "seen by Dr. [name] today"),
        ("Sister Brennan and matron Clough", "Sister [name] and matron [name]"),
        ("Thanks to Sarah Jenkins and Tom", "Thanks to [name] and [name]"),
        ("Mark was brilliant", "[name] was brilliant"),
        ("Will definitely recommend, thanks Will", "Will definitely recommend, thanks [name]"),
        ("Hope to come back in May", "Hope to come back in May"),
        ("the nurse came quickly", "the nurse came quickly"),
        ("Nurse Practitioner was great", "Nurse Practitioner was great"),
        ("thank you nurse. Excellent care", "thank you nurse. Excellent care"),
        ("the doctor. However it was late", "the doctor. However it was late"),
        ("Jane's care was great", "[name]'s care was great"),
        ("Consultant Radiographer Hughes", "Consultant Radiographer Hughes"),
    ],
)
def test_names(text: str, expected: str) -> None:
    assert mask_identifiers(text) == expected


@pytest.mark.parametrize(
    "number",
    [
        "07700 900123",
        "07700900123",
        "07700-900-123",
        "+44 7700 900123",
        "+44 (0)20 7946 0958",
        "(0191) 498 0000",
        "020 7946 0958",
        "0800 123 4567",
        "0800 123456",
        "(555) 123-4567",
        "555.123.4567",
        "+1 555 123 4567",
        "1-800-555-0199",
    ],
)
def test_phone_numbers(number: str) -> None:
    assert mask_identifiers(f"please ring me on {number} after five") == "please ring me on [phone] after five"


def test_service_numbers_and_small_numbers_stay() -> None:
    text = "I rang 111 then 999, waited 45 minutes for bed 12 on ward 3 in 2021"
    assert mask_identifiers(text) == text


def test_nhs_numbers_use_the_check_digit() -> None:
    assert nhs_number_valid("9434765919")
    assert not nhs_number_valid("9434765918")
    assert mask_identifiers("my NHS number is 943 476 5919") == "my NHS number is [id]"
    assert mask_identifiers("NHS no 943-476-5919.") == "NHS no [id]."
    assert mask_identifiers("ref 9434765919") == "ref [id]"
    assert mask_identifiers("call 943 476 5918") == "call [phone]"  # 3-3-4 but not a valid NHS number


def test_emails_postcodes_and_dates() -> None:
    assert mask_identifiers("write to jo.bloggs+ward@nhs.example.uk now") == "write to [email] now"
    assert mask_identifiers("I live at NE1 4LP, near SW1A 1AA and m1 1ae") == (
        "I live at [postcode], near [postcode] and [postcode]"
    )
    assert mask_identifiers("DOB 12/03/1956, seen 3-4-21") == "DOB [date], seen [date]"
    assert mask_identifiers("born 12th March 1956 or March 12, 1956 or 1956-03-12") == (
        "born [date] or [date] or [date]"
    )
    assert mask_identifiers("seen on Monday in March") == "seen on Monday in March"


def test_one_comment_with_everything() -> None:
    text = "Dr Ahmed rang me on 07700 900123 about NHS 943 476 5919; my postcode is LS1 4AP, email a.b@c.org"
    assert mask_identifiers(text) == (
        "Dr [name] rang me on [phone] about NHS [id]; my postcode is [postcode], email [email]"
    )


def test_blanks_pass_through_and_series_keep_missing_values() -> None:
    assert mask_identifiers("") == ""
    assert mask_identifiers(None) is None  # type: ignore[arg-type]
    out = mask_series(pd.Series(["Nurse Jane", None, float("nan"), ""], dtype=object))
    assert out.iloc[0] == "Nurse [name]"
    assert pd.isna(out.iloc[1]) and pd.isna(out.iloc[2]) and out.iloc[3] == ""
    assert list(mask_series(["Thanks Emma"])) == ["Thanks [name]"]


def test_thousands_of_comments_are_cheap() -> None:
    texts = [f"Nurse Jane on ward {i % 20} was lovely, call 07700 900{i % 1000:03d} if needed" for i in range(5000)]
    started = time.perf_counter()
    masked = [mask_identifiers(t) for t in texts]
    assert time.perf_counter() - started < 10  # generous: a guard against runaway backtracking only
    assert all("[name]" in m and "[phone]" in m for m in masked)
