"""The circuit breaker: its state machine on a stepped clock, and the client failing fast."""

from __future__ import annotations

import asyncio

import pytest
from handoffd.cloud.breaker import CircuitBreaker
from handoffd.errors import CloudError, CloudUnavailable

from tests.cloud.conftest import MESSAGES, PARAMS, MakeClient
from tests.fakecloud import FakeCloud, HttpError


class SteppedClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_consecutive_failures_only() -> None:
    """Failures open the breaker only when N of them come in a row; a success resets the
    count."""
    clock = SteppedClock()
    b = CircuitBreaker(failures_to_open=3, open_for_s=10, clock=clock)
    for _ in range(2):
        permit = b.try_acquire()
        assert permit is not None
        assert b.record_failure(permit) is False
    permit = b.try_acquire()
    assert permit is not None
    b.record_success(permit)
    for _ in range(2):
        permit = b.try_acquire()
        assert permit is not None
        b.record_failure(permit)
    assert b.state == "closed"
    permit = b.try_acquire()
    assert permit is not None
    assert b.record_failure(permit) is True
    assert b.state == "open"
    assert b.try_acquire() is None


def test_half_open_lets_exactly_one_probe_through() -> None:
    """After open_for_s one caller gets a probe permit and others fail fast until it ends; a
    successful probe closes the breaker, a failed one opens it for another period."""
    clock = SteppedClock()
    b = CircuitBreaker(failures_to_open=1, open_for_s=10, clock=clock)
    first = b.try_acquire()
    assert first is not None
    b.record_failure(first)
    clock.now += 9.9
    assert b.state == "open"
    assert b.try_acquire() is None
    clock.now += 0.2
    assert b.state == "half_open"
    probe = b.try_acquire()
    assert probe is not None
    assert probe.probe
    assert b.try_acquire() is None
    assert b.record_failure(probe) is True
    assert b.state == "open"
    assert b.retry_in_s() == pytest.approx(10)
    clock.now += 10
    probe = b.try_acquire()
    assert probe is not None
    assert b.record_success(probe) is True
    assert b.state == "closed"
    assert b.consecutive_failures == 0


def test_probe_without_verdict_frees_the_slot() -> None:
    """A probe that ends without a verdict (deadline, cancelled) lets the next caller probe."""
    clock = SteppedClock()
    b = CircuitBreaker(failures_to_open=1, open_for_s=1, clock=clock)
    permit = b.try_acquire()
    assert permit is not None
    b.record_failure(permit)
    clock.now += 1
    probe = b.try_acquire()
    assert probe is not None
    b.release(probe)
    assert b.state == "half_open"
    assert b.try_acquire() is not None


async def test_client_opens_fails_fast_probes_and_closes(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """Through real calls: after failures_to_open failed calls the breaker opens and the next
    call fails fast without reaching the server; after open_for_s one probe goes through, and
    its success closes the breaker."""
    client = make_client(max_retries=0, breaker={"failures_to_open": 2, "open_for_s": 0.3})
    cloud.inject(HttpError(503), times=2)
    for _ in range(2):
        with pytest.raises(CloudUnavailable, match="HTTP 503"):
            await client.chat("fake", MESSAGES, PARAMS)
    assert client.breaker_state("fake") == "open"
    with pytest.raises(CloudUnavailable, match="circuit breaker open"):
        await client.chat("fake", MESSAGES, PARAMS)
    assert len(cloud.chat_bodies()) == 2
    await asyncio.sleep(0.35)
    assert client.breaker_state("fake") == "half_open"
    result = await client.chat("fake", MESSAGES, PARAMS)
    assert result.text.startswith("Paris")
    assert client.breaker_state("fake") == "closed"
    assert len(cloud.chat_bodies()) == 3


async def test_failed_probe_reopens(cloud: FakeCloud, make_client: MakeClient) -> None:
    """A probe that fails puts the breaker back to open (fail fast again)."""
    client = make_client(max_retries=0, breaker={"failures_to_open": 1, "open_for_s": 0.2})
    cloud.inject(HttpError(500), times=2)
    with pytest.raises(CloudUnavailable):
        await client.chat("fake", MESSAGES, PARAMS)
    await asyncio.sleep(0.25)
    with pytest.raises(CloudUnavailable, match="HTTP 500"):
        await client.chat("fake", MESSAGES, PARAMS)
    assert client.breaker_state("fake") == "open"
    with pytest.raises(CloudUnavailable, match="circuit breaker open"):
        await client.chat("fake", MESSAGES, PARAMS)
    assert len(cloud.chat_bodies()) == 2


async def test_client_errors_do_not_open_the_breaker(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """HTTP 400s mean the target is up: however many, the breaker stays closed."""
    client = make_client(breaker={"failures_to_open": 1, "open_for_s": 60})
    cloud.inject(HttpError(400, type="invalid_request_error"), times=3)
    for _ in range(3):
        with pytest.raises(CloudError):
            await client.chat("fake", MESSAGES, PARAMS)
    assert client.breaker_state("fake") == "closed"
