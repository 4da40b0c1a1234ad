"""``careqi actions|spc|appendix ...``, run as a data team runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.config import load_settings
from pipelines.load import create_schema, make_engine
from pipelines.load.governance import pseudonym_key
from pipelines.publish.appendix import pseudonym


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CAREQI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_actions_are_imported_set_and_listed_with_overdue_marked(home: Path, tmp_path: Path, capsys) -> None:
    register = tmp_path / "actions.csv"
    register.write_text(
        "action_id,indicator_id,unit,title,owner,due_on,status\n"
        "vte-01,vte_prophylaxis,ALL,Order set change,CMIO,2026-01-15,open\n",
        encoding="utf-8",
    )
    assert main(["actions", "import", str(register)]) == 0
    assert main(["actions", "set", "--id", "falls-01", "--indicator", "falls_with_injury", "--title", "Rounding",
                 "--owner", "Ward manager", "--due", "2026-12-31", "--status", "in_progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["actions", "list", "--as-of", "2026-06-01"]) == 0
    listed = capsys.readouterr().out
    assert "vte-01" in listed and "falls-01" in listed
    assert listed.count("OVERDUE") == 1  # vte-01 only (due in January); rich may wrap the cell


def test_an_action_for_an_unknown_indicator_is_refused(home: Path, capsys) -> None:
    code = main(["actions", "set", "--id", "x", "--indicator", "nope", "--title", "T", "--owner", "O",
                 "--due", "2026-01-01"])  # fmt: skip
    assert code == 2 and "no indicator 'nope'" in capsys.readouterr().err


def test_rephasing_needs_an_approver_and_a_reason(home: Path, capsys) -> None:
    assert main(["spc", "rephase", "--indicator", "vte_prophylaxis", "--from", "2026-06"]) == 2
    assert "approved" in capsys.readouterr().err
    assert main(["spc", "rephase", "--indicator", "vte_prophylaxis", "--from", "2026-06", "--approved-by",
                 "Dr A, CMO", "--reason", "order set live 1 June"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["spc", "phases"]) == 0
    assert "Dr A, CMO" in capsys.readouterr().out
    assert main(["spc", "withdraw", "--indicator", "vte_prophylaxis", "--from", "2026-06"]) == 0
    assert main(["spc", "withdraw", "--indicator", "vte_prophylaxis", "--from", "2026-06"]) == 2


def test_reidentify_without_a_key_says_so_and_with_one_finds_nothing_unknown(home: Path, capsys) -> None:
    assert main(["appendix", "reidentify", "--period", "2026-10", "S-0123456789abcdef"]) == 2
    assert "no pseudonym key" in capsys.readouterr().err
    engine = make_engine(load_settings().warehouse_url)
    create_schema(engine)
    _, secret = pseudonym_key(engine)
    engine.dispose()
    assert main(["appendix", "reidentify", "--period", "2026-10", pseudonym(secret, "enc-1")]) == 1
    assert "not found in 2026-10" in capsys.readouterr().out
