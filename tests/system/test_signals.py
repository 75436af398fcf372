"""Signals and start-up failures of the real daemon process: graceful SIGTERM with a stream in
flight, a second daemon on a busy socket, a stale socket file, and configuration errors."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoffd.ledger import LedgerReader, verify_ledger
from handoffd.policy.budget_report import budget_snapshot, open_readonly
from handoffd.service import EX_CONFIG
from handoffd.settings import state_dir
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

from tests.fakecloud import FakeCloud
from tests.system.daemonproc import (
    NOT_SERVING,
    POLICY,
    SERVING,
    DaemonFleet,
    DaemonProcess,
    cloud_target,
)

#: how long a daemon may take to exit beyond its grace period (interpreter teardown, ledger close)
EXIT_SLACK_S = 5.0


def _words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(n))


class HealthWatch:
    """A ``Health.Watch`` stream opened before the signal, collecting every status it sees."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.statuses: list[int] = []
        self._changed = asyncio.Event()
        self._call = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="")
        )
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(grpc.RpcError, asyncio.CancelledError):
            async for reply in self._call:
                self.statuses.append(int(reply.status))
                self._changed.set()

    async def wait_for(self, status: int, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while status not in self.statuses:
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        """Cancel the stream: an open Watch would otherwise hold the daemon's grace period."""
        self._call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def channel_to(daemon: DaemonProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"unix://{daemon.socket}") as channel:
        yield channel


def _stream_request(max_tokens: int) -> pb.ChatRequest:
    return pb.ChatRequest(
        messages=[pb.Message(role=pb.ROLE_USER, content="Tell me a long story please.")],
        params=pb.GenerationParams(max_tokens=max_tokens),
        handoff=pb.PREFER_CLOUD,
        client_request_id="sigterm",
    )


async def _sigterm_mid_stream(
    fleet: DaemonFleet, fake: FakeCloud, *, grace_s: float, words: int
) -> tuple[DaemonProcess, list[pb.ChatEvent], grpc.RpcError | None, list[int], int]:
    """Start a daemon, open a slow cloud stream, SIGTERM it after the first delta; return the
    daemon, the events the client got, the error that ended the stream (if any), the health
    statuses seen and the exit status."""
    config = fleet.config(
        grace_period_s=grace_s, cloud=cloud_target(fake.url), policy_files=[POLICY]
    )
    daemon = fleet.spawn(config)
    await daemon.wait_ready_async()
    events: list[pb.ChatEvent] = []
    error: grpc.RpcError | None = None
    async with channel_to(daemon) as channel:
        watch = HealthWatch(channel)
        await watch.wait_for(SERVING)
        call = pb_grpc.HandoffdStub(channel).ChatStream(_stream_request(words + 8))
        stream = aiter(call)
        try:
            while True:  # up to the first answer text: the stream is now in flight
                event = await anext(stream)
                events.append(event)
                if event.WhichOneof("event") == "delta" and event.delta.text:
                    break
            daemon.signal(signal.SIGTERM)
            await watch.wait_for(NOT_SERVING)
            await watch.close()
            async for event in stream:
                events.append(event)
        except grpc.RpcError as exc:
            error = exc
        rc = await daemon.wait_async(grace_s + EXIT_SLACK_S)
    return daemon, events, error, watch.statuses, rc


async def test_sigterm_lets_a_running_stream_finish_within_the_grace_period(
    fleet: DaemonFleet,
) -> None:
    """SIGTERM while a cloud answer streams: health turns NOT_SERVING, the stream still
    completes with its final event (it fits in the grace period), the handoff is ledgered, the
    process exits 0 and removes its socket."""
    words = 12
    with FakeCloud.start_in_thread(reply=_words(words), chunk_delay_s=0.15) as fake:
        daemon, events, error, statuses, rc = await _sigterm_mid_stream(
            fleet, fake, grace_s=30.0, words=words
        )
    assert error is None, f"the stream was cut: {error}"
    assert statuses[0] == SERVING
    assert NOT_SERVING in statuses
    final = events[-1]
    assert final.WhichOneof("event") == "final"
    assert final.final.route == pb.CLOUD
    assert final.final.text == _words(words)
    assert rc == 0, daemon.describe()
    assert not daemon.socket.exists()
    names = daemon.event_names()
    assert (
        names.index("server.stopping") < names.index("request.done") < names.index("server.stopped")
    )
    with LedgerReader(state_dir() / "ledger.sqlite3") as reader:
        outcome = reader.entries(limit=1)[0]
    assert (outcome.kind, outcome.outcome, outcome.intent_id) == (
        "outcome",
        "sent",
        final.final.ledger_id,
    )


async def test_sigterm_aborts_a_stream_that_outlasts_the_grace_period(
    fleet: DaemonFleet,
) -> None:
    """A stream that would run ~20 s gets a 1 s grace period: the client sees it end with an
    error and no final event, the process still exits 0 within grace + slack and removes its
    socket; the aborted handoff has its ``failed`` outcome in a ledger that verifies, and its
    budget reservation is settled at the worst case (the provider may have billed it)."""
    words = 150
    with FakeCloud.start_in_thread(reply=_words(words), chunk_delay_s=0.15) as fake:
        daemon, events, error, statuses, rc = await _sigterm_mid_stream(
            fleet, fake, grace_s=1.0, words=words
        )
    assert NOT_SERVING in statuses
    assert not any(e.WhichOneof("event") == "final" for e in events)
    assert error is not None, "the stream ended without an error or a final event"
    assert rc == 0, daemon.describe()
    assert not daemon.socket.exists()
    ledger = state_dir() / "ledger.sqlite3"
    assert verify_ledger(ledger).ok
    with LedgerReader(ledger) as reader:
        entries = reader.entries(limit=0, newest_first=False)
    assert [(e.kind, e.outcome) for e in entries] == [("intent", ""), ("outcome", "failed")]
    assert entries[1].intent_id == entries[0].id
    conn = await open_readonly(state_dir() / "budget.sqlite3")
    try:
        snapshot = await budget_snapshot(conn, None, time.time())
    finally:
        await conn.close()
    assert snapshot.open_reservations == ()
    assert [s.day_usd for s in snapshot.spend] == [pytest.approx(entries[0].estimated_cost_usd)]


def test_second_daemon_on_a_busy_socket_exits_78(fleet: DaemonFleet) -> None:
    """A second daemon pointed at the socket of a running one refuses to start: exit 78
    (EX_CONFIG, systemd does not restart it), a one-line message naming the socket, no
    traceback."""
    config = fleet.config()
    first = fleet.spawn(config, name="first")
    first.wait_ready()
    second = fleet.spawn(config, name="second")
    assert second.wait(60) == EX_CONFIG
    err = second.stderr_text()
    assert f"{first.socket}: another handoffd is already listening there" in err
    assert "Traceback" not in err
    assert first.running


def test_refused_second_daemon_leaves_the_first_reachable(fleet: DaemonFleet) -> None:
    """After a second daemon was refused the socket, the first daemon still answers on it."""
    config = fleet.config()
    first = fleet.spawn(config, name="first")
    first.wait_ready()
    second = fleet.spawn(config, name="second")
    assert second.wait(60) == EX_CONFIG
    assert first.socket.exists()
    first.wait_ready(timeout_s=10)


def test_refused_second_daemon_writes_nothing_to_the_ledger(fleet: DaemonFleet) -> None:
    """A daemon refused because another one serves the socket leaves the running daemon's
    ledger alone: the ledger has one writer, and no checkpoint appears from the refused one."""
    config = fleet.config(ledger={"checkpoint_every_s": 300})
    first = fleet.spawn(config, name="first")
    first.wait_ready()
    with LedgerReader(state_dir() / "ledger.sqlite3") as reader:
        before = len(reader.checkpoints())
    second = fleet.spawn(config, name="second")
    assert second.wait(60) == EX_CONFIG
    with LedgerReader(state_dir() / "ledger.sqlite3") as reader:
        assert len(reader.checkpoints()) == before


def test_stale_socket_file_is_replaced(fleet: DaemonFleet) -> None:
    """A socket file nobody listens on (left by a crash) is removed and the daemon serves on
    a fresh socket at the same path."""
    path = fleet.workdir / "h.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert stat.S_ISSOCK(path.lstat().st_mode)
    daemon = fleet.spawn(fleet.config())
    daemon.wait_ready()
    assert stat.S_ISSOCK(path.lstat().st_mode)
    assert "server.listen_unix" in daemon.event_names()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(5.0 + EXIT_SLACK_S) == 0


def test_non_socket_file_at_the_socket_path_is_not_touched(fleet: DaemonFleet) -> None:
    """A regular file where the socket should go is a configuration error (exit 78 with a
    message) and is left in place: the daemon only ever removes sockets."""
    path = fleet.workdir / "h.sock"
    path.write_text("not a socket")
    daemon = fleet.spawn(fleet.config())
    assert daemon.wait(60) == EX_CONFIG
    assert "exists and is not a socket" in daemon.stderr_text()
    assert path.read_text() == "not a socket"


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        pytest.param(
            "model:\n  providers: [CPUExecutionProvider]\nserver:\n  socket: {sock}\n"
            "  grace_periode_s: 3\n",
            "{cfg}:5:3: server.grace_periode_s: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            "server:\n  socket: {sock}\n   tcp: [oops\n",
            "{cfg}:3:7: invalid YAML",
            id="broken-yaml",
        ),
    ],
)
def test_bad_config_exits_78_with_file_and_line(fleet: DaemonFleet, body: str, expect: str) -> None:
    """An invalid config file stops the daemon at once with exit 78 and a message on stderr
    that points at FILE:LINE, without a Python traceback."""
    cfg = fleet.workdir / "bad.yaml"
    cfg.write_text(body.format(sock=fleet.workdir / "h.sock"))
    daemon = fleet.spawn(cfg, socket=fleet.workdir / "h.sock")
    assert daemon.wait(60) == EX_CONFIG
    err = daemon.stderr_text()
    assert expect.format(cfg=cfg) in err, err
    assert "Traceback" not in err
    assert not (fleet.workdir / "h.sock").exists()


def test_missing_model_folder_exits_78_after_listening(fleet: DaemonFleet, tmp_path: Path) -> None:
    """A model folder that does not exist is found while loading (after the sockets are up):
    still exit 78 with a message naming the folder and the fix, no traceback, socket removed."""
    missing = tmp_path / "no-model-here"
    config = fleet.config()
    text = config.read_text().replace(str(fleet.model), str(missing))
    config.write_text(text)
    daemon = fleet.spawn(config)
    assert daemon.wait(60) == EX_CONFIG
    err = daemon.stderr_text()
    assert f"model folder {missing} does not exist" in err
    assert "handoffctl model build-default" in err
    assert "Traceback" not in err
    assert not daemon.socket.exists()
