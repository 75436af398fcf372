"""Rate limits: GCRA exact under concurrency, rejected requests consume nothing, retry hints,
token reconciliation, concurrency slots, shadow rules. Time is an injected clock."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from handoffd.errors import ResourceExhausted
from handoffd.policy import RateLimiter, RateTicket, policy_from_text
from handoffd.policy.ratelimit import Gcra
from handoffd.schema.policy import RateLimitRule
from structlog.testing import capture_logs

SECOND = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * SECOND

    def __call__(self) -> int:
        return self.now


def rules(text: str) -> tuple[RateLimitRule, ...]:
    policy = policy_from_text("version: 1\nrate_limits:\n" + textwrap.indent(text, "  "))
    return policy.defaults.rate_limits


@pytest.mark.parametrize("limit", [1, 7, 60, 99])
async def test_exactly_n_of_100_concurrent_requests_are_admitted(limit: int) -> None:
    """100 concurrent requests against an RPM limit of N admit exactly N (integer GCRA)."""
    limiter = RateLimiter(clock_ns=Clock())
    rpm = rules(f"- {{id: rate.rpm, requests_per_minute: {limit}}}\n")
    admitted = 0
    rejected: list[ResourceExhausted] = []

    async def request() -> None:
        nonlocal admitted
        await asyncio.sleep(0)
        try:
            limiter.admit(rpm, app="a", target="t", tokens=10)
        except ResourceExhausted as exc:
            rejected.append(exc)
        else:
            admitted += 1

    await asyncio.gather(*(request() for _ in range(100)))
    assert admitted == limit
    assert len(rejected) == 100 - limit
    assert all(exc.rule_ids == ("rate.rpm",) for exc in rejected)


def test_rejection_says_when_to_retry_and_consumes_nothing() -> None:
    """After a rejection, waiting exactly retry_after_s admits one request; the rejected ones
    used no quota (else the retry would be refused)."""
    clock = Clock()
    limiter = RateLimiter(clock_ns=clock)
    rpm = rules("- {id: rate.rpm, requests_per_minute: 6}\n")  # one per 10 s after the burst
    for _ in range(6):
        limiter.admit(rpm, app="a", target="t", tokens=1)
    clock.now += 3 * SECOND
    for _ in range(50):  # a storm of rejected requests
        with pytest.raises(ResourceExhausted) as info:
            limiter.admit(rpm, app="a", target="t", tokens=1)
    assert info.value.retry_after_s == pytest.approx(7.0)
    clock.now += 7 * SECOND
    limiter.admit(rpm, app="a", target="t", tokens=1)
    with pytest.raises(ResourceExhausted):
        limiter.admit(rpm, app="a", target="t", tokens=1)


def test_all_or_nothing_across_rules() -> None:
    """When one rule rejects, the other rules' quota is not consumed either."""
    clock = Clock()
    limiter = RateLimiter(clock_ns=clock)
    both = rules(
        "- {id: rate.rpm, requests_per_minute: 10}\n- {id: rate.tpm, tokens_per_minute: 100}\n"
    )
    limiter.admit(both, app="a", target="t", tokens=100)  # uses every token
    for _ in range(20):
        with pytest.raises(ResourceExhausted) as info:
            limiter.admit(both, app="a", target="t", tokens=50)
        assert info.value.rule_ids == ("rate.tpm",)
    rpm_only = tuple(r for r in both if r.id == "rate.rpm")
    for _ in range(9):  # 9 requests of the burst of 10 remain: the rejections took none
        limiter.admit(rpm_only, app="a", target="t", tokens=0)
    with pytest.raises(ResourceExhausted):
        limiter.admit(rpm_only, app="a", target="t", tokens=0)


def test_tokens_are_reconciled_with_real_usage() -> None:
    """Tokens charged at admission (prompt + max_tokens) are refunded down to the real usage."""
    clock = Clock()
    limiter = RateLimiter(clock_ns=clock)
    tpm = rules("- {id: rate.tpm, tokens_per_minute: 1000}\n")
    ticket = limiter.admit(tpm, app="a", target="t", tokens=1000)
    with pytest.raises(ResourceExhausted):
        limiter.admit(tpm, app="a", target="t", tokens=100)
    ticket.release(used_tokens=300)
    limiter.admit(tpm, app="a", target="t", tokens=700)
    with pytest.raises(ResourceExhausted):
        limiter.admit(tpm, app="a", target="t", tokens=1)


