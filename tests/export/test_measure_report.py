from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.measurereport import MeasureReport

from pipelines.errors import ExportError
from pipelines.export import export_measure_reports, measure_report_from_counts
from pipelines.export.measure_report import DATA_ABSENT_REASON, DEQM_SUMMARY, validate_measure_report
from tests.catalogue import with_fields

from .conftest import PERIOD, bundle_reports

POP = "http://terminology.hl7.org/CodeSystem/measure-population"


def populations(group_or_stratum) -> dict[str, object]:
    out = {}
    for p in group_or_stratum["population"]:
        code = p["code"]["coding"][0]
        assert code["system"] == POP
        out[code["code"]] = p.get("count", p.get("_count"))
    return out


@pytest.fixture
def reports(results, indicators, tmp_path) -> dict[str, dict]:
    paths = export_measure_reports(results, indicators, PERIOD, tmp_path, reporter="Example Health")
    assert [p.name for p in paths] == [f"careqi-measurereports-{PERIOD}.bundle.json"]
    reports = bundle_reports(paths)
    assert list(reports) == ["days", "vte"]
    return reports


def test_files_validate_as_fhir_r4_measure_reports(reports):
    for doc in reports.values():
        MeasureReport.model_validate(doc)
        assert doc["status"] == "complete" and doc["type"] == "summary"
        assert doc["period"] == {"start": "2026-10-01", "end": "2026-10-31"}
        assert doc["date"] == "2026-10-31"
        assert doc["reporter"] == {"reference": "Organization/example-health", "display": "Example Health"}
        assert doc["meta"]["profile"] == [DEQM_SUMMARY]


def test_system_group_has_the_five_proportion_populations_and_score(reports):
    vte = reports["vte"]
    assert vte["measure"] == "https://madie.cms.gov/Measure/CMS108FHIRVTEProphylaxis"
    assert vte["improvementNotation"]["coding"][0]["code"] == "increase"
    group = vte["group"][0]
    assert populations(group) == {
        "initial-population": 200,
        "denominator": 200,
        "denominator-exclusion": 0,
        "numerator": 120,
        "numerator-exclusion": 0,
    }
    assert group["measureScore"]["value"] == pytest.approx(0.6)


def test_facilities_and_strata_are_stratifiers(reports):
    strat = {tuple(c["text"] for c in s["code"]): s for s in reports["vte"]["group"][0]["stratifier"]}
    assert set(strat) == {("facility",), ("ward",), ("facility", "ward")}
    assert [s["value"]["text"] for s in strat[("facility",)]["stratum"]] == ["F1", "F2"]
    cross = strat[("facility", "ward")]["stratum"][0]
    assert [(c["code"]["text"], c["value"]["text"]) for c in cross["component"]] == [
        ("facility", "F1"),
        ("ward", "W1"),
    ]


def test_suppressed_cells_are_masked_not_zero(reports):
    strat = {tuple(c["text"] for c in s["code"]): s for s in reports["vte"]["group"][0]["stratifier"]}
    w1 = strat[("facility", "ward")]["stratum"][0]
    pops = populations(w1)
    assert pops["denominator"] == 60
    assert pops["numerator"] == {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}]}
    assert w1["measureScore"] == {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}]}
    assert "5" not in json.dumps(w1["population"])


def test_continuous_measure_reports_measure_population(reports):
    days = reports["days"]
    assert days["measure"] == "https://careqi.example.org/fhir/Measure/days"
    group = days["group"][0]
    assert set(populations(group)) == {
        "initial-population",
        "measure-population",
        "measure-population-exclusion",
        "measure-observation",
    }
    assert "numerator" not in populations(group)
    assert group["measureScore"] == {"value": 18.5, "unit": "days"}


def test_reports_are_byte_reproducible(results, indicators, tmp_path):
    a = [p.read_bytes() for p in export_measure_reports(results, indicators, PERIOD, tmp_path / "a")]
    b = [p.read_bytes() for p in export_measure_reports(results.iloc[::-1], indicators, PERIOD, tmp_path / "b")]
    assert a == b


def test_identifiers_never_reach_a_report(results, indicators, tmp_path):
    leaky = results.assign(subject_id="enc-SECRET", patient_id="pat-SECRET", comment="SECRET words")
    for path in export_measure_reports(leaky, indicators, PERIOD, tmp_path):
        assert "SECRET" not in path.read_text(encoding="utf-8")


def test_missing_system_row_is_an_export_error(results, indicators, tmp_path):
    no_system = results[~((results["indicator_id"] == "days") & (results["facility_id"] == "ALL"))]
    with pytest.raises(ExportError, match="system-wide"):
        export_measure_reports(no_system, indicators, PERIOD, tmp_path)
    assert not list(tmp_path.glob("*.json"))  # nothing half-written


def test_single_report_from_counts_can_be_individual(indicators):
    doc = measure_report_from_counts(
        indicators[0],
        PERIOD,
        {
            "initial_population": 1,
            "denominator": 1,
            "denominator_exclusion": 0,
            "numerator": 0,
            "numerator_exclusion": 0,
        },
        report_type="individual",
        subject_reference="Patient/example",
    )
    assert doc["type"] == "individual" and doc["subject"] == {"reference": "Patient/example"}
    assert populations(doc["group"][0])["numerator"] == 0


def test_invalid_resource_is_an_export_error():
    with pytest.raises(ExportError, match="not valid FHIR"):
        validate_measure_report(
            {
                "resourceType": "MeasureReport",
                "status": "complete",
                "type": "summary",
                "measure": "https://x",
                "period": {"start": "2026-13-01"},
            }
        )


def test_underscored_indicator_ids_give_valid_fhir_ids_and_the_declared_measure_is_referenced(
    results, indicators, tmp_path
):
    renamed = results.assign(indicator_id=results["indicator_id"].replace({"vte": "vte_prophylaxis"}))
    url = "https://madie.cms.gov/Measure/CMS108FHIRVTEProphylaxis"
    ind = [with_fields(indicators[0], id="vte_prophylaxis", measure_url=url, measure_version="0.3.000"), indicators[1]]
    reports = bundle_reports(export_measure_reports(renamed, ind, PERIOD, tmp_path))
    doc = reports["vte-prophylaxis"]
    assert doc["id"] == "vte-prophylaxis-2026-10"
    assert doc["measure"] == url + "|0.3.000"
    other = reports["days"]
    assert other["measure"] == "https://careqi.example.org/fhir/Measure/days"
