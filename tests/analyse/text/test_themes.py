from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipelines.analyse.text.themes import DEFAULT_TAXONOMY, FFT_LABELS, load_taxonomy, parse_taxonomy

SERVQUAL = (
    "reliability",
    "responsiveness",
    "competence",
    "access",
    "courtesy",
    "communication",
    "credibility",
    "security",
    "understanding_the_patient",
    "tangibles",
)
CATEGORIES = ("communication", "waiting", "staff_attitude", "environment", "medication", "discharge")


def _document() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_TAXONOMY.read_text(encoding="utf-8"))


def test_shipped_taxonomy_has_the_servqual_dimensions_and_the_issue_categories() -> None:
    taxonomy = load_taxonomy()
    assert set(SERVQUAL) | set(CATEGORIES) == set(taxonomy.ids)
    assert {t.id for t in taxonomy.themes if t.kind == "servqual"} == set(SERVQUAL)
    assert taxonomy.label_of("understanding_the_patient") == "Understanding the patient"


def test_every_fft_label_is_mapped_or_deliberately_unmapped() -> None:
    taxonomy = load_taxonomy()
    mapped = {name for t in taxonomy.themes for name in t.fft_labels}
    assert len(FFT_LABELS) == 50
    assert mapped | set(taxonomy.unmapped) == set(FFT_LABELS)
    assert not mapped & set(taxonomy.unmapped)
    assert all(taxonomy.unmapped.values()), "every unmapped label says why"


def test_a_label_can_feed_several_themes_and_rows_become_theme_flags() -> None:
    taxonomy = load_taxonomy()
    labels = pd.DataFrame(
        {
            "Staff listening, understanding & involving patients": [1.0, None, None],
            "Timeliness of care": [None, 1.0, None],
            "Positive experience & gratitude": [None, None, 1.0],
        }
    )
    flags = taxonomy.themes_from_labels(labels)
    assert list(flags.columns) == list(taxonomy.ids)
    assert set(flags.columns[flags.iloc[0]]) == {"communication", "understanding_the_patient"}
    assert set(flags.columns[flags.iloc[1]]) == {"responsiveness", "waiting"}
    assert not flags.iloc[2].any(), "sentiment labels are not themes"


def test_fingerprint_follows_the_mapping_not_the_wording() -> None:
    document = _document()
    base = parse_taxonomy(document).fingerprint()
    document["themes"][0]["label"] = "Dependability"
    document["themes"][0]["description"] = "reworded"
    assert parse_taxonomy(document).fingerprint() == base
    document["themes"][0]["fft_labels"] = document["themes"][0]["fft_labels"][:-1]
    document["unmapped"].append({"label": _document()["themes"][0]["fft_labels"][-1], "why": "test"})
    assert parse_taxonomy(document).fingerprint() != base


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["themes"][0]["fft_labels"].append("Staff manners"), "unknown FFT labels"),
        (lambda d: d["unmapped"].pop(), "neither mapped"),
        (lambda d: d["themes"].append(dict(d["themes"][0])), "unique snake_case"),
        (lambda d: d["themes"][0].update(id="Not Snake"), "unique snake_case"),
        (lambda d: d["themes"][0].update(kind="other"), "kind must be"),
    ],
)
def test_a_broken_mapping_file_is_refused(change: Callable[[dict[str, Any]], object], message: str) -> None:
    document = _document()
    change(document)
    with pytest.raises(ValueError, match=message):
        parse_taxonomy(document)


def test_a_hospital_can_load_its_own_mapping_file(tmp_path: Path) -> None:
    document = _document()
    document["themes"] = [t for t in document["themes"] if t["id"] != "discharge"]
    document["unmapped"].append({"label": "Discharge", "why": "we do not report it"})
    path = tmp_path / "themes.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert "discharge" not in load_taxonomy(path).ids
