"""The ``metrics:`` section: an optional Prometheus endpoint, loopback only, off by default."""

from __future__ import annotations

from pydantic import field_validator

from handoffd.schema.base import Frozen

_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "[::1]", "localhost")


def parse_loopback_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` and insist on a loopback host. Raises ValueError with the fix."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9464, got {value!r}")
    if host not in _LOOPBACK_HOSTS:
        raise ValueError(
            f"the metrics endpoint must listen on loopback (127.0.0.1 or [::1]), got {host!r}: "
            "scrape it through a local agent or a reverse proxy"
        )
    if host == "localhost":
        host = "127.0.0.1"
    return host.strip("[]"), int(port)


class MetricsSettings(Frozen):
    """``metrics:`` — Prometheus text exposition over HTTP."""

    enabled: bool = False
    #: loopback address of the endpoint; port 0 picks a free port
    listen: str = "127.0.0.1:9464"

    @field_validator("listen")
    @classmethod
    def _loopback(cls, value: str) -> str:
        parse_loopback_listen(value)
        return value
