"""Retry-After parsing and the retry policy (pure functions, no network)."""

from __future__ import annotations

import email.utils

import pytest
from handoffd.cloud.retry import MAX_BACKOFF_S, RetryPolicy, parse_retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "30"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    """retry-after-ms (milliseconds) wins over Retry-After (seconds); junk and negative values
    mean no server-asked wait."""
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    """An HTTP-date Retry-After is the time until that date (never negative)."""
    now = 1_800_000_000.0
    later = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=now) == pytest.approx(7, abs=1)
    earlier = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after({"retry-after": earlier}, now=now) == 0.0


def test_policy_honours_server_wait_up_to_the_cap_only() -> None:
    """A server-asked wait up to the cap is used as is; above the cap there is no retry; after
    max_retries there is no retry either."""
    policy = RetryPolicy(max_retries=2, retry_after_cap_s=10, backoff_s=0.5)
    assert policy.delay_s(1, 2.0) == 2.0
    assert policy.delay_s(1, 10.0) == 10.0
    assert policy.delay_s(1, 10.5) is None
    assert policy.delay_s(1, float("inf")) is None
    assert policy.delay_s(3, 1.0) is None


def test_policy_backoff_doubles_with_jitter_and_a_ceiling() -> None:
    """Without a server wait: backoff_s doubling per retry, 0-25 % jitter below, at most
    MAX_BACKOFF_S."""
    policy = RetryPolicy(max_retries=10, retry_after_cap_s=10, backoff_s=0.5)
    for retry, base in ((1, 0.5), (2, 1.0), (3, 2.0), (6, MAX_BACKOFF_S)):
        for _ in range(20):
            delay = policy.delay_s(retry, None)
            assert delay is not None
            assert 0.75 * base <= delay <= base
