"""SIGHUP → reload, with the matching sd_notify messages.

systemd 252 has no ``Type=notify-reload``, so ``ExecReload=/bin/kill -HUP $MAINPID`` sends
SIGHUP and the daemon tells systemd what happens: ``RELOADING=1`` + ``MONOTONIC_USEC=`` when the
reload starts, ``READY=1`` + ``STATUS=`` when it ends. A reload that fails (an invalid policy
file) keeps the running configuration, says so in ``STATUS=`` and the log, and still sends
``READY=1`` so the unit leaves the reloading state. Signals that arrive during a reload are
coalesced into one more reload after it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from handoffd.errors import HandoffdError
from handoffd.logsetup import get_logger
from handoffd.service.notify import Notifier

log = get_logger(__name__)

#: the reload callback returns the STATUS= text to show afterwards (e.g. "serving; policy ab12")
ReloadCallback = Callable[[], Awaitable[str]]


class ReloadHandler:
    """Runs ``reload()`` on SIGHUP (after :meth:`install`) or on :meth:`reload_now`."""

    def __init__(self, notifier: Notifier, reload: ReloadCallback) -> None:
        self._notifier = notifier
        self._reload = reload
        self._lock = asyncio.Lock()
        self._pending = False
        self._tasks: set[asyncio.Task[bool]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Handle SIGHUP on the running loop (call from the loop, once)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGHUP, self._on_signal)

    def uninstall(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGHUP)
            self._loop = None

    def _on_signal(self) -> None:
        if self._lock.locked():
            self._pending = True  # coalesce: one more reload after the current one
            return
        task = asyncio.get_running_loop().create_task(self.reload_now(), name="sighup-reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait for reloads started by signals to finish (for shutdown and tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def reload_now(self) -> bool:
        """Reload once (plus once more per signal that arrived meanwhile). True if all worked."""
        ok = True
        async with self._lock:
            while True:
                self._pending = False
                ok = await self._reload_once() and ok
                if not self._pending:
                    break
        return ok

    async def _reload_once(self) -> bool:
        self._notifier.reloading()
        log.info("reload.started")
        try:
            status = await self._reload()
        except HandoffdError as exc:
            log.error("reload.failed", error_type=type(exc).__name__, error=exc.message)
            self._notifier.ready(status=f"reload failed, previous configuration kept: {exc}")
            return False
        except Exception as exc:
            log.exception("reload.crashed", error_type=type(exc).__name__)
            self._notifier.ready(
                status="reload failed (internal error), previous configuration kept"
            )
            return False
        log.info("reload.done")
        self._notifier.ready(status=status)
        return True
