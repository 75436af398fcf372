"""Prometheus metrics behind a small typed facade (foundation: the one prometheus_client user).

Callers record what happened through :class:`Metrics` methods and never touch prometheus_client.
Each :class:`Metrics` has its own registry, so tests and several daemons in one process do not
collide. The endpoint is optional, off by default, and only ever binds a loopback address
(``metrics.listen``), served by prometheus_client's own threaded HTTP server.

Series (all prefixed ``handoffd_``)::

    requests_total{route,outcome}                counter
    refusals_total{rule}                         counter   policy refusals, by rule id
    rate_limited_total{rule}                     counter   rate-limit / budget rejections
    tokens_total{route,kind=prompt|completion}   counter
    cloud_spend_usd_total{target}                counter   settled cloud cost
    ttft_seconds{route}                          histogram request received -> first token
    request_duration_seconds{route}              histogram request received -> done
    engine_decode_tokens_per_second              histogram local decode speed per request
    queue_depth                                  gauge     requests waiting for the engine
    active_requests                              gauge
    cloud_breaker_state{target,handoffd_cloud_breaker_state}  enum (closed|open|half_open)
    auth_rejections_total{reason}                counter   unauthenticated / permission_denied
    ready                                        gauge     1 once the model is loaded

Handoff rate (PromQL)::

    sum(rate(handoffd_requests_total{route="cloud"}[5m])) / sum(rate(handoffd_requests_total[5m]))

Labels take bounded values only: routes and outcomes are enums, rules and targets come from the
device's policy files, never from requests.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from enum import StrEnum
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from handoffd.domain import Route
from handoffd.errors import (
    Cancelled,
    ConfigError,
    DeadlineExceeded,
    PermissionDenied,
    PolicyDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from handoffd.logsetup import get_logger
from handoffd.schema.metrics import parse_loopback_listen

log = get_logger(__name__)

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_SPEED_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
BREAKER_STATES = ("closed", "open", "half_open")


class Outcome(StrEnum):
    """How a request ended (the ``outcome`` label)."""

    OK = "ok"
    DENIED = "denied"  # the policy refused it
    RATE_LIMITED = "rate_limited"  # rate limit or budget
    UNAUTHORIZED = "unauthorized"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    ERROR = "error"


def outcome_for(error: BaseException | None) -> Outcome:
    """The outcome label for a request that raised ``error`` (None: it succeeded)."""
    if error is None:
        return Outcome.OK
    table: tuple[tuple[type[BaseException], Outcome], ...] = (
        (PolicyDenied, Outcome.DENIED),
        (ResourceExhausted, Outcome.RATE_LIMITED),
        (Unauthenticated, Outcome.UNAUTHORIZED),
        (PermissionDenied, Outcome.UNAUTHORIZED),
        (Cancelled, Outcome.CANCELLED),
        (DeadlineExceeded, Outcome.TIMEOUT),
        (Unavailable, Outcome.UNAVAILABLE),
    )
    for cls, outcome in table:
        if isinstance(error, cls):
            return outcome
    return Outcome.ERROR


def _route_label(route: Route | None) -> str:
    return route.value if route is not None else "none"


@dataclass(frozen=True)
class MetricsServer:
    """A running endpoint; :meth:`close` stops it."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Metrics:
    """The daemon's metrics. Every method is cheap and safe to call from the event loop."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "handoffd_requests", "Requests by route and outcome.", ["route", "outcome"], registry=r
        )
        self._refusals = Counter(
            "handoffd_refusals", "Requests refused by the policy, by rule.", ["rule"], registry=r
        )
        self._rate_limited = Counter(
            "handoffd_rate_limited",
            "Requests rejected by a rate limit or budget, by rule.",
            ["rule"],
            registry=r,
        )
        self._tokens = Counter(
            "handoffd_tokens", "Tokens by route and kind.", ["route", "kind"], registry=r
        )
        self._spend = Counter(
            "handoffd_cloud_spend_usd", "Settled cloud spend in USD.", ["target"], registry=r
        )
        self._ttft = Histogram(
            "handoffd_ttft_seconds",
            "Time from request received to first token.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._duration = Histogram(
            "handoffd_request_duration_seconds",
            "Time from request received to the last byte.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._decode_speed = Histogram(
            "handoffd_engine_decode_tokens_per_second",
            "Local engine decode speed per request.",
            buckets=_SPEED_BUCKETS,
            registry=r,
        )
        self._queue_depth = Gauge(
            "handoffd_queue_depth", "Requests waiting for the local engine.", registry=r
        )
        self._active = Gauge("handoffd_active_requests", "Requests being served.", registry=r)
        self._breaker = Enum(
            "handoffd_cloud_breaker_state",
            "Circuit breaker state per cloud target.",
            ["target"],
            states=list(BREAKER_STATES),
            registry=r,
        )
        self._auth_rejections = Counter(
            "handoffd_auth_rejections",
            "Calls refused before reaching a handler, by reason.",
            ["reason"],
            registry=r,
        )
        self._ready = Gauge("handoffd_ready", "1 once the model is loaded and serving.", registry=r)

    # -- requests -----------------------------------------------------------------------------

    def observe_request(
        self,
        route: Route | None,
        outcome: Outcome,
        *,
        ttft_s: float | None = None,
        total_s: float | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        """One finished request: counts, latencies and tokens. ``route`` None: never routed."""
        label = _route_label(route)
        self._requests.labels(label, Outcome(outcome).value).inc()
        if ttft_s is not None and ttft_s >= 0:
            self._ttft.labels(label).observe(ttft_s)
        if total_s is not None and total_s >= 0:
            self._duration.labels(label).observe(total_s)
        if prompt_tokens > 0:
            self._tokens.labels(label, "prompt").inc(prompt_tokens)
        if completion_tokens > 0:
            self._tokens.labels(label, "completion").inc(completion_tokens)

    def observe_refusal(self, rule_ids: tuple[str, ...]) -> None:
        """A policy refusal; every rule that took part is counted."""
        for rule in rule_ids or ("unknown",):
            self._refusals.labels(rule).inc()

    def observe_rate_limited(self, rule_ids: tuple[str, ...]) -> None:
        for rule in rule_ids or ("unknown",):
            self._rate_limited.labels(rule).inc()

    def observe_spend(self, target: str, usd: float) -> None:
        """Settled cloud cost of one request."""
        if usd < 0:
            raise ValueError(f"spend must not be negative, got {usd}")
        self._spend.labels(target).inc(usd)

    def observe_decode_speed(self, tokens_per_s: float) -> None:
        if tokens_per_s > 0:
            self._decode_speed.observe(tokens_per_s)

    def observe_auth_rejection(self, reason: str) -> None:
        """``unauthenticated`` or ``permission_denied``."""
        self._auth_rejections.labels(reason).inc()

    # -- state --------------------------------------------------------------------------------

    def set_queue_depth(self, depth: int) -> None:
        self._queue_depth.set(depth)

    def set_active_requests(self, active: int) -> None:
        self._active.set(active)

    def set_breaker_state(self, target: str, state: str) -> None:
        if state not in BREAKER_STATES:
            raise ValueError(f"breaker state must be one of {BREAKER_STATES}, got {state!r}")
        self._breaker.labels(target).state(state)

    def set_ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    # -- exposition ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)

    def serve(self, listen: str) -> MetricsServer:
        """Start the endpoint on ``listen`` (``HOST:PORT``, loopback only; port 0 = any free).

        Blocking (binds a socket): call at start-up. Raises :class:`ConfigError` for a
        non-loopback address or a port in use.
        """
        try:
            host, port = parse_loopback_listen(listen)
        except ValueError as exc:
            raise ConfigError(f"metrics.listen: {exc}") from None
        if not ipaddress.ip_address(host).is_loopback:
            raise ConfigError(f"metrics.listen: {host} is not a loopback address")
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"metrics.listen: cannot listen on {listen}: {exc.strerror}; "
                "choose another port or turn metrics.enabled off"
            ) from None
        bound = MetricsServer(host, int(server.server_port), server, thread)
        log.info("metrics.listening", url=bound.url)
        return bound
