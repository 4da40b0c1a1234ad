"""The committee report's new parts: structure and numbers, no identifiers, the
restricted appendix, the action register, audited re-phasing, the publication gate."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser

import pandas as pd
import pytest

from pipelines.actions import action_rows, is_overdue, read_action_file
from pipelines.config import PROJECT_ROOT
from pipelines.errors import ConfigError
from pipelines.load import create_schema, make_engine
from pipelines.load.governance import add_phase, pseudonym_key, read_actions, read_phases, upsert_actions
from pipelines.organisation import NO_DEPARTMENT, build_organisation
from pipelines.publish import build_report_context
from pipelines.publish.appendix import appendix_sections, pseudonym, reidentify
from pipelines.publish.context import CommitteeInputs
from pipelines.publish.data_quality import check_changes, publication_gate
from pipelines.publish.html import render_html

from .conftest import PERIOD

TEMPLATES = PROJECT_ROOT / "reports"


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()


def _actions() -> pd.DataFrame:
    return action_rows(
        [
            {
                "action_id": "a1",
                "indicator_id": "vte",
                "unit": "F1",
                "title": "Daily VTE huddle",
                "owner": "Lead nurse",
                "due_on": "2026-10-15",
                "status": "open",
            },
            {
                "action_id": "a2",
                "indicator_id": "vte",
                "unit": "ALL",
                "title": "Order set change",
                "owner": "CMIO",
                "due_on": "2026-11-20",
                "status": "in_progress",
            },
            {
                "action_id": "a3",
                "indicator_id": "falls",
                "unit": "W1",
                "title": "Bed alarms",
                "owner": "Ward manager",
                "due_on": "2026-09-01",
                "status": "done",
                "closed_on": "2026-08-30",
            },
        ],  # fmt: skip
        today=date(2026, 10, 1),
        known_indicators=["vte", "falls", "fft"],
    )


@pytest.fixture(scope="module")
def committee_ctx(indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards):
    committee = CommitteeInputs(actions=_actions(), feeding_tables=frozenset({"patients"}), gate_mode="feeding")
    return build_report_context(
        period=PERIOD, indicators=indicators, results=results, subjects=subjects, reconciliation=reconciliation,
        checks=checks, quarantine=quarantine, facilities=facilities, wards=wards, generated_at="2026-11-02 06:00",
        committee=committee,
    )  # fmt: skip


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        for k, v in attrs:
            if k == "id" and v:
                self.ids.append(v)

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        self.chunks.append(data)


@pytest.fixture(scope="module")
def page(committee_ctx) -> str:
    return render_html(committee_ctx, TEMPLATES)


def test_the_committee_reads_the_executive_summary_then_one_section_per_domain(page, committee_ctx):
    parser = _Text()
    parser.feed(page)
    ids = parser.ids
    for needed in ("contents", "executive", "scorecard", "actions", "data-quality", "provenance"):
        assert needed in ids, needed
    domains = [i for i in ids if i.startswith("domain-")]
    assert domains == [f"domain-{d['id']}" for d in committee_ctx["domains"]]
    assert ids.index("executive") < ids.index("scorecard") < ids.index(domains[0]) < ids.index("data-quality")


def test_report_numbers_are_the_warehouse_numbers(page, committee_ctx, results):
    vte = next(s for s in committee_ctx["indicators"] if s["id"] == "vte")
    row = results[(results["indicator_id"] == "vte") & (results["period"] == PERIOD)
                  & (results["facility_id"] == "ALL") & (results["stratifier"] == "overall")].iloc[0]  # fmt: skip
    assert vte["current"]["value"] == pytest.approx(float(row["measure_score"]))
    assert vte["current"]["value_text"] in page
    assert f"{int(row['denominator']):,}" == vte["current"]["denominator_text"]


def test_committee_report_names_no_subject_or_patient(page, subjects):
    for column in ("subject_id", "patient_id"):
        for value in subjects[column].dropna().astype(str).unique():
            assert value not in page, f"{column} {value} appears in the committee report"


def test_actions_sit_beside_their_indicator_and_overdue_ones_are_flagged(committee_ctx, page):
    vte = next(s for s in committee_ctx["indicators"] if s["id"] == "vte")
    assert [a["action_id"] for a in vte["actions"]] == ["a1", "a2"]
    a1 = vte["actions"][0]
    assert a1["overdue"] and not vte["actions"][1]["overdue"]  # data as of 2026-10-31
    falls = next(s for s in committee_ctx["indicators"] if s["id"] == "falls")
    assert falls["actions"][0]["closed"] and not falls["actions"][0]["overdue"]
    assert [a["action_id"] for a in committee_ctx["executive"]["actions_due"]] == ["a1", "a2"]
    assert committee_ctx["executive"]["overdue_count"] == 1
    assert 'class="row-alert"><td>Daily VTE huddle' in page


def test_action_file_problems_are_all_reported(tmp_path):
    path = tmp_path / "actions.yaml"
    path.write_text(
        "- {action_id: x1, indicator_id: nope, unit: ALL, title: T, owner: O, due_on: 2026-01-01, status: open}\n"
        "- {action_id: x2, indicator_id: vte, unit: ALL, title: T, owner: O, due_on: tomorrow, status: open}\n"
        "- {action_id: x3, indicator_id: vte, unit: ALL, title: T, due_on: 2026-01-01, status: maybe}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        action_rows(read_action_file(path), today=date(2026, 1, 1), known_indicators=["vte"])
    message = str(err.value)
    assert "no indicator 'nope'" in message and "due_on must be a date" in message and "missing owner" in message


def test_actions_round_trip_through_the_warehouse_and_an_update_replaces(engine):
    upsert_actions(engine, _actions())
    changed = _actions().assign(status=["done", "in_progress", "done"])
    upsert_actions(engine, changed.iloc[[0]])
    stored = read_actions(engine)
    assert sorted(stored["action_id"]) == ["a1", "a2", "a3"]
    assert stored.set_index("action_id").loc["a1", "status"] == "done"
    assert not is_overdue(stored, date(2027, 1, 1)).loc[stored["action_id"] == "a1"].any()


def test_rephasing_without_an_approval_record_is_refused(engine):
    when = datetime(2026, 11, 3, tzinfo=UTC)
    with pytest.raises(ConfigError, match="approved"):
        add_phase(engine, indicator_id="vte", unit="ALL", starts="2026-06", approved_by=" ", reason="new order set",
                  approved_at=when)  # fmt: skip
    with pytest.raises(ConfigError, match="why"):
        add_phase(engine, indicator_id="vte", unit="ALL", starts="2026-06", approved_by="Dr A", reason="",
                  approved_at=when)  # fmt: skip
    assert read_phases(engine).empty
    add_phase(engine, indicator_id="vte", unit="ALL", starts="2026-06", approved_by="Dr A (CMO)",
              reason="electronic VTE order set live on 1 June", approved_at=when)  # fmt: skip
    with pytest.raises(ConfigError, match="already re-phased"):
        add_phase(engine, indicator_id="vte", unit="ALL", starts="2026-06", approved_by="Dr B", reason="again",
                  approved_at=when)  # fmt: skip
    phases = read_phases(engine)
    assert phases[["indicator_id", "starts", "approved_by"]].values.tolist() == [["vte", "2026-06", "Dr A (CMO)"]]


def test_an_approved_change_point_is_shown_on_the_chart(
    indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards
):
    window = sorted(results["period"].astype(str).unique())
    starts = window[len(window) // 2]
    phases = pd.DataFrame([{"indicator_id": "vte", "unit": "ALL", "starts": starts, "approved_by": "Dr A",
                            "approved_at": pd.Timestamp("2026-11-03"), "reason": "order set"}])  # fmt: skip
    ctx = build_report_context(
        period=PERIOD, indicators=indicators, results=results, subjects=subjects, reconciliation=reconciliation,
        checks=checks, quarantine=quarantine, facilities=facilities, wards=wards, generated_at="x",
        committee=CommitteeInputs(phases=phases),
    )  # fmt: skip
    vte = next(s for s in ctx["indicators"] if s["id"] == "vte")
    assert vte["spc"]["phases"] == [{"starts": starts, "approved_by": "Dr A", "approved_at": "2026-11-03",
                                     "reason": "order set"}]  # fmt: skip
    html = render_html(ctx, TEMPLATES)
    assert "approved by Dr A on 2026-11-03: order set" in html


def test_pseudonyms_are_stable_keyed_and_reidentifiable_only_with_the_key(engine):
    key_id, secret = pseudonym_key(engine)
    assert pseudonym_key(engine) == (key_id, secret)  # made once, then read
    p = pseudonym(secret, "enc-fall")
    assert re.fullmatch(r"S-[0-9a-f]{16}", p) and "enc" not in p
    assert pseudonym(b"another key", "enc-fall") != p
    assert reidentify(secret, [p, "S-0000000000000000"], ["enc-no-fall", "enc-fall"]) == {
        p: ["enc-fall"],
        "S-0000000000000000": [],
    }


def test_the_restricted_appendix_says_why_each_case_counts(committee_ctx, indicators, subjects, facilities):
    secret = b"k" * 32
    parts = appendix_sections(committee_ctx["indicators"], {i.id: i for i in indicators}, subjects, PERIOD, secret,
                              dict(facilities))  # fmt: skip
    vte = next(p for p in parts if p["id"] == "vte")
    assert sorted(c["pseudonym"] for c in vte["cases"]) == sorted(
        pseudonym(secret, s) for s in ("enc-missed-1", "enc-missed-2")
    )
    reasons = {r["population"]: r["member"] for r in vte["cases"][0]["reasons"]}
    assert reasons["Denominator"] is True and reasons["Numerator"] is False
    html = render_html({**committee_ctx, "appendix": parts}, TEMPLATES, template="restricted_appendix.html.j2")
    assert "enc-missed-1" not in html and vte["cases"][0]["pseudonym"] in html
    assert "Not in the numerator" in html


def test_publication_gate_stops_a_broken_feed_not_a_few_quarantined_rows():
    checks = pd.DataFrame(
        [
            {"table_name": "encounters", "check": "not_null(patient_id)", "violated": 3, "denominator": 1000,
             "status": "fail"},
            {"table_name": "encounters", "check": "in_set(class_code)", "violated": 80, "denominator": 1000,
             "status": "fail"},
            {"table_name": "complaints", "check": "in_set(channel)", "violated": 500, "denominator": 1000,
             "status": "fail"},
            {"table_name": "patients", "check": "between(birth_date)", "violated": 0, "denominator": 1000,
             "status": "pass"},
        ]
    )  # fmt: skip
    gate = publication_gate(checks, {"encounters"}, "feeding", max_pct=1.0)
    assert not gate["publishable"]
    assert [(b["table"], b["check"]) for b in gate["blocking"]] == [("encounters", "in_set(class_code)")]
    assert len(publication_gate(checks, {"encounters"}, "any", max_pct=1.0)["blocking"]) == 2
    assert publication_gate(checks, {"encounters"}, "off")["publishable"]
    assert publication_gate(checks, {"encounters"}, "feeding", max_pct=10.0)["publishable"]
    with pytest.raises(ConfigError):
        publication_gate(checks, set(), "sometimes")


def test_data_quality_compares_failing_checks_with_earlier_runs():
    def frame(*failing: str) -> pd.DataFrame:
        names = ["a", "b", "c"]
        status = ["fail" if n in failing else "pass" for n in names]
        return pd.DataFrame({"table_name": "t", "check": names, "status": status})

    changes = check_changes(frame("a", "b"), frame("b", "c"))
    assert changes == {
        "new": [{"table": "t", "check": "a"}],
        "resolved": [{"table": "t", "check": "c"}],
        "persisting": [{"table": "t", "check": "b"}],
    }
    assert check_changes(frame("a"), None) is None


def test_organisation_tree_from_location_part_of_with_configuration_winning():
    orgs = pd.DataFrame({"organization_id": ["org-1"], "name": ["General"]})
    locs = pd.DataFrame(
        {
            "location_id": ["site", "dept-med", "ward-a", "ward-b", "ward-c"],
            "name": ["Site", "Medicine", "Ash", "Birch", "Cedar"],
            "type_code": ["si", "wi", "wa", "wa", "wa"],
            "organization_id": ["org-1"] * 5,
            "part_of": [None, "site", "dept-med", "dept-med", "site"],
        }
    )
    config = {"system": "North", "departments": {"dept-surg": {"name": "Surgery", "wards": ["ward-b"]}}}
    org = build_organisation(config, orgs, locs)
    got = org.departments(pd.Series(["ward-a", "ward-b", "ward-c", None]))
    assert got.tolist() == ["dept-med", "dept-surg", NO_DEPARTMENT, NO_DEPARTMENT]
    assert org.system_name == "North" and org.name("dept-surg") == "Surgery" and org.name("org-1") == "General"


def test_a_provisional_month_takes_what_breached_from_the_latest_final_month(
    indicators, results, subjects, reconciliation, checks, quarantine, facilities, wards
):
    """With a revision window the newest month is always provisional (not graded): the
    summary must still say what breached, from each indicator's latest final month."""
    res = results.copy()
    now = res["period"] == PERIOD
    res.loc[now, "state"] = "provisional"
    res.loc[now, "state_reason"] = "open to revision until batch 2026-12 is loaded"
    res.loc[now, "status"] = None
    ctx = build_report_context(
        period=PERIOD, indicators=indicators, results=res, subjects=subjects, reconciliation=reconciliation,
        checks=checks, quarantine=quarantine, facilities=facilities, wards=wards, generated_at="x",
    )  # fmt: skip
    breached = {b["id"]: b for b in ctx["executive"]["breached"]}
    assert set(breached) == {"falls"}  # red in September, its latest final month; vte was amber then
    assert breached["falls"]["month"] == "Sept ’26"  # en_GB (CLDR) abbreviates September so
    assert all(s["current"]["status"] == "provisional" for s in ctx["indicators"])
