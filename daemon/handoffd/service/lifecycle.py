"""The daemon's life as systemd sees it, in one object the server drives step by step.

Start-up order (the server calls these; each step also goes to the log)::

    svc = ServiceLifecycle.from_env()          # reads $NOTIFY_SOCKET, $WATCHDOG_USEC
    await svc.start()                          # watchdog task on the loop; STATUS=starting
    svc.status("listening; loading model X")   # after the listeners are bound
    ... load the model in a worker thread, open the ledger ...
    svc.install_reload(reload_policy)          # SIGHUP -> RELOADING=1 ... READY=1
    svc.ready("serving X; policy ab12cd")      # READY=1 only now
    ... serve until SIGTERM ...
    svc.stopping("draining 3 streams")         # STOPPING=1
    await svc.close()                          # watchdog off, SIGHUP handler removed

The watchdog starts first, while the model still loads: loading runs in a thread, so the loop
stays free and pings keep coming; a start-up that blocks the loop is caught as early as a
running daemon that does. Outside systemd every call is a no-op apart from logging.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from handoffd.logsetup import get_logger
from handoffd.service.notify import Notifier
from handoffd.service.reload import ReloadCallback, ReloadHandler
from handoffd.service.watchdog import LoopWatchdog

log = get_logger(__name__)


class ServiceLifecycle:
    """sd_notify messages, the loop watchdog and SIGHUP reloads for one daemon run."""

    def __init__(
        self,
        notifier: Notifier,
        watchdog: LoopWatchdog | None,
    ) -> None:
        self.notifier = notifier
        self.watchdog = watchdog
        self._reload: ReloadHandler | None = None
        self._ready = False

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        healthy: Callable[[], bool] | None = None,
    ) -> ServiceLifecycle:
        """Read systemd's variables; ``healthy`` may withhold watchdog pings (engine dead)."""
        notifier = Notifier.from_env(environ)
        return cls(notifier, LoopWatchdog.from_env(notifier, environ, healthy=healthy))

    @property
    def under_systemd(self) -> bool:
        return self.notifier.enabled

    @property
    def is_ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        """Start pinging the watchdog (if systemd asked for one). Call from the running loop."""
        if self.watchdog is not None:
            self.watchdog.start()
        self.status("starting")

    def status(self, text: str) -> None:
        """What the daemon is doing now (``systemctl status`` shows it)."""
        log.info("service.status", status=text)
        self.notifier.status(text)

    def install_reload(self, reload: ReloadCallback) -> ReloadHandler:
        """Run ``reload`` on SIGHUP (``systemctl reload handoffd``)."""
        if self._reload is not None:
            raise RuntimeError("a reload handler is already installed")
        self._reload = ReloadHandler(self.notifier, reload)
        self._reload.install()
        return self._reload

    def ready(self, status: str) -> None:
        """The model is loaded and the ledger is open: systemd may consider us started."""
        self._ready = True
        log.info("service.ready", status=status)
        self.notifier.ready(status=status)

    def stopping(self, status: str = "stopping") -> None:
        log.info("service.stopping", status=status)
        self.notifier.stopping(status=status)

    async def close(self) -> None:
        """Stop the watchdog and the SIGHUP handler (wait for a running reload to finish)."""
        if self._reload is not None:
            self._reload.uninstall()
            await self._reload.wait_idle()
            self._reload = None
        if self.watchdog is not None:
            await self.watchdog.stop()
        self.notifier.close()
