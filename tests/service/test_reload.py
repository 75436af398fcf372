"""SIGHUP reloads: the notify messages around them, failures, and coalescing."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
from handoffd.errors import ConfigError
from handoffd.service.notify import Notifier
from handoffd.service.reload import ReloadHandler

from tests.service.conftest import NotifyListener


@pytest.fixture
async def notifier(notify_listener: NotifyListener) -> AsyncIterator[Notifier]:
    """A Notifier aimed at the test's datagram socket."""
    n = Notifier(notify_listener.address)
    yield n
    n.close()


async def test_sighup_reloads_between_reloading_and_ready(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """A real SIGHUP runs the reload; systemd sees RELOADING=1 first and READY=1 after."""
    reloads = 0

    async def reload() -> str:
        nonlocal reloads
        reloads += 1
        return "serving; policy 1234abcd"

    handler = ReloadHandler(notifier, reload)
    handler.install()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        first = await notify_listener.next()
        second = await notify_listener.next()
        await handler.wait_idle()
    finally:
        handler.uninstall()
    assert first.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert second == "READY=1\nSTATUS=serving; policy 1234abcd"
    assert reloads == 1


async def test_failed_reload_keeps_serving_and_says_why(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """An invalid policy: READY=1 still comes (the unit leaves 'reloading'), STATUS tells why."""

    async def reload() -> str:
        raise ConfigError("policies/cost.yaml:3:5: budget.daily_usd: must be >= 0")

    handler = ReloadHandler(notifier, reload)
    assert await handler.reload_now() is False
    assert (await notify_listener.next()).startswith("RELOADING=1")
    ready = await notify_listener.next()
    assert ready.startswith("READY=1\nSTATUS=reload failed, previous configuration kept: ")
    assert "cost.yaml:3:5" in ready


async def test_crashing_reload_is_reported_generically(
    notify_listener: NotifyListener, notifier: Notifier
) -> None:
    """A bug in the reload callback does not kill the handler; STATUS shows no internals."""

    async def reload() -> str:
        raise RuntimeError("secret internal detail")

    handler = ReloadHandler(notifier, reload)
    assert await handler.reload_now() is False
    await notify_listener.next()
    ready = await notify_listener.next()
    assert ready == ("READY=1\nSTATUS=reload failed (internal error), previous configuration kept")


async def test_signals_during_a_reload_are_coalesced(notifier: Notifier) -> None:
    """Three SIGHUPs during one reload cause exactly one more reload, not three."""
    gate = asyncio.Event()
    started = asyncio.Event()
    reloads = 0

    async def reload() -> str:
        nonlocal reloads
        reloads += 1
        started.set()
        await gate.wait()
        return "ok"

    handler = ReloadHandler(notifier, reload)
    handler.install()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(started.wait(), 10)
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.05)  # let the signal handlers run
        gate.set()
        await asyncio.wait_for(handler.wait_idle(), 10)
    finally:
        handler.uninstall()
    assert reloads == 2
