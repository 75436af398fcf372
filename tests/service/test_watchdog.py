"""The event-loop watchdog: pings arrive while the loop runs and stop while it is blocked."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest
import structlog
from handoffd.errors import ConfigError
from handoffd.service.notify import Notifier
from handoffd.service.watchdog import LoopWatchdog, watchdog_timeout_s

from tests.service.conftest import NotifyListener

INTERVAL_S = 0.05


@pytest.fixture
async def notifier(notify_listener: NotifyListener) -> AsyncIterator[Notifier]:
    """A Notifier aimed at the test's datagram socket."""
    n = Notifier(notify_listener.address)
    yield n
    n.close()


async def _wait_for(predicate: object, within: float = 10.0) -> None:
    """Let the loop run until ``predicate()`` holds (generous timeout: CI may be busy)."""
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def test_timeout_comes_from_watchdog_usec_for_this_pid() -> None:
    """WATCHDOG_USEC applies only when WATCHDOG_PID is unset or names this process."""
    pid = str(os.getpid())
    assert watchdog_timeout_s({}) is None
    assert watchdog_timeout_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_timeout_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 2.0
    assert watchdog_timeout_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    for bad in ("soon", "0", "-5"):
        with pytest.raises(ConfigError, match="WATCHDOG_USEC"):
            watchdog_timeout_s({"WATCHDOG_USEC": bad})


def test_interval_is_half_the_timeout(notify_listener: NotifyListener) -> None:
    """from_env pings at WATCHDOG_USEC/2, and gives no watchdog when systemd set none."""
    n = Notifier(notify_listener.address)
    wd = LoopWatchdog.from_env(n, {"WATCHDOG_USEC": "10000000"})
    assert wd is not None
    assert wd.interval_s == 5.0
    assert LoopWatchdog.from_env(n, {}) is None
    n.close()


async def test_pings_keep_arriving_no_faster_than_the_interval(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """WATCHDOG=1 datagrams arrive repeatedly, spaced by at least the interval."""
    wd = LoopWatchdog(notifier, INTERVAL_S)
    started = time.monotonic()
    wd.start()
    try:
        messages = [await notify_listener.next() for _ in range(4)]
    finally:
        await wd.stop()
    elapsed = time.monotonic() - started
    assert messages == ["WATCHDOG=1"] * 4
    # the first ping goes out at once, then one per interval: 4 pings take >= 3 intervals
    assert elapsed >= 3 * INTERVAL_S - 0.002


async def test_pings_stop_while_the_loop_is_blocked(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """A blocked event loop sends no pings (so systemd would restart it); they resume after."""
    wd = LoopWatchdog(notifier, INTERVAL_S)
    wd.start()
    try:
        await _wait_for(lambda: wd.pings >= 2)
        notify_listener.drain()
        pings_before = wd.pings
        with structlog.testing.capture_logs() as logs:
            time.sleep(10 * INTERVAL_S)  # noqa: ASYNC251 - blocking the loop is the point
            assert notify_listener.drain() == []  # not one ping during ten intervals
            assert wd.pings == pings_before
            assert await notify_listener.next() == "WATCHDOG=1"  # the loop is free again
            await _wait_for(lambda: wd.pings > pings_before)
        assert wd.max_lag_s >= 8 * INTERVAL_S
        assert any(e["event"] == "watchdog.loop_lag" for e in logs)
    finally:
        await wd.stop()


async def test_unhealthy_check_withholds_pings(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """While healthy() is False no ping is sent; pings resume when it turns True."""
    checks = 0
    healthy = False

    def check() -> bool:
        nonlocal checks
        checks += 1
        return healthy

    wd = LoopWatchdog(notifier, INTERVAL_S, healthy=check)
    wd.start()
    try:
        await _wait_for(lambda: checks >= 3)
        assert notify_listener.drain() == []
        assert wd.pings == 0
        healthy = True
        assert await notify_listener.next() == "WATCHDOG=1"
    finally:
        await wd.stop()


async def test_failing_health_check_withholds_pings(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """A health check that raises counts as unhealthy; the watchdog task keeps running."""
    calls = 0

    def broken() -> bool:
        nonlocal calls
        calls += 1
        raise RuntimeError("engine worker gone")

    wd = LoopWatchdog(notifier, INTERVAL_S, healthy=broken)
    task = wd.start()
    try:
        await _wait_for(lambda: calls >= 3)
        assert not task.done()
        assert notify_listener.drain() == []
    finally:
        await wd.stop()


async def test_stop_ends_the_pings(notify_listener: NotifyListener, notifier: Notifier) -> None:
    """After stop() the task is gone and nothing more is sent."""
    wd = LoopWatchdog(notifier, INTERVAL_S)
    task = wd.start()
    await _wait_for(lambda: wd.pings >= 1)
    await wd.stop()
    assert task.done()
    notify_listener.drain()
    await asyncio.sleep(3 * INTERVAL_S)
    assert notify_listener.drain() == []
