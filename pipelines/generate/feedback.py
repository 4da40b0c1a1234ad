"""Patient-experience survey returns and the complaints register, as CSV rows.

Survey answers come from one latent experience score per stay, so the recommend
question, the 0-10 rating and the five SERVQUAL items agree with each other the
way real returns do (and a driver analysis has a signal to find). Complaint
handling follows the NHS complaints standard shape: acknowledged within three
working days, resolved weeks later, still open if the window ends first.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from pipelines.generate.clock import DAY, HOUR, add_working_days, batch_index, iso, iso_date, weekday
from pipelines.generate.ids import new_id, rint
from pipelines.generate.model import Facility, Ward
from pipelines.tables import PROVENANCE, TABLES

_PROV = {p for p, _ in PROVENANCE}
SURVEY_COLUMNS: list[str] = [c for c in TABLES["survey_responses"].column_names if c not in _PROV]
COMPLAINT_COLUMNS: list[str] = [c for c in TABLES["complaints"].column_names if c not in _PROV]

SURVEY_MODES = (("post", 0.35), ("web", 0.30), ("phone", 0.20), ("sms", 0.15))
CHANNELS = (("phone", 0.25), ("email", 0.30), ("letter", 0.10), ("web", 0.25), ("in_person", 0.10))
CATEGORIES = (
    ("clinical_care", 0.22),
    ("communication", 0.22),
    ("waiting_times", 0.15),
    ("staff_attitude", 0.12),
    ("environment", 0.07),
    ("discharge", 0.10),
    ("medication", 0.07),
    ("other", 0.05),
)
SEVERITIES = (("low", 0.55), ("moderate", 0.35), ("high", 0.10))
OUTCOMES = (("upheld", 0.30), ("partly_upheld", 0.30), ("not_upheld", 0.33), ("withdrawn", 0.07))

_POSITIVE = (
    "Staff were kind and explained everything.",
    "Excellent care from the nurses on the ward.",
    "Very clean ward and good food.",
    "Thank you to Sam and the night team.",
    "Felt safe and well looked after.",
    "Doctors took time to listen.",
)
_NEUTRAL = (
    "Care was fine but the wait for discharge was long.",
    "Good treatment, noisy at night.",
    "Some confusion about my medication at home time.",
    "OK overall.",
)
_NEGATIVE = (
    "Call bell was not answered for a long time.",
    "Nobody told me what was happening.",
    "Ward was short staffed and it showed.",
    "I fell and felt nobody was watching.",
    "Discharge letter was wrong and late.",
)
#: What complainants write, by category: a few sentences each, some naming staff or giving
#: a phone number (07700 900xxx is Ofcom's range reserved for drama), so the comment
#: model and the report's masking have realistic text to work on.
_COMPLAINT_TEXTS: dict[str, tuple[str, ...]] = {
    "clinical_care": (
        "My mother was left in pain for hours before anyone gave her pain relief.",
        "The doctor missed the infection and my father was sent home too early.",
        "Dr Patel did not examine my wound properly and it got worse.",
    ),
    "communication": (
        "Nobody explained the results of the scan and we were told different things by each nurse.",
        "I rang the ward six times and no one called me back. Please call me on 07700 900461.",
        "We were not told that my husband had been moved to another ward.",
    ),
    "waiting_times": (
        "We waited nine hours in the corridor before a bed was found.",
        "The appointment was cancelled three times and the wait is now months.",
        "Discharge took all day because we were waiting for medicines from the pharmacy.",
    ),
    "staff_attitude": (
        "The nurse on the night shift was rude and dismissive when I asked for help.",
        "Staff nurse Kelly spoke to my daughter in a way that upset her badly.",
        "I felt ignored and treated as a nuisance by the staff.",
    ),
    "environment": (
        "The toilets were dirty and the ward was noisy all night.",
        "The bay was too cold and the call bell did not work.",
    ),
    "discharge": (
        "My father was discharged at midnight with no transport and no care package.",
        "The discharge letter had the wrong medicines on it and the GP was not told.",
    ),
    "medication": (
        "I was given the wrong dose of my insulin twice.",
        "My regular medication was not given for two days after admission.",
    ),
    "other": (
        "Car parking charges are too high for relatives visiting every day.",
        "My belongings were lost when I was moved between wards.",
    ),
}


def complaint_text(complaint_id: str, category: str) -> str:
    """The complaint's description, chosen by its id (no draw from the patient's random
    stream, so adding texts does not change any other generated value)."""
    pool = _COMPLAINT_TEXTS.get(category, _COMPLAINT_TEXTS["other"])
    return pool[int(hashlib.sha256(complaint_id.encode()).hexdigest()[:8], 16) % len(pool)]


#: Wards where patients report a worse experience (the same wards that fall more).
_WORSE_WARDS = {"loc-northfield-ward-holly": -0.3, "loc-riverside-ward-tyne": -0.4}


def complainant_key(patient_id: str) -> str:
    """The register's pseudonymous key for a complainant (here the patient): stable, so a
    patient who complains again is a repeat complainant, and not the patient id itself."""
    return "cpl-" + hashlib.sha256(f"complainant:{patient_id}".encode()).hexdigest()[:16]


def weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    u = rng.random()
    acc = 0.0
    for value, w in options:
        acc += w
        if u < acc:
            return value
    return options[-1][0]


def _clamp(x: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(round(x))))


def survey_row(
    rng: random.Random,
    encounter_id: str,
    facility: Facility,
    ward: Ward,
    discharge: int,
    harmed: bool,
    bounds: list[int],
) -> tuple[int, list[Any]] | None:
    """One returned survey, or None when it would be completed after the window."""
    completed = discharge + (3 + int(rng.triangular(0, 38, 6))) * DAY
    batch = batch_index(bounds, completed)
    if batch < 0:
        return None
    s = rng.gauss(0.0, 1.0) + facility.satisfaction + _WORSE_WARDS.get(ward.id, 0.0) - (0.6 if harmed else 0.0)
    recommend = 4 if s > -0.65 else 3 if s > -1.35 else 2 if s > -1.9 else 1
    rating = _clamp(8.1 + 1.5 * s + rng.gauss(0.0, 0.8), 0, 10)
    items = [_clamp(4.0 + 0.8 * s + rng.gauss(0.0, 0.6), 1, 5) for _ in range(5)]
    comment: str | None = None
    if rng.random() < 0.55:
        pool = _POSITIVE if s > 0.0 else _NEUTRAL if s > -1.0 else _NEGATIVE
        comment = pool[rint(rng, len(pool))]
    response_id = new_id(rng)
    row: list[Any] = [
        response_id,
        encounter_id,
        facility.id,
        ward.id,
        ward.service,
        weighted(rng, SURVEY_MODES),
        iso_date(completed),
        recommend,
        rating,
        *items,
        *expectations(response_id),
        comment,
    ]
    return batch, row


def expectations(response_id: str) -> list[int | None]:
    """The SERVQUAL expectation items (what an excellent hospital would do, 1..5): high,
    as expectations are, and left blank by about one respondent in six (the expectation
    half of a SERVQUAL form is the one people skip). Drawn from the response's own
    stream, so the rest of the generated system does not change with them."""
    rng = random.Random(response_id)
    if rng.random() < 0.16:
        return [None] * 5
    base = 4.4 + rng.gauss(0.0, 0.35)
    return [_clamp(base + rng.gauss(0.0, 0.45), 1, 5) for _ in range(5)]


def complaint_deliveries(
    rng: random.Random,
    facility: Facility,
    ward: Ward,
    encounter_end: int,
    window_end: int,
    bounds: list[int],
    complainant_id: str,
) -> list[tuple[int, list[Any]]]:
    """One complaint about an encounter, as each monthly extract of the complaints register
    shows it: in the batch of the month it was received, as the register stood at that
    month's end, and again in every later batch where it changed (acknowledged, resolved).
    A register extract knows nothing of the future, so a complaint received on the last
    working day of a month arrives unacknowledged, and its acknowledgement comes with the
    next month's batch (latest delivery wins)."""
    day = encounter_end - encounter_end % DAY + int(rng.triangular(0, 45, 3)) * DAY
    while weekday(day) >= 5 and rng.random() < 0.8:  # most complaints arrive on working days
        day += DAY
    received = day + 8 * HOUR + rint(rng, 10 * HOUR)
    first = batch_index(bounds, received)
    if first < 0:
        return []
    severity = weighted(rng, SEVERITIES)
    if rng.random() < facility.ack_slow:
        ack = add_working_days(received, rng.randint(4, 12))
    else:
        ack = add_working_days(received, rng.randint(1, 3))
    ack = ack - ack % DAY + 9 * HOUR + rint(rng, 8 * HOUR)
    lo, hi = facility.resolve_days
    stretch = 1.3 if severity == "high" else 1.0
    resolved = ack + int(rng.uniform(lo, hi) * stretch * DAY)
    outcome = weighted(rng, OUTCOMES) if resolved <= window_end else None
    complaint_id = new_id(rng)
    channel, category = weighted(rng, CHANNELS), weighted(rng, CATEGORIES)
    out: list[tuple[int, list[Any]]] = []
    shown: tuple[bool, bool] | None = None
    for batch in range(first, len(bounds) - 1):
        as_of = bounds[batch + 1]  # the end of the batch's month
        state = (ack < as_of, resolved < as_of)
        if state == shown:
            continue
        shown = state
        acked, done = state
        status = "resolved" if done else "acknowledged" if acked else "open"
        row: list[Any] = [
            complaint_id,
            facility.id,
            ward.id,
            ward.service,
            channel,
            category,
            severity,
            iso(received),
            iso(ack) if acked else None,
            iso(resolved) if done else None,
            outcome if done else None,
            status,
            complaint_text(complaint_id, category),
            complainant_id,
        ]
        out.append((batch, row))
        if done:
            break
    return out
