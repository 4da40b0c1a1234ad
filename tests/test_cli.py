"""The CLI: every command has --help, and user mistakes are one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.cli import main

COMMANDS = [
    [],
    ["generate"],
    ["run"],
    ["backfill"],
    ["validate"],
    ["report"],
    ["export"],
    ["bench"],
    ["indicators"],
    ["indicators", "list"],
    ["indicators", "show"],
    ["conformance"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "careqi")
def test_every_command_has_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["run", "--period", "2026-13"],
        ["run", "--period", "2026-10", "--bogus"],
        ["generate", "--patients", "abc"],
        ["nope"],
        ["indicators", "show", "no_such_indicator"],
    ],
    ids=lambda a: " ".join(a),
)
def test_user_errors_are_one_line(args: list[str]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pipelines.cli import main; sys.exit(main(sys.argv[1:]))",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr + proc.stdout


def test_run_without_input_explains_what_to_do(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CAREQI_HOME", str(tmp_path))
    assert main(["run", "--period", "2026-10"]) == 2
    err = capsys.readouterr().err
    assert "careqi generate" in err


def test_indicators_list_shows_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["indicators", "list", "--json"]) == 0
    import json

    catalogue = json.loads(capsys.readouterr().out)
    ids = {i["id"] for i in catalogue}
    assert {"falls_with_injury", "vte_prophylaxis", "recommend_top_box"} <= ids
    for item in catalogue:
        assert item["owner"] and item["domain"] and item["target"] is not None
