"""The sd_notify protocol against a real datagram socket."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
import structlog
from handoffd.errors import ConfigError
from handoffd.service.notify import MAX_STATUS_CHARS, Notifier

from tests.service.conftest import NotifyListener


@pytest.fixture
def notifier(notify_listener: NotifyListener) -> Iterator[Notifier]:
    """A Notifier aimed at the test's datagram socket, as systemd would set it up."""
    n = Notifier.from_env({"NOTIFY_SOCKET": notify_listener.address})
    yield n
    n.close()


def test_ready_status_stopping_arrive_as_datagrams(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """Each call sends one datagram of KEY=VALUE lines to $NOTIFY_SOCKET."""
    assert notifier.enabled
    assert notifier.status("loading model smollm2")
    assert notifier.ready(status="serving")
    assert notifier.stopping()
    assert notifier.extend_timeout(90)
    assert notify_listener.recv() == "STATUS=loading model smollm2"
    assert notify_listener.recv() == "READY=1\nSTATUS=serving"
    assert notify_listener.recv() == "STOPPING=1\nSTATUS=stopping"
    assert notify_listener.recv() == "EXTEND_TIMEOUT_USEC=90000000"


def test_reloading_carries_the_monotonic_clock(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC taken from CLOCK_MONOTONIC at the call."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = notify_listener.recv().split("\n")
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert lines[2] == "STATUS=reloading policy"


def test_abstract_namespace_socket() -> None:
    """A NOTIFY_SOCKET starting with '@' names a socket in the abstract namespace."""
    name = f"handoffd-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        n = Notifier("@" + name)
        assert n.watchdog()
        n.close()
        sock.settimeout(5)
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_status_is_one_short_line(notify_listener: NotifyListener, notifier: Notifier) -> None:
    """STATUS= text is flattened to one line and capped, so it cannot inject other fields."""
    notifier.status("line one\nREADY=1\n" + "x" * 1000)
    msg = notify_listener.recv()
    assert "\n" not in msg
    assert msg.startswith("STATUS=line one READY=1 x")
    assert len(msg) == len("STATUS=") + MAX_STATUS_CHARS


def test_outside_systemd_every_call_is_a_no_op() -> None:
    """Without NOTIFY_SOCKET nothing is sent and calls say so."""
    n = Notifier.from_env({})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog() is False


def test_send_failures_are_reported_not_swallowed() -> None:
    """A socket nobody listens on: send returns False and the failure is logged once per errno."""
    n = Notifier("/nonexistent-dir/notify")
    with structlog.testing.capture_logs() as logs:
        assert n.ready() is False
        assert n.watchdog() is False
    n.close()
    failures = [e for e in logs if e["event"] == "sd_notify.failed"]
    assert len(failures) == 1
    assert failures[0]["errno"] == 2  # ENOENT
    assert failures[0]["fields"] == ["READY"]


@pytest.mark.parametrize("bad", ["relative/path", "vsock:2:1234"])
def test_invalid_socket_address_is_a_config_error(bad: str) -> None:
    """Relative paths and vsock addresses are rejected with the reason."""
    with pytest.raises(ConfigError, match="NOTIFY_SOCKET"):
        Notifier(bad)


@pytest.mark.parametrize("bad", ["READY", "A=1\nB=2"])
def test_fields_must_be_single_key_value_lines(
    notify_listener: NotifyListener, notifier: Notifier, bad: str
) -> None:
    """A malformed field is a programming error, refused before anything is sent."""
    with pytest.raises(ValueError, match="KEY=VALUE"):
        notifier.send(bad)
    assert notify_listener.drain() == []
