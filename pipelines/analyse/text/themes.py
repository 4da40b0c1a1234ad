"""The comment-theme taxonomy and its mapping from the NHS FFT qualitative framework.

Our themes are the ten SERVQUAL dimensions (Parasuraman, Zeithaml & Berry 1985: reliability,
responsiveness, competence, access, courtesy, communication, credibility, security, understanding
the patient, tangibles) plus complaint-handling categories (waiting, staff attitude, environment,
medication, discharge; communication is both). The labelled data we learn from uses another scheme,
the 50 label columns of the pxtextmining FFT framework (v6, 2023-08-31), so each theme is defined
as the union of FFT labels that are evidence for it. The mapping is data (``themes.yaml``) so that a
hospital can change it, and retrain.

Why each theme takes the labels it does:

* reliability - "Organisation & efficiency", "Referals & continuity of care", "Care plans",
  "Patient records", "Staff continuity": SERVQUAL reliability is doing what was promised,
  dependably and accurately; these labels are about the service holding together (lost referrals,
  plans not followed, wrong records, a different nurse every visit).
* responsiveness - "Staff responsiveness", "Timeliness of care", "Number & deployment of staff",
  "Out of hours support": willingness to help and *prompt* service; short staffing is the usual
  reason given for slow help.
* competence - "Competence & training", "Diagnosis & triage": the skill to do the job; triage and
  diagnosis are the clinical-judgement part patients comment on.
* access - "Contacting services", "Appointment arrangements", "Appointment method",
  "Service location", "Transport to/ from services", "Parking", "Existence of services",
  "Choice of services", "Out of hours support", "Admission", "Psychological therapy arrangements":
  SERVQUAL access is approachability and ease of contact - getting through, getting an
  appointment, getting there. Parking also counts as a tangible (a physical facility).
* courtesy - "Staff manner & personal attributes": politeness, respect and friendliness is exactly
  what that label codes.
* communication - the six communication labels, including "Interaction with family/ carers"
  (keeping relatives informed is most of that label).
* credibility - "Being kept informed, clarity & consistency of information", "Learning
  organisation": trust and honesty show in comments as consistent (or contradictory) information
  and as whether the service learns from feedback. Few comments carry it, so its figures are noisy.
* security - "Feeling safe", "Safeguarding concerns?", "Mental Health Act": freedom from danger,
  risk or doubt; detention and leave under the Act are the rights-and-restrictions side of it.
* understanding the patient - "Staff listening, understanding & involving patients",
  "Equality, Diversity & Inclusion", "Interaction with family/ carers": knowing the individual's
  needs (including reasonable adjustments) and involving them and their family.
* tangibles - cleanliness, medical equipment, environment & facilities, food & drink, sensory
  experience (noise, temperature), electronic entertainment, parking: the physical side of care.
* waiting - "Timeliness of care" only: the label that is about delays; appointment and contact
  labels are about arranging care, not its wait, and would dilute the theme.
* staff attitude - "Staff manner & personal attributes" and "Staff responsiveness": complaint
  handlers file "did not come when I rang the bell" under attitude as often as under delay, so
  this category is courtesy plus attentiveness (which is why it is not a copy of courtesy).
* environment - as tangibles, without equipment and parking, with "Activities & access to fresh
  air": the ward as a place to be, the way complaint categories use the word.
* medication - "Supplying & understanding medication", "Pain management": pxtextmining's own major
  category "Medication & pain" groups them the same way.
* discharge - "Discharge".

Left unmapped (in ``themes.yaml`` with the reason): the two sentiment labels ("Positive experience &
gratitude", "Negative experience & dissatisfaction" - the sentiment column carries that), the
placeholders "Not assigned" and "Labelling not possible", "Funding & use of financial resources"
(NHS resources in general), "Impact of treatment/ care" (the clinical outcome, not the service
process) and "Patient appearance & grooming" (too rare, no dimension fits).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

#: The taxonomy shipped with CareQI.
DEFAULT_TAXONOMY = Path(__file__).with_name("themes.yaml")

#: The one-hot label columns of the FFT file (v6 framework, 2023-08-31), in file order: 50 of them
#: (the shared data's SOURCE.md says 49 topic labels; the file has 50 columns, "Not assigned" included).
FFT_LABELS: tuple[str, ...] = (
    "Not assigned",
    "Organisation & efficiency",
    "Funding & use of financial resources",
    "Staff manner & personal attributes",
    "Number & deployment of staff",
    "Staff responsiveness",
    "Staff continuity",
    "Competence & training",
    "Unspecified communication",
    "Staff listening, understanding & involving patients",
    "Information directly from staff during care",
    "Information provision & guidance",
    "Being kept informed, clarity & consistency of information",
    "Contacting services",
    "Appointment arrangements",
    "Appointment method",
    "Timeliness of care",
    "Pain management",
    "Diagnosis & triage",
    "Referals & continuity of care",
    "Discharge",
    "Care plans",
    "Patient records",
    "Cleanliness, tidiness & infection control",
    "Provision of medical equipment",
    "Service location",
    "Transport to/ from services",
    "Parking",
    "Electronic entertainment",
    "Feeling safe",
    "Patient appearance & grooming",
    "Mental Health Act",
    "Equality, Diversity & Inclusion",
    "Admission",
    "Safeguarding concerns?",
    "Labelling not possible",
    "Environment & Facilities",
    "Supplying & understanding medication",
    "Activities & access to fresh air",
    "Food & drink provision & facilities",
    "Sensory experience",
    "Impact of treatment/ care",
    "Psychological therapy arrangements",
    "Existence of services",
    "Choice of services",
    "Out of hours support (community services)",
    "Learning organisation",
    "Interaction with family/ carers",
    "Negative experience & dissatisfaction",
    "Positive experience & gratitude",
)

KINDS = ("servqual", "category")


@dataclass(frozen=True)
class Theme:
    """One theme: ``id`` is what the ``themes`` column holds, ``label`` what a report shows."""

    id: str
    label: str
    kind: str
    description: str
    fft_labels: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    """The themes in file order, plus the FFT labels deliberately left out (label -> reason)."""

    themes: tuple[Theme, ...]
    unmapped: Mapping[str, str]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.themes)

    def label_of(self, theme_id: str) -> str:
        """Display label of a theme id (``KeyError`` for an unknown id)."""
        for theme in self.themes:
            if theme.id == theme_id:
                return theme.label
        raise KeyError(theme_id)

    def fingerprint(self) -> str:
        """sha256 of the mapping (ids and their FFT labels), so a model can tell it was trained on it.

        Labels, descriptions and the unmapped reasons are left out: rewording them changes no
        training target, so it must not invalidate the model.
        """
        canonical = json.dumps([[t.id, sorted(t.fft_labels)] for t in self.themes], separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def matrix(self, fft_labels: tuple[str, ...] = FFT_LABELS) -> np.ndarray:
        """0/1 matrix ``[len(fft_labels), len(themes)]``: label i is evidence for theme j."""
        index = {name: i for i, name in enumerate(fft_labels)}
        out = np.zeros((len(fft_labels), len(self.themes)), dtype=np.int8)
        for j, theme in enumerate(self.themes):
            for name in theme.fft_labels:
                if name in index:
                    out[index[name], j] = 1
        return out

    def themes_from_labels(self, labels: pd.DataFrame) -> pd.DataFrame:
        """Theme truth from FFT one-hot label columns: a row has a theme if any of its labels maps to it.

        ``labels`` holds the FFT label columns (1 / blank as in the file, or booleans); missing
        columns count as never labelled. Returns a boolean frame with one column per theme id.
        """
        present = tuple(name for name in FFT_LABELS if name in labels.columns)
        values = labels.loc[:, list(present)].fillna(0).to_numpy(dtype=np.float64) > 0
        hits = values.astype(np.int32) @ self.matrix(present).astype(np.int32)
        return pd.DataFrame(hits > 0, index=labels.index, columns=list(self.ids))


def parse_taxonomy(document: Mapping[str, Any]) -> Taxonomy:
    """Build and check a taxonomy from the parsed YAML document.

    Raises ``ValueError`` for an unknown FFT label, a duplicate or non-snake_case id, or an FFT label
    that is neither mapped nor listed as unmapped: a typo in the file must not silently drop a label.
    """
    known = set(FFT_LABELS)
    themes: list[Theme] = []
    seen: set[str] = set()
    for raw in document.get("themes") or []:
        theme_id = str(raw["id"])
        if not theme_id.replace("_", "").isalnum() or theme_id != theme_id.lower() or theme_id in seen:
            raise ValueError(f"theme id {theme_id!r} must be unique snake_case")
        kind = str(raw.get("kind", "category"))
        if kind not in KINDS:
            raise ValueError(f"theme {theme_id}: kind must be one of {KINDS}, got {kind!r}")
        labels = tuple(str(x) for x in raw.get("fft_labels") or [])
        unknown = sorted(set(labels) - known)
        if unknown:
            raise ValueError(f"theme {theme_id}: unknown FFT labels {unknown}")
        seen.add(theme_id)
        themes.append(Theme(theme_id, str(raw.get("label", theme_id)), kind, str(raw.get("description", "")), labels))
    unmapped = {str(row["label"]): str(row.get("why", "")) for row in document.get("unmapped") or []}
    unknown = sorted(set(unmapped) - known)
    if unknown:
        raise ValueError(f"unmapped lists unknown FFT labels {unknown}")
    mapped = {name for t in themes for name in t.fft_labels}
    both = sorted(mapped & set(unmapped))
    if both:
        raise ValueError(f"FFT labels both mapped and unmapped: {both}")
    missing = [name for name in FFT_LABELS if name not in mapped and name not in unmapped]
    if missing:
        raise ValueError(f"FFT labels neither mapped to a theme nor listed as unmapped: {missing}")
    if not themes:
        raise ValueError("the taxonomy has no themes")
    return Taxonomy(tuple(themes), unmapped)


@cache
def _load(path: Path) -> Taxonomy:
    with path.open(encoding="utf-8") as handle:
        return parse_taxonomy(yaml.safe_load(handle) or {})


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """The taxonomy in ``path`` (default: the shipped ``themes.yaml``), parsed once per process."""
    return _load((path or DEFAULT_TAXONOMY).resolve())
