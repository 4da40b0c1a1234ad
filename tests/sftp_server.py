"""A real SFTP server for delivery tests: asyncssh on 127.0.0.1, a free port, chrooted to
a temporary folder, password login; stopped after the test (its thread, its loop)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

USER, PASSWORD = "regulator", "s3cret-for-the-test"


class _Server(asyncssh.SSHServer):  # type: ignore[misc]
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == (USER, PASSWORD)


@pytest.fixture
def sftp_root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An SFTP server on a free local port serving ``tmp_path/sftp``; stopped after the test."""
    root = tmp_path / "sftp"
    root.mkdir()
    key = asyncssh.generate_private_key("ssh-ed25519")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            holder["server"] = await asyncssh.listen(
                "127.0.0.1", port, server_host_keys=[key], server_factory=_Server,
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root)),
            )  # fmt: skip
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the SFTP server did not start"
    yield root, port
    server = holder["server"]
    loop.call_soon_threadsafe(server.close)  # type: ignore[attr-defined]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


__all__ = ["PASSWORD", "USER", "sftp_root"]
