"""CloudAdmission around a cloud call: rate limits then budget on entry, settle or release on
exit, and nothing consumed when either refuses."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from handoffd.errors import CloudUnavailable, ResourceExhausted
from handoffd.policy import BudgetLedger, CloudAdmission, RateLimiter, policy_from_text
from handoffd.schema.cloud import CloudPrices

POLICY = policy_from_text(
    "version: 1\ncloud: {allow: [cheap]}\n"
    "budgets:\n  limits:\n    - {id: budget.day, period: day, usd: 0.003}\n"
    "rate_limits:\n  - {id: rate.app, requests_per_minute: 2, max_concurrent: 1}\n"
).for_app("a")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


async def make(tmp_path: Path) -> CloudAdmission:
    ledger = await BudgetLedger.open(
        tmp_path / "b.db",
        {"cheap": CloudPrices(input=1.0, output=1.0)},
        durable=False,
        clock=lambda: 1e9,
    )
    return CloudAdmission(RateLimiter(clock_ns=Clock()), ledger)


def rows(tmp_path: Path) -> list[tuple[str, int | None]]:
    with sqlite3.connect(tmp_path / "b.db") as conn:
        found = conn.execute("SELECT state, settled_nanos FROM budget_reservations").fetchall()
    conn.close()
    return [(str(s), n) for s, n in found]


async def test_recorded_usage_is_settled_and_slots_freed(tmp_path: Path) -> None:
    """A call that records its usage is settled at the real cost; the concurrency slot is
    free again afterwards."""
    admission = await make(tmp_path)
    try:
        async with admission.hold(
            POLICY, app="a", target="cheap", prompt_tokens=500, max_tokens=1000
        ) as hold:
            with pytest.raises(ResourceExhausted) as info:  # max_concurrent 1 is taken
                async with admission.hold(
                    POLICY, app="a", target="cheap", prompt_tokens=1, max_tokens=1
                ):
                    pass
            assert info.value.rule_ids == ("rate.app",)
            hold.record(500, 200)
        assert hold.cost_usd == pytest.approx(0.0007)
        assert admission.limiter.inflight() == {}
    finally:
        await admission.ledger.aclose()
    assert rows(tmp_path) == [("settled", 700_000)]


async def test_budget_refusal_undoes_the_rate_limit_admission(tmp_path: Path) -> None:
    """A request the budget refuses does not use up the rate limit: with 2 requests per
    minute, two budget refusals still leave both requests for cheap calls."""
    admission = await make(tmp_path)
    try:
        for _ in range(2):
            with pytest.raises(ResourceExhausted) as info:
                async with admission.hold(
                    POLICY, app="a", target="cheap", prompt_tokens=2000, max_tokens=2000
                ):
                    pass
            assert info.value.rule_ids == ("budget.day",)
        for _ in range(2):
            async with admission.hold(
                POLICY, app="a", target="cheap", prompt_tokens=10, max_tokens=10
            ) as hold:
                hold.record(10, 10)
    finally:
        await admission.ledger.aclose()
    assert [state for state, _ in rows(tmp_path)] == ["settled", "settled"]


async def test_unreachable_cloud_releases_the_reservation(tmp_path: Path) -> None:
    """When the cloud could not be reached and no usage was recorded, nothing is charged."""
    admission = await make(tmp_path)
    try:
        with pytest.raises(CloudUnavailable):
            async with admission.hold(
                POLICY, app="a", target="cheap", prompt_tokens=100, max_tokens=100
            ) as hold:
                raise CloudUnavailable("cheap: connection refused")
        assert hold.cost_usd == 0.0
    finally:
        await admission.ledger.aclose()
    assert rows(tmp_path) == [("released", None)]


async def test_cancelled_call_is_settled_at_the_worst_case(tmp_path: Path) -> None:
    """A call cancelled mid-stream may have been billed: the worst case is settled."""
    admission = await make(tmp_path)
    started = asyncio.Event()

    async def call() -> None:
        async with admission.hold(
            POLICY, app="a", target="cheap", prompt_tokens=100, max_tokens=900
        ):
            started.set()
            await asyncio.Event().wait()  # the stream that never finishes

    try:
        task = asyncio.create_task(call())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert admission.limiter.inflight() == {}
    finally:
        await admission.ledger.aclose()
    assert rows(tmp_path) == [("settled", 1_000_000)]
