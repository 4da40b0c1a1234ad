"""SFTP delivery of an export package (the ``regulator_export`` DAG's step), against a
real SFTP server started by the test (``tests/sftp_server.py``: asyncssh on 127.0.0.1,
chrooted to a temporary folder), through an Airflow connection given as
``AIRFLOW_CONN_<ID>`` the way a deployment would define it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.errors import ExportError
from pipelines.export import FORMATS, verify_package, write_manifest
from tests.sftp_server import PASSWORD, USER

from .conftest import PERIOD

DAGS = Path(__file__).resolve().parents[2] / "dags"


def deliver(folder: Path, connection_id: str, remote_dir: str) -> str:
    """The DAG's delivery step (``dags/careqi_tasks.py``), which opens the Airflow connection."""
    import sys

    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))
    from careqi_tasks import deliver as send

    return str(send(str(folder), connection_id, remote_dir))


def _connection(monkeypatch: pytest.MonkeyPatch, port: int, password: str = PASSWORD) -> str:
    conn = {"conn_type": "sftp", "host": "127.0.0.1", "port": port, "login": USER, "password": password,
            "extra": {"no_host_key_check": True}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_CAREQI_REGULATOR", json.dumps(conn))
    return "careqi_regulator"


@pytest.fixture
def package(results, indicators, tmp_path: Path) -> Path:
    folder = tmp_path / "exports" / PERIOD
    for writer in FORMATS.values():
        writer(results, indicators, PERIOD, folder, small_number_threshold=11)
    write_manifest(folder, period=PERIOD, run_id="run-1", software_version="0.1.0", input_fingerprint="ab" * 32,
                   valuesets=[], small_number_threshold=11)  # fmt: skip
    return folder


def test_a_package_arrives_whole_and_verifies_on_the_server(sftp_root, package, monkeypatch) -> None:
    root, port = sftp_root
    where = deliver(package, _connection(monkeypatch, port), "inbox/careqi")
    assert where == f"sftp://127.0.0.1/inbox/careqi/{PERIOD}"
    arrived = root / "inbox" / "careqi" / PERIOD
    assert sorted(p.name for p in arrived.iterdir()) == sorted(p.name for p in package.iterdir())
    assert verify_package(arrived) == []
    assert [p.name for p in (root / "inbox" / "careqi").iterdir()] == [PERIOD]  # no staging folder left


def test_a_second_delivery_replaces_the_first(sftp_root, package, monkeypatch) -> None:
    root, port = sftp_root
    conn = _connection(monkeypatch, port)
    deliver(package, conn, "careqi")
    (root / "careqi" / PERIOD / "stale.txt").write_text("from an old delivery\n")
    deliver(package, conn, "careqi")
    arrived = root / "careqi" / PERIOD
    assert "stale.txt" not in {p.name for p in arrived.iterdir()}
    assert verify_package(arrived) == []
    assert [p.name for p in (root / "careqi").iterdir()] == [PERIOD]


def test_a_refused_login_is_a_clear_error_and_leaves_nothing(sftp_root, package, monkeypatch) -> None:
    root, port = sftp_root
    with pytest.raises(ExportError, match="cannot connect through connection 'careqi_regulator'"):
        deliver(package, _connection(monkeypatch, port, password="wrong"), "careqi")
    assert list(root.iterdir()) == []


def test_an_unknown_connection_is_a_clear_error(package) -> None:
    with pytest.raises(ExportError, match="cannot connect through connection 'nowhere'"):
        deliver(package, "nowhere", "careqi")
