"""The generator's codes land in the value sets the indicators read (and its near misses do not).

The generator writes constants (``pipelines/generate/codes.py``) and reads no value set
at run time, so this is where a code drifting out of its set is caught: the project's
own sets (``indicators/valuesets``) always, the VSAC expansions the CMS eCQMs name when
the reference copies are there (CAREQI_SHARED_DATA; required in CI). Value sets are
looked up by the names the indicator YAMLs declare, never by a copied OID.
"""

from __future__ import annotations

import os

import pytest

from pipelines.compute import load_indicators, load_valuesets
from pipelines.config import PROJECT_ROOT, load_settings
from pipelines.generate import codes as C
from pipelines.tables import POA_SYSTEM

INDICATORS = {i.id: i for i in load_indicators(PROJECT_ROOT / "indicators")}
OWN = load_valuesets([PROJECT_ROOT / "indicators" / "valuesets"])
VSAC_DIRS = sorted((load_settings().shared_data_dir / "ecqm-qicore-2025").glob("*/valuesets"))

CMS108 = "cms108_vte_prophylaxis"
CMS165 = "cms165_controlling_high_blood_pressure"
CMS826 = "cms826_hospital_harm_pressure_injury"
CMS1017 = "cms1017_hospital_harm_falls_with_injury"


def _pairs(codes: tuple[C.Code, ...] | list[C.Code]) -> set[tuple[str, str]]:
    return {(system, code) for system, code, _ in codes}


def _own(slug: str) -> frozenset[tuple[str, str]]:
    return OWN.codes(slug)


@pytest.fixture(scope="module")
def vsac():  # type: ignore[no-untyped-def]
    if not VSAC_DIRS:
        if os.environ.get("CI") == "true":
            pytest.fail("eCQM value sets not found under CAREQI_SHARED_DATA/ecqm-qicore-2025")
        pytest.skip("eCQM value sets (VSAC) not available: set CAREQI_SHARED_DATA")
    index = load_valuesets(VSAC_DIRS)

    def codes(indicator: str, name: str) -> frozenset[tuple[str, str]]:
        return index.codes(INDICATORS[indicator].declared_valuesets[name])

    return codes


# ---------------------------------------------------------------- the project's own value sets
@pytest.mark.parametrize(
    ("codes", "slugs"),
    [
        (C.AE_FALL, ("adverse-event-fall",)),
        ((C.AE_PRESSURE_ULCER, C.AE_PRESSURE_INJURY_STAGE_2), ("adverse-event-pressure-injury",)),
        (C.AE_MEDICATION_ERROR, ("adverse-event-medication-error",)),
        (C.PRESSURE_INJURY_STAGE_2_PLUS, ("pressure-injury-stage-2-plus",)),
        (C.VTE_PHARMACOLOGICAL, ("vte-pharmacological-prophylaxis", "vte-low-dose-unfractionated-heparin")),
        (C.VTE_MECHANICAL, ("vte-mechanical-prophylaxis",)),
    ],
    ids=["falls", "pressure-incidents", "medication-errors", "pressure-injury", "vte-drugs", "vte-devices"],
)
def test_codes_are_in_the_projects_own_value_sets(codes: tuple[C.Code, ...], slugs: tuple[str, ...]) -> None:
    allowed = set().union(*(_own(s) for s in slugs))
    assert _pairs(codes) <= allowed, _pairs(codes) - allowed


def test_near_misses_stay_outside_the_projects_value_sets() -> None:
    stage_2_plus = _own("pressure-injury-stage-2-plus")
    assert (C.ICD10CM, C.PRESSURE_ULCER_STAGE_1[1]) not in stage_2_plus
    assert not _pairs(C.PRESSURE_INJURY_DEEP_TISSUE) & stage_2_plus  # staged apart (NPIAP)
    assert (C.RXNORM, C.PARACETAMOL[1]) not in _own("vte-pharmacological-prophylaxis")
    every_own = set().union(*(_own(s) for s in ("adverse-event-fall", "adverse-event-pressure-injury")))
    assert (C.AE_OTHER[0], C.AE_OTHER[1]) not in every_own | _own("adverse-event-medication-error")


