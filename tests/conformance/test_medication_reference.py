"""CMS108 gives the same populations whichever form ``medication[x]`` takes.

The MADiE test deck (../shared/data/ecqm-qicore-2025/CMS108FHIRVTEProphylaxis) names
every drug by ``medicationCodeableConcept``. FHIR equally allows a ``medicationReference``
to a Medication, contained (``#id``) or elsewhere in the Bundle (``Medication/id`` or the
entry's ``fullUrl``), and a sender may use either. Here each case's MedicationRequest and
MedicationAdministration resources are rewritten into those forms, the rewritten deck is
run through the same path as ``careqi conformance``, and every case must give exactly the
populations the original deck gives (so where the original matches the deck's expected
MeasureReport, the rewritten one does too). Nothing is hard-coded: the oracle is the
evaluation of the original form.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.config import load_settings
from pipelines.conformance import ConformanceRun, run_deck
from pipelines.extract import extract_paths

pytestmark = pytest.mark.shared_data

DECK = "CMS108FHIRVTEProphylaxis"
REWRITTEN_TYPES = ("MedicationRequest", "MedicationAdministration")
#: In-Bundle references alternate between the two spellings, and the Medication entry
#: goes before the referencing resource for one and after it for the other.
_BUNDLE_STYLES = ("relative-first", "full-url-last")


@pytest.fixture(scope="module")
def deck(shared_data: Path) -> Path:
    folder = shared_data / "ecqm-qicore-2025" / DECK
    if not folder.is_dir():
        pytest.skip(f"no {DECK} test deck at {folder}")
    return folder


@cache
def _run(folder: Path) -> ConformanceRun:
    return run_deck(folder, load_settings())


def _medication(concept: Any, mid: str) -> dict[str, Any]:
    return {"resourceType": "Medication", "id": mid, "code": copy.deepcopy(concept)}


def rewrite_bundle(bundle: dict[str, Any], form: str) -> tuple[dict[str, Any], Counter[str]]:
    """``bundle`` with each rewritten type's medicationCodeableConcept moved into a
    Medication: ``bundle`` (an entry of the same Bundle) or ``contained``."""
    out = copy.deepcopy(bundle)
    entries: list[dict[str, Any]] = out["entry"]
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    rewritten: Counter[str] = Counter()
    for entry in entries:
        resource = entry.get("resource") or {}
        rtype = resource.get("resourceType")
        if rtype not in REWRITTEN_TYPES or "medicationCodeableConcept" not in resource:
            continue
        concept = resource.pop("medicationCodeableConcept")
        if form == "contained":
            resource["contained"] = [*resource.get("contained", []), _medication(concept, "med")]
            resource["medicationReference"] = {"reference": "#med"}
        else:
            mid = f"med-{resource['id']}"
            style = _BUNDLE_STYLES[sum(rewritten.values()) % len(_BUNDLE_STYLES)]
            if style == "relative-first":
                full_url = f"https://madie.cms.gov/Medication/{mid}"
                resource["medicationReference"] = {"reference": f"Medication/{mid}"}
                before.append({"fullUrl": full_url, "resource": _medication(concept, mid)})
            else:
                full_url = f"urn:uuid:{mid}"
                resource["medicationReference"] = {"reference": full_url}
                after.append({"fullUrl": full_url, "resource": _medication(concept, mid)})
        rewritten[rtype] += 1
    out["entry"] = before + entries + after
    return out, rewritten


def write_rewritten_deck(deck: Path, out: Path, form: str) -> Counter[str]:
    """The deck at ``out``: measure and value sets shared (symlinks), every case Bundle
    rewritten. Returns how many resources of each type were rewritten."""
    out.mkdir(parents=True)
    for shared in ("measure", "valuesets"):
        (out / shared).symlink_to(deck / shared, target_is_directory=True)
    total: Counter[str] = Counter()
    for case in sorted((deck / "testcases").glob("*/*.json")):
        bundle, rewritten = rewrite_bundle(json.loads(case.read_text(encoding="utf-8")), form)
        total += rewritten
        target = out / "testcases" / case.relative_to(deck / "testcases")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(bundle), encoding="utf-8")
    return total


def _medication_codes(folder: Path) -> pd.DataFrame:
    """Each medication record's own code, and its medication codings, as extracted."""
    cases = sorted((folder / "testcases").glob("*/*.json"))
    result = extract_paths(cases, root=folder / "testcases")
    assert not [k for k in result.ignored if "medicationReference" in k], result.ignored
    meds = result.tables["medications"]
    own = meds[["source_file", "resource_type", "medication_id", "code", "code_system"]]
    c = result.tables["codings"]
    codings = c[(c["table_name"] == "medications") & (c["element"] == "medicationCodeableConcept")]
    per_record = (
        codings.sort_values("coding_id")
        .groupby(["source_file", "record_type", "record_id"])[["system", "code"]]
        .apply(lambda g: tuple(zip(g["system"], g["code"], strict=True)))
        .rename("codings")
        .reset_index()
    )
    table = own.merge(
        per_record,
        left_on=["source_file", "resource_type", "medication_id"],
        right_on=["source_file", "record_type", "record_id"],
        how="left",
    ).drop(columns=["record_type", "record_id"])
    return table.sort_values(["source_file", "resource_type", "medication_id"]).reset_index(drop=True)


@pytest.mark.parametrize("form", ["bundle", "contained"])
def test_medication_references_give_the_populations_of_the_concept_form(deck: Path, tmp_path: Path, form: str) -> None:
    rewritten = write_rewritten_deck(deck, tmp_path / DECK, form)
    # Not vacuous: the deck's drugs really are now behind references, of both types.
    assert all(rewritten[t] > 0 for t in REWRITTEN_TYPES), rewritten

    # Extraction fills the same code columns and codings from the reference as from the concept.
    pd.testing.assert_frame_equal(_medication_codes(tmp_path / DECK), _medication_codes(deck))

    original, changed = _run(deck), _run(tmp_path / DECK)
    assert not changed.problems, changed.problems
    assert [r.case for r in changed.results] == [r.case for r in original.results]
    differing = {
        r.case: (o.computed, r.computed)
        for o, r in zip(original.results, changed.results, strict=True)
        if dict(r.computed) != dict(o.computed) or r.quarantined != o.quarantined
    }
    assert not differing, f"{len(differing)} case(s) change with the {form} form: {differing}"
    assert {r.case for r in original.matched} <= {r.case for r in changed.matched}
    assert original.matched, "the original deck matches no case: nothing to compare against"
