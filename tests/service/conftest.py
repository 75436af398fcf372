"""Fixtures for the systemd-facing tests: a real datagram socket standing in for systemd."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


class NotifyListener:
    """The receiving end of ``$NOTIFY_SOCKET``: a bound, non-blocking SOCK_DGRAM socket."""

    def __init__(self, address: str, sock: socket.socket) -> None:
        self.address = address  # as it would appear in $NOTIFY_SOCKET
        self.sock = sock

    def drain(self) -> list[str]:
        """Every message queued right now, without waiting."""
        out: list[str] = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out

    def recv(self, timeout: float = 5.0) -> str:
        """The next message, waiting (blocking the caller) up to ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        finally:
            self.sock.setblocking(False)

    async def next(self, within: float = 5.0) -> str:
        """The next message, awaited on the running loop (the loop keeps running meanwhile)."""
        import asyncio

        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), within)
        return data.decode()


@pytest.fixture
def notify_listener() -> Iterator[NotifyListener]:
    """A datagram socket on a short temp path, like systemd's /run/systemd/notify."""
    with tempfile.TemporaryDirectory(prefix="hfd-n-", dir="/tmp") as d:
        path = Path(d) / "notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.setblocking(False)
        try:
            yield NotifyListener(str(path), sock)
        finally:
            sock.close()