# ---------------------------------------------------------------- the eCQMs' VSAC value sets
VTE_DRUGS = (
    "Low Molecular Weight Heparin for VTE Prophylaxis",
    "Rivaroxaban for VTE Prophylaxis",
    "Low Dose Unfractionated Heparin for VTE Prophylaxis",
)
ESSENTIAL = [(C.SNOMED, C.ESSENTIAL_HYPERTENSION.code, ""), C.ESSENTIAL_HYPERTENSION.icd10]
SELECTED_SURGERY = [C.HIP_REPLACEMENT.icd10pcs, C.KNEE_REPLACEMENT.icd10pcs]


@pytest.mark.parametrize(
    ("codes", "indicator", "names"),
    [
        pytest.param(
            [C.ENCOUNTER_TYPES[p] for p in ("EM", "UR", "EL")], CMS826, ("Encounter Inpatient",), id="inpatient"
        ),
        pytest.param([C.ENCOUNTER_TYPES["EMER"]], CMS1017, ("Emergency Department Visit",), id="emergency"),
        pytest.param(
            C.PRESSURE_INJURY_STAGE_2_PLUS,
            CMS826,
            ("Pressure Injury Stage 2, 3, 4, or Unstageable Diagnoses",),
            id="pressure-injury",
        ),
        pytest.param(
            C.PRESSURE_INJURY_DEEP_TISSUE, CMS826, ("Pressure Injury Deep Tissue Diagnoses",), id="deep-tissue"
        ),
        pytest.param((*C.AE_FALL, *C.FALL_CAUSES), CMS1017, ("Inpatient Falls",), id="falls"),
        pytest.param(C.MODERATE_INJURIES, CMS1017, ("Moderate Injuries",), id="moderate-injury"),
        pytest.param(C.MAJOR_INJURIES, CMS1017, ("Major Injuries",), id="major-injury"),
        pytest.param(ESSENTIAL, CMS165, ("Essential Hypertension",), id="essential-hypertension"),
        pytest.param(
            (*C.OFFICE_VISITS_ESTABLISHED, *C.OFFICE_VISITS_NEW), CMS165, ("Office Visit",), id="office-visit"
        ),
        pytest.param(
            SELECTED_SURGERY, CMS108, ("Hip Replacement Surgery", "Knee Replacement Surgery"), id="selected-surgery"
        ),
        # heparin 1000 units/mL is in the set too: CMS108 tells it apart by route (given intravenously)
        pytest.param(C.VTE_PHARMACOLOGICAL, CMS108, VTE_DRUGS, id="vte-drugs"),
    ],
)
def test_codes_are_in_the_value_sets_the_ecqms_read(vsac, codes, indicator: str, names: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    allowed = set().union(*(vsac(indicator, n) for n in names))
    wanted = _pairs([c for c in codes if c is not None])
    assert wanted and wanted <= allowed, wanted - allowed


def test_present_on_admission_codes_split_as_the_ecqms_read_them(vsac) -> None:  # type: ignore[no-untyped-def]
    present = vsac(CMS826, "Present on Admission or Clinically Undetermined")
    absent = vsac(CMS826, "Not Present On Admission or Documentation Insufficient to Determine")
    assert {(POA_SYSTEM, "Y"), (POA_SYSTEM, "W")} <= present
    assert {(POA_SYSTEM, "N"), (POA_SYSTEM, "U")} <= absent


def test_near_misses_stay_outside_the_ecqm_value_sets(vsac) -> None:  # type: ignore[no-untyped-def]
    injuries = vsac(CMS1017, "Moderate Injuries") | vsac(CMS1017, "Major Injuries")
    assert not _pairs(C.MINOR_INJURIES) & injuries
    pressure = vsac(CMS826, "Pressure Injury Stage 2, 3, 4, or Unstageable Diagnoses") | vsac(
        CMS826, "Pressure Injury Deep Tissue Diagnoses"
    )
    assert (C.ICD10CM, C.PRESSURE_ULCER_STAGE_1[1]) not in pressure
    essential = vsac(CMS165, "Essential Hypertension")
    secondary = C.SECONDARY_HYPERTENSION
    assert not {(C.SNOMED, secondary.code), (secondary.icd10[0], secondary.icd10[1])} & essential
