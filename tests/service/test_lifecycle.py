"""A daemon's start-up, reload and shutdown as systemd sees them, over a real notify socket."""

from __future__ import annotations

import asyncio
import os
import signal

from handoffd.service.lifecycle import ServiceLifecycle

from tests.service.conftest import NotifyListener


async def test_startup_reload_shutdown_sequence(notify_listener: NotifyListener) -> None:
    """STATUS while starting, watchdog pings from the start, READY=1 last, reload, STOPPING=1."""
    svc = ServiceLifecycle.from_env(
        {"NOTIFY_SOCKET": notify_listener.address, "WATCHDOG_USEC": "200000"}
    )
    assert svc.under_systemd
    assert svc.watchdog is not None
    assert svc.watchdog.interval_s == 0.1
    await svc.start()
    svc.status("listening; loading model tiny")
    await asyncio.sleep(0)  # the model loads in a thread; the loop keeps running
    reloaded = asyncio.Event()

    async def reload() -> str:
        reloaded.set()
        return "serving tiny; policy 2"

    svc.install_reload(reload)
    svc.ready("serving tiny; policy 1")
    assert svc.is_ready
    os.kill(os.getpid(), signal.SIGHUP)
    await asyncio.wait_for(reloaded.wait(), 10)
    svc.stopping("draining")
    await svc.close()

    messages = [m for m in notify_listener.drain() if m != "WATCHDOG=1"]
    assert messages[:3] == [
        "STATUS=starting",
        "STATUS=listening; loading model tiny",
        "READY=1\nSTATUS=serving tiny; policy 1",
    ]
    assert messages[3].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert messages[4:] == ["READY=1\nSTATUS=serving tiny; policy 2", "STOPPING=1\nSTATUS=draining"]
    assert svc.watchdog.pings >= 1  # the first ping goes out as soon as the watchdog starts


async def test_outside_systemd_everything_is_a_no_op() -> None:
    """Without systemd's variables there is no watchdog and nothing is sent."""
    svc = ServiceLifecycle.from_env({})
    assert not svc.under_systemd
    assert svc.watchdog is None
    await svc.start()
    svc.ready("serving")
    svc.stopping()
    await svc.close()
