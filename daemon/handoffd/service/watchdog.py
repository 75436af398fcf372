"""The systemd watchdog, pinged from the asyncio event loop itself.

With ``WatchdogSec=`` systemd passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``) and restarts the
service if no ``WATCHDOG=1`` arrives within that time. :class:`LoopWatchdog` is an asyncio task
that pings every ``WATCHDOG_USEC / 2``: if anything blocks the loop (a synchronous ONNX run, a
blocking SQLite call, a deadlock), the task cannot run, the pings stop and systemd restarts the
daemon. That is the point: pinging from a helper thread would keep a dead daemon "alive".

An optional ``healthy()`` callback (e.g. "the engine worker is alive") can withhold pings too.
Late wake-ups are measured and logged (``watchdog.loop_lag``) so a slow loop is visible before it
is fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping

from handoffd.errors import ConfigError
from handoffd.logsetup import get_logger
from handoffd.service.notify import Notifier

log = get_logger(__name__)


def watchdog_timeout_s(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd set for this process, or None if there is none.

    None when ``$WATCHDOG_USEC`` is unset or ``$WATCHDOG_PID`` names another process (the
    variables were inherited, e.g. by a worker process).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        raise ConfigError(
            f"WATCHDOG_USEC={usec!r} is not an integer number of microseconds"
        ) from None
    if value <= 0:
        raise ConfigError(f"WATCHDOG_USEC={usec!r} must be positive")
    return value / 1_000_000


class LoopWatchdog:
    """Sends ``WATCHDOG=1`` every ``interval_s`` from an asyncio task on the running loop."""

    def __init__(
        self,
        notifier: Notifier,
        interval_s: float,
        *,
        healthy: Callable[[], bool] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval_s}")
        self._notifier = notifier
        self._interval_s = interval_s
        self._healthy = healthy
        self._task: asyncio.Task[None] | None = None
        self._pings = 0
        self._max_lag_s = 0.0
        self._withheld = False

    @classmethod
    def from_env(
        cls,
        notifier: Notifier,
        environ: Mapping[str, str] | None = None,
        *,
        healthy: Callable[[], bool] | None = None,
    ) -> LoopWatchdog | None:
        """A watchdog pinging at half of systemd's timeout, or None when systemd set none."""
        timeout = watchdog_timeout_s(environ)
        if timeout is None:
            return None
        return cls(notifier, timeout / 2, healthy=healthy)

    @property
    def interval_s(self) -> float:
        return self._interval_s

    @property
    def pings(self) -> int:
        """Pings sent so far."""
        return self._pings

    @property
    def max_lag_s(self) -> float:
        """The latest the loop has woken the watchdog task past its due time."""
        return self._max_lag_s

    def start(self) -> asyncio.Task[None]:
        """Start pinging (call from the running loop). The first ping is sent at once."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("watchdog already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sd-watchdog")
        log.info("watchdog.started", interval_s=self._interval_s)
        return self._task

    async def stop(self) -> None:
        """Stop pinging and wait for the task to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _is_healthy(self) -> bool:
        if self._healthy is None:
            return True
        try:
            return bool(self._healthy())
        except Exception as exc:  # a broken health check must withhold pings, not kill the task
            log.error("watchdog.health_check_failed", error_type=type(exc).__name__)
            return False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._is_healthy():
                if self._withheld:
                    log.info("watchdog.resumed")
                    self._withheld = False
                if self._notifier.watchdog():
                    self._pings += 1
            elif not self._withheld:
                log.warning("watchdog.withheld", reason="health check failed")
                self._withheld = True
            due = loop.time() + self._interval_s
            await asyncio.sleep(self._interval_s)
            lag = loop.time() - due
            self._max_lag_s = max(self._max_lag_s, lag)
            if lag > self._interval_s / 2:
                log.warning("watchdog.loop_lag", lag_s=round(lag, 3), interval_s=self._interval_s)