def test_request_larger_than_the_limit_is_never_admissible() -> None:
    """A request asking for more tokens than a whole minute allows is refused with no retry
    time and a hint to lower max_tokens."""
    limiter = RateLimiter(clock_ns=Clock())
    tpm = rules("- {id: rate.tpm, tokens_per_minute: 1000}\n")
    with pytest.raises(ResourceExhausted) as info:
        limiter.admit(tpm, app="a", target="t", tokens=1001)
    assert info.value.retry_after_s is None
    assert "lower max_tokens" in info.value.message


async def test_concurrency_slots_are_held_until_release() -> None:
    """max_concurrent admits that many at once; a release frees a slot; release is idempotent."""
    limiter = RateLimiter(clock_ns=Clock())
    conc = rules("- {id: rate.conc, max_concurrent: 2}\n")
    first = limiter.admit(conc, app="a", target="t", tokens=1)
    with limiter.admit(conc, app="a", target="t", tokens=1):
        with pytest.raises(ResourceExhausted) as info:
            limiter.admit(conc, app="a", target="t", tokens=1)
        assert info.value.retry_after_s is not None
    third = limiter.admit(conc, app="a", target="t", tokens=1)
    first.release()
    first.release()
    assert sum(limiter.inflight().values()) == 1
    third.release()
    assert limiter.inflight() == {}


def test_scopes_apps_and_targets_have_separate_buckets() -> None:
    """App-scoped rules count per app; target-scoped rules per target across apps and only
    for the listed targets; cloud-only rules ignore local requests."""
    limiter = RateLimiter(clock_ns=Clock())
    both = rules(
        textwrap.dedent(
            """\
            - {id: rate.app, requests_per_minute: 1}
            - {id: rate.t, scope: target, targets: [openai], requests_per_minute: 2}
            """
        )
    )
    limiter.admit(both, app="a", target="openai", tokens=1)
    limiter.admit(both, app="b", target="openai", tokens=1)
    with pytest.raises(ResourceExhausted) as info:
        limiter.admit(both, app="c", target="openai", tokens=1)
    assert info.value.rule_ids == ("rate.t",)
    with pytest.raises(ResourceExhausted) as info:
        limiter.admit(both, app="a", target="lan", tokens=1)
    assert info.value.rule_ids == ("rate.app",)
    limiter.admit(both, app="c", target="lan", tokens=1)
    for _ in range(5):
        limiter.admit(both, app="a", target=None, tokens=1)  # local answers: not counted


def test_applies_to_all_counts_local_requests() -> None:
    """An app rule with applies_to: all also limits requests answered on the device."""
    limiter = RateLimiter(clock_ns=Clock())
    local = rules("- {id: rate.all, requests_per_minute: 1, applies_to: all}\n")
    limiter.admit(local, app="a", target=None, tokens=1)
    with pytest.raises(ResourceExhausted):
        limiter.admit(local, app="a", target=None, tokens=1)


def test_shadow_rule_logs_and_never_rejects() -> None:
    """A shadow limit is counted and logged as ratelimit.shadow_rejected, never enforced."""
    limiter = RateLimiter(clock_ns=Clock())
    shadow = rules("- {id: rate.try, requests_per_minute: 1, shadow: true}\n")
    with capture_logs() as logs:
        tickets: list[RateTicket] = [
            limiter.admit(shadow, app="a", target="t", tokens=1) for _ in range(3)
        ]
    assert len(tickets) == 3
    assert limiter.shadow_rejected["rate.try"] == 2
    assert [e["event"] for e in logs].count("ratelimit.shadow_rejected") == 2


def test_gcra_spreads_admissions_after_the_burst() -> None:
    """After a full burst, GCRA admits one unit per period/limit, exactly on time."""
    bucket = Gcra(limit=3, period_ns=3 * SECOND)
    now = 10 * SECOND
    for _ in range(3):
        assert bucket.wait_ns(1, now) == 0
        bucket.consume(1, now)
    assert bucket.wait_ns(1, now) == SECOND
    assert bucket.wait_ns(1, now + SECOND - 1) == 1
    assert bucket.wait_ns(1, now + SECOND) == 0
