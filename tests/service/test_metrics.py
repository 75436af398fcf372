"""The metrics facade and its loopback-only Prometheus endpoint."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from handoffd.domain import Route
from handoffd.errors import (
    CloudUnavailable,
    ConfigError,
    InternalError,
    PolicyDenied,
    ResourceExhausted,
)
from handoffd.metrics import Metrics, Outcome, outcome_for
from handoffd.schema.metrics import MetricsSettings
from pydantic import ValidationError


def _sample(metrics: Metrics, line_start: str) -> float:
    for line in metrics.render().decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start}")


def test_requests_tokens_and_latency_are_recorded() -> None:
    """observe_request counts the request, its tokens and both latency histograms."""
    m = Metrics()
    m.observe_request(
        Route.CLOUD, Outcome.OK, ttft_s=0.3, total_s=1.2, prompt_tokens=40, completion_tokens=8
    )
    m.observe_request(Route.LOCAL, Outcome.OK, ttft_s=0.05, total_s=0.4, completion_tokens=5)
    m.observe_request(None, Outcome.DENIED)
    assert _sample(m, 'handoffd_requests_total{outcome="ok",route="cloud"}') == 1
    assert _sample(m, 'handoffd_requests_total{outcome="denied",route="none"}') == 1
    assert _sample(m, 'handoffd_tokens_total{kind="prompt",route="cloud"}') == 40
    assert _sample(m, 'handoffd_tokens_total{kind="completion",route="local"}') == 5
    assert _sample(m, 'handoffd_ttft_seconds_bucket{le="0.5",route="cloud"}') == 1
    assert _sample(m, 'handoffd_ttft_seconds_bucket{le="0.25",route="cloud"}') == 0
    assert _sample(m, 'handoffd_request_duration_seconds_count{route="local"}') == 1


def test_refusals_spend_limits_and_state() -> None:
    """Refusals and rate limits by rule, spend by target, gauges and breaker state."""
    m = Metrics()
    m.observe_refusal(("privacy.email.block", "labels.health"))
    m.observe_rate_limited(("rate.per_app",))
    m.observe_spend("openai", 0.25)
    m.observe_spend("openai", 0.5)
    m.observe_decode_speed(42.0)
    m.set_queue_depth(3)
    m.set_active_requests(2)
    m.set_breaker_state("openai", "open")
    m.set_ready(True)
    assert _sample(m, 'handoffd_refusals_total{rule="privacy.email.block"}') == 1
    assert _sample(m, 'handoffd_refusals_total{rule="labels.health"}') == 1
    assert _sample(m, 'handoffd_rate_limited_total{rule="rate.per_app"}') == 1
    assert _sample(m, 'handoffd_cloud_spend_usd_total{target="openai"}') == 0.75
    assert _sample(m, 'handoffd_engine_decode_tokens_per_second_bucket{le="50.0"}') == 1
    assert _sample(m, "handoffd_queue_depth") == 3
    assert _sample(m, "handoffd_active_requests") == 2
    assert _sample(m, "handoffd_ready") == 1
    open_state = 'handoffd_cloud_breaker_state{handoffd_cloud_breaker_state="open",target="openai"}'
    assert _sample(m, open_state) == 1
    with pytest.raises(ValueError, match="breaker state"):
        m.set_breaker_state("openai", "melted")
    with pytest.raises(ValueError, match="negative"):
        m.observe_spend("openai", -1)


def test_outcomes_follow_the_error_tree() -> None:
    """Errors map to bounded outcome labels."""
    assert outcome_for(None) is Outcome.OK
    assert outcome_for(PolicyDenied("no")) is Outcome.DENIED
    assert outcome_for(ResourceExhausted("slow down")) is Outcome.RATE_LIMITED
    assert outcome_for(CloudUnavailable("down")) is Outcome.UNAVAILABLE
    assert outcome_for(InternalError("bug")) is Outcome.ERROR
    assert outcome_for(ValueError("bug")) is Outcome.ERROR


def test_instances_do_not_share_series() -> None:
    """Each Metrics has its own registry (tests and embedded daemons do not collide)."""
    a, b = Metrics(), Metrics()
    a.set_queue_depth(7)
    assert _sample(b, "handoffd_queue_depth") == 0


def test_endpoint_serves_prometheus_text_on_loopback() -> None:
    """serve() on 127.0.0.1 port 0 answers a real HTTP scrape."""
    m = Metrics()
    m.set_queue_depth(5)
    server = m.serve("127.0.0.1:0")
    try:
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=10) as reply:
            body = reply.read().decode()
            assert reply.status == 200
    finally:
        server.close()
    assert "handoffd_queue_depth 5.0" in body


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "192.168.1.20:9464", "[::]:9464", "9464"])
def test_non_loopback_binds_are_refused(listen: str) -> None:
    """Both the config model and serve() refuse anything but a loopback address."""
    with pytest.raises(ValidationError):
        MetricsSettings(listen=listen)
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        Metrics().serve(listen)


def test_port_in_use_is_a_config_error() -> None:
    """A taken port fails with the key to change."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen"):
            Metrics().serve(f"127.0.0.1:{port}")
    finally:
        taken.close()


def test_metrics_are_off_by_default() -> None:
    """The endpoint is opt-in and defaults to loopback."""
    settings = MetricsSettings()
    assert settings.enabled is False
    assert settings.listen.startswith("127.0.0.1:")
