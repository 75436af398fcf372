"""The sd_notify protocol, spoken directly: one datagram per message to ``$NOTIFY_SOCKET``.

systemd reads ``KEY=VALUE`` lines from a ``SOCK_DGRAM`` Unix socket whose path it passes in
``$NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract namespace). Unlike the ``sdnotify``
package, failures are not swallowed: each is logged once per kind (``sd_notify.failed`` with the
errno) and reported through the return value, and the socket is non-blocking so a full receive
queue can never stall the event loop.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a cheap no-op that returns False.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

from handoffd.errors import ConfigError
from handoffd.logsetup import get_logger

log = get_logger(__name__)

#: systemd truncates STATUS= text it shows; keep ours short and on one line
MAX_STATUS_CHARS = 200


def _socket_address(value: str) -> str:
    """Turn a ``$NOTIFY_SOCKET`` value into an ``AF_UNIX`` address (abstract ``@`` handled)."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    raise ConfigError(
        f"NOTIFY_SOCKET={value!r} is neither an absolute path nor an abstract socket (@name); "
        "only AF_UNIX notification sockets are supported (vsock is not)"
    )


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as ``MONOTONIC_USEC=`` expects."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends sd_notify messages for this process.

    ``Notifier.from_env()`` reads ``$NOTIFY_SOCKET``; pass ``address`` to aim elsewhere (tests).
    Each method returns True when the datagram was handed to the kernel.
    """

    def __init__(self, address: str | None) -> None:
        self._address = _socket_address(address) if address else None
        self._sock: socket.socket | None = None
        self._failed_errnos: set[int] = set()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        """Whether a notification socket is configured (i.e. systemd is listening)."""
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields as one message. Returns False if nothing was delivered."""
        if self._address is None:
            return False
        for f in fields:
            if "=" not in f or "\n" in f:
                raise ValueError(f"sd_notify field must be one KEY=VALUE line, got {f!r}")
        payload = "\n".join(fields).encode()
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            err = exc.errno or 0
            if err not in self._failed_errnos:  # once per kind: the watchdog sends often
                self._failed_errnos.add(err)
                log.warning(
                    "sd_notify.failed",
                    errno=err,
                    error=os.strerror(err) if err else str(exc),
                    fields=[f.split("=", 1)[0] for f in fields],
                )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete (model loaded, ledger open) or a reload finished."""
        fields = ["READY=1"]
        if status is not None:
            fields.append(_status_field(status))
        return self.send(*fields)

    def status(self, text: str) -> bool:
        """What the daemon is doing now; shown by ``systemctl status``."""
        return self.send(_status_field(text))

    def reloading(self, status: str | None = "reloading policy") -> bool:
        """A reload began; follow it with :meth:`ready` when done."""
        fields = ["RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}"]
        if status is not None:
            fields.append(_status_field(status))
        return self.send(*fields)

    def stopping(self, status: str | None = "stopping") -> bool:
        """Shutdown began (streams are draining)."""
        fields = ["STOPPING=1"]
        if status is not None:
            fields.append(_status_field(status))
        return self.send(*fields)

    def watchdog(self) -> bool:
        """Keep-alive ping; :class:`handoffd.service.watchdog.LoopWatchdog` sends it."""
        return self.send("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start-up/shutdown time (e.g. while a large model loads)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status_field(text: str) -> str:
    one_line = " ".join(text.split())
    return f"STATUS={one_line[:MAX_STATUS_CHARS]}"
