"""The real daemon under a stand-in for systemd: ``$NOTIFY_SOCKET`` is a datagram socket this
test binds, ``$WATCHDOG_USEC`` asks for watchdog pings.

Not covered here: that pings stop when the event loop blocks. That is unit-tested in
``tests/service/test_watchdog.py``; proving it on the real process would need a debug hook in
production code to block the loop, which we do not add.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

from tests.system.daemonproc import SERVING, DaemonFleet

WATCHDOG_USEC = 400_000
EXIT_SLACK_S = 5.0


@dataclass
class Notification:
    """One sd_notify datagram: its KEY=VALUE fields, in order."""

    fields: dict[str, str]
    at: float

    def has(self, key: str, value: str | None = None) -> bool:
        return key in self.fields and (value is None or self.fields[key] == value)


@dataclass
class FakeSystemd:
    """The receiving end of ``$NOTIFY_SOCKET``; :meth:`until` reads datagrams as they come."""

    sock: socket.socket
    address: str
    received: list[Notification] = field(default_factory=list)

    async def next(self, timeout_s: float) -> Notification:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout_s)
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        note = Notification(fields, time.monotonic())
        self.received.append(note)
        return note

    async def until(self, key: str, value: str | None = None, timeout_s: float = 30.0) -> int:
        """Read until a message with ``key`` (= ``value``) arrives; its index in received."""
        deadline = time.monotonic() + timeout_s
        while True:
            note = await self.next(max(0.01, deadline - time.monotonic()))
            if note.has(key, value):
                return len(self.received) - 1

    def index(self, key: str, value: str | None = None, start: int = 0) -> int | None:
        for i, note in enumerate(self.received[start:], start=start):
            if note.has(key, value):
                return i
        return None

    def count(self, key: str, start: int = 0) -> int:
        return sum(1 for note in self.received[start:] if note.has(key))


@pytest.fixture
async def systemd(fleet: DaemonFleet) -> AsyncIterator[FakeSystemd]:
    path = fleet.workdir / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    try:
        yield FakeSystemd(sock, str(path))
    finally:
        sock.close()


async def test_notify_ready_watchdog_reload_and_stop(
    fleet: DaemonFleet, systemd: FakeSystemd
) -> None:
    """The whole sd_notify conversation of one daemon run, in order:

    - ``STATUS=starting``, then ``STATUS=listening; loading the model``; no ``READY=1`` before;
    - ``WATCHDOG=1`` pings start while the model loads and keep coming after start-up;
    - ``READY=1`` only once the model is loaded: when it arrives the health service already
      says SERVING and ``Status`` reports the model;
    - SIGHUP: ``RELOADING=1`` with ``MONOTONIC_USEC=``, then ``READY=1`` again;
    - SIGTERM: ``STOPPING=1``, then exit 0.
    """
    daemon = fleet.spawn(
        fleet.config(grace_period_s=2.0),
        env={"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)},
    )
    ready_at = await systemd.until("READY", "1", timeout_s=90.0)
    async with grpc.aio.insecure_channel(f"unix://{daemon.socket}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        status = await pb_grpc.HandoffdStub(channel).Status(pb.StatusRequest(), timeout=10)
    assert health.status == SERVING
    assert status.ready
    assert status.model == "tiny-random-llama-genai"
    assert systemd.received[0].has("STATUS", "starting")
    loading = systemd.index("STATUS", "listening; loading the model")
    assert loading is not None
    assert loading < ready_at
    assert systemd.index("READY") == ready_at  # the first READY=1 is this one
    assert (
        systemd.received[ready_at]
        .fields["STATUS"]
        .startswith("serving tiny-random-llama-genai on CPUExecutionProvider")
    )
    first_ping = systemd.index("WATCHDOG", "1")
    assert first_ping is not None
    assert first_ping < ready_at  # pinging while the model loaded
    names = daemon.event_names()
    assert names.index("model.loaded") < names.index("service.ready")

    # pings every WATCHDOG_USEC / 2 = 0.2 s: three more arrive well within 10 s
    async with asyncio.timeout(10):
        while systemd.count("WATCHDOG", start=ready_at + 1) < 3:
            await systemd.next(10)

    daemon.signal(signal.SIGHUP)
    reloading = await systemd.until("RELOADING", "1", timeout_s=20)
    assert int(systemd.received[reloading].fields["MONOTONIC_USEC"]) > 0
    reloaded = await systemd.until("READY", "1", timeout_s=20)
    assert systemd.received[reloaded].fields["STATUS"].startswith("policy ")
    assert "reload.done" in daemon.event_names()

    daemon.signal(signal.SIGTERM)
    stopping = await systemd.until("STOPPING", "1", timeout_s=20)
    assert stopping > reloaded
    assert await daemon.wait_async(2.0 + EXIT_SLACK_S) == 0, daemon.describe()


async def test_sigterm_while_the_model_loads(fleet: DaemonFleet, systemd: FakeSystemd) -> None:
    """SIGTERM as soon as the daemon says it is loading the model (systemd stopping a unit
    that is still starting): ``STOPPING=1``, no ``READY=1`` after it (the load is abandoned,
    or, if the signal lost the race, finished before), exit 0, socket removed."""
    daemon = fleet.spawn(fleet.config(grace_period_s=2.0), env={"NOTIFY_SOCKET": systemd.address})
    await systemd.until("STATUS", "listening; loading the model", timeout_s=90.0)
    daemon.signal(signal.SIGTERM)
    stopping = await systemd.until("STOPPING", "1", timeout_s=20)
    assert await daemon.wait_async(2.0 + EXIT_SLACK_S) == 0, daemon.describe()
    while True:  # whatever else was sent before the socket closed
        try:
            await systemd.next(0.2)
        except TimeoutError:
            break
    assert systemd.index("READY", start=stopping) is None
    assert not daemon.socket.exists()
