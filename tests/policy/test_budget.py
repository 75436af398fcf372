"""Budgets: reserve the worst case in BEGIN IMMEDIATE, settle the real cost, fail closed.

All against a real SQLite file; time is an injected clock (calendar periods in the policy's zone).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from handoffd.errors import PolicyDenied, ResourceExhausted
from handoffd.policy import BudgetLedger, policy_from_text
from handoffd.policy.budget_report import budget_snapshot, open_readonly
from handoffd.schema.cloud import CloudPrices
from structlog.testing import capture_logs

# 1 USD per 1M input and output tokens: 1000 tokens cost $0.001
PRICES = {"cheap": CloudPrices(input=1.0, output=1.0), "mystery": CloudPrices(input=1.0)}
NY = ZoneInfo("America/New_York")


def policy(budgets: str, tz: str = "UTC"):  # type: ignore[no-untyped-def]
    text = f"version: 1\ntimezone: {tz}\ncloud: {{allow: [cheap]}}\nbudgets:\n" + textwrap.indent(
        textwrap.dedent(budgets), "  "
    )
    return policy_from_text(text)


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(tz: ZoneInfo, *args: int) -> float:
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[misc, arg-type]


async def open_ledger(path: Path, clock: Clock, **kw: object) -> BudgetLedger:
    return await BudgetLedger.open(path, PRICES, clock=clock, durable=False, **kw)  # type: ignore[arg-type]


def store_sum(path: Path) -> tuple[int, int]:
    """(sum of settled nanos, count of open reservations) straight from the file."""
    with sqlite3.connect(path) as conn:
        settled = conn.execute(
            "SELECT COALESCE(SUM(settled_nanos), 0) FROM budget_reservations "
            "WHERE state = 'settled'"
        ).fetchone()[0]
        open_ = conn.execute(
            "SELECT COUNT(*) FROM budget_reservations WHERE state = 'open'"
        ).fetchone()[0]
    conn.close()
    return int(settled), int(open_)


async def test_reserve_then_settle_counts_real_cost(tmp_path: Path) -> None:
    """A reservation holds the worst case; settling replaces it by the real cost."""
    pol = policy("limits:\n  - {id: budget.day, period: day, usd: 1}\n").for_app("a")
    clock = Clock(at(ZoneInfo("UTC"), 2026, 3, 2, 12))
    ledger = await open_ledger(tmp_path / "b.db", clock)
    try:
        limit = pol.budgets[0]
        res = await ledger.reserve(
            pol, app="a", target="cheap", prompt_tokens=1000, max_tokens=9000
        )
        assert res.reserved_usd == pytest.approx(0.01)
        assert await ledger.spent_usd(pol, limit, "a") == pytest.approx(0.01)
        cost = await ledger.settle(res, prompt_tokens=1000, completion_tokens=500)
        assert cost == pytest.approx(0.0015)
        assert await ledger.spent_usd(pol, limit, "a") == pytest.approx(0.0015)
    finally:
        await ledger.aclose()
    assert store_sum(tmp_path / "b.db") == (1_500_000, 0)


async def test_concurrent_reservations_never_overspend(tmp_path: Path) -> None:
    """1,000 concurrent reserve/settle attempts against a $0.50 daily budget: the settled total
    stays within the budget, the store's sum (and its per-period aggregate) equals the settled
    costs exactly, nothing dangles."""
    pol = policy("limits:\n  - {id: budget.day, period: day, usd: 0.5}\n").for_app("a")
    clock = Clock(at(ZoneInfo("UTC"), 2026, 3, 2, 12))
    ledger = await open_ledger(tmp_path / "b.db", clock)
    rng = random.Random(7)
    settled_nanos: list[int] = []
    refused = 0
    refusals: set[tuple[str, ...]] = set()

    async def attempt(prompt: int, used: int) -> None:
        nonlocal refused
        try:
            res = await ledger.reserve(
                pol, app="a", target="cheap", prompt_tokens=prompt, max_tokens=1000
            )
        except ResourceExhausted as exc:
            refusals.add(exc.rule_ids)
            refused += 1
            return
        await asyncio.sleep(0)  # the cloud call
        usd = await ledger.settle(res, prompt_tokens=prompt, completion_tokens=used)
        settled_nanos.append(round(usd * 1e9))

    try:
        await asyncio.gather(
            *(attempt(rng.randint(10, 2000), rng.randint(0, 1000)) for _ in range(1000))
        )
    finally:
        await ledger.aclose()
    total, dangling = store_sum(tmp_path / "b.db")
    assert total == sum(settled_nanos)
    assert total <= 500_000_000
    with sqlite3.connect(tmp_path / "b.db") as db:  # the per-period aggregate agrees
        aggregates = db.execute("SELECT settled_nanos FROM budget_spend").fetchall()
    db.close()
    assert aggregates == [(total,)]
    assert dangling == 0
    assert refused > 0
    assert refusals == {("budget.day",)}
    assert len(settled_nanos) + refused == 1000


async def test_over_budget_names_rule_and_period_reset(tmp_path: Path) -> None:
    """Over budget raises ResourceExhausted with the rule id and the seconds until the period
    resets; nothing is reserved."""
    pol = policy("limits:\n  - {id: budget.day, period: day, usd: 0.001}\n").for_app("a")
    clock = Clock(at(ZoneInfo("UTC"), 2026, 3, 2, 23, 0))
    ledger = await open_ledger(tmp_path / "b.db", clock)
    try:
        await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
        with pytest.raises(ResourceExhausted) as info:
            await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=1, max_tokens=1)
    finally:
        await ledger.aclose()
    assert info.value.rule_ids == ("budget.day",)
    assert info.value.retry_after_s == pytest.approx(3600)
    assert "budget.day" in info.value.message
    assert store_sum(tmp_path / "b.db")[1] == 1


async def test_unknown_price_is_refused(tmp_path: Path) -> None:
    """A target without an output price (or not configured at all) is refused: fail closed."""
    pol = policy("limits: []\n").for_app("a")
    ledger = await open_ledger(tmp_path / "b.db", Clock(0.0))
    try:
        for target in ("mystery", "nowhere"):
            with pytest.raises(PolicyDenied) as info:
                await ledger.reserve(pol, app="a", target=target, prompt_tokens=1, max_tokens=1)
            assert info.value.rule_ids == ("budget.price_unknown",)
            assert "price_usd_per_mtok" in info.value.message
    finally:
        await ledger.aclose()


async def test_max_cost_per_request_is_enforced_at_reservation(tmp_path: Path) -> None:
    """A worst case above max_cost_per_request is refused with that rule's id."""
    pol = policy("max_cost_per_request: {id: budget.one, usd: 0.001}\n").for_app("a")
    ledger = await open_ledger(tmp_path / "b.db", Clock(0.0))
    try:
        await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
        with pytest.raises(PolicyDenied) as info:
            await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=501, max_tokens=500)
    finally:
        await ledger.aclose()
    assert info.value.rule_ids == ("budget.one",)


async def test_crashed_reservations_expire(tmp_path: Path) -> None:
    """A reservation never settled (the daemon crashed) stops counting after its TTL, also
    after a restart."""
    pol = policy("limits:\n  - {id: budget.day, period: day, usd: 0.001}\n").for_app("a")
    clock = Clock(at(ZoneInfo("UTC"), 2026, 3, 2, 8))
    ledger = await open_ledger(tmp_path / "b.db", clock, reservation_ttl_s=60.0)
    await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
    await ledger.aclose()  # the "crash": nothing settled or released
    ledger = await open_ledger(tmp_path / "b.db", clock, reservation_ttl_s=60.0)
    try:
        with pytest.raises(ResourceExhausted):
            await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=1, max_tokens=1)
        clock.now += 61
        await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
    finally:
        await ledger.aclose()


async def test_release_frees_the_reservation(tmp_path: Path) -> None:
    """A released reservation (the call failed before billing) no longer counts."""
    pol = policy("limits:\n  - {id: budget.day, period: day, usd: 0.001}\n").for_app("a")
    ledger = await open_ledger(tmp_path / "b.db", Clock(1e9))
    try:
        res = await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
        await ledger.release(res)
        await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
    finally:
        await ledger.aclose()


async def test_spend_survives_restart(tmp_path: Path) -> None:
    """Settled spend is in the file: a new ledger on the same file sees it."""
    pol = policy("limits:\n  - {id: budget.day, period: day, usd: 0.002}\n").for_app("a")
    clock = Clock(at(ZoneInfo("UTC"), 2026, 3, 2, 8))
    ledger = await open_ledger(tmp_path / "b.db", clock)
    res = await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=500, max_tokens=1000)
    await ledger.settle(res, prompt_tokens=500, completion_tokens=1000)
    await ledger.aclose()
    ledger = await open_ledger(tmp_path / "b.db", clock)
    try:
        assert await ledger.spent_usd(pol, pol.budgets[0], "a") == pytest.approx(0.0015)
        with pytest.raises(ResourceExhausted):
            await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
    finally:
        await ledger.aclose()


async def test_daily_budget_rolls_over_at_local_midnight(tmp_path: Path) -> None:
    """A daily budget in America/New_York resets at New York midnight, not at UTC midnight."""
    pol = policy("limits:\n  - {id: budget.day, period: day, usd: 0.001}\n", tz=NY.key)
    app = pol.for_app("a")
    clock = Clock(at(NY, 2026, 3, 2, 18, 30))  # 23:30 UTC
    ledger = await open_ledger(tmp_path / "b.db", clock)
    try:
        res = await ledger.reserve(app, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
        await ledger.settle(res, prompt_tokens=500, completion_tokens=500)
        clock.now = at(NY, 2026, 3, 2, 20, 0)  # 01:00 UTC next day: same New York day
        with pytest.raises(ResourceExhausted) as info:
            await ledger.reserve(app, app="a", target="cheap", prompt_tokens=1, max_tokens=1)
        assert info.value.retry_after_s == pytest.approx(4 * 3600)
        clock.now = at(NY, 2026, 3, 3, 0, 0, 1)
        await ledger.reserve(app, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
    finally:
        await ledger.aclose()


async def test_global_budget_counts_every_app_and_app_budget_one(tmp_path: Path) -> None:
    """Spend of app a counts against the global budget for app b, but not b's own budget."""
    pol = policy(
        """\
        limits:
          - {id: budget.all, scope: global, period: month, usd: 0.0015}
          - {id: budget.app, period: month, usd: 0.001}
        """
    )
    ledger = await open_ledger(tmp_path / "b.db", Clock(at(ZoneInfo("UTC"), 2026, 3, 2)))
    try:
        a, b = pol.for_app("a"), pol.for_app("b")
        await ledger.reserve(a, app="a", target="cheap", prompt_tokens=500, max_tokens=500)
        with pytest.raises(ResourceExhausted) as info:
            await ledger.reserve(b, app="b", target="cheap", prompt_tokens=500, max_tokens=500)
        assert info.value.rule_ids == ("budget.all",)
        await ledger.reserve(b, app="b", target="cheap", prompt_tokens=250, max_tokens=250)
    finally:
        await ledger.aclose()


async def test_shadow_budget_logs_and_does_not_refuse(tmp_path: Path) -> None:
    """A shadow budget that would refuse is logged as budget.shadow_exceeded and lets it pass."""
    pol = policy("limits:\n  - {id: budget.try, period: day, usd: 0, shadow: true}\n")
    ledger = await open_ledger(tmp_path / "b.db", Clock(1e9))
    try:
        with capture_logs() as logs:
            await ledger.reserve(
                pol.for_app("a"), app="a", target="cheap", prompt_tokens=5, max_tokens=5
            )
    finally:
        await ledger.aclose()
    assert [e["rule_id"] for e in logs if e["event"] == "budget.shadow_exceeded"] == ["budget.try"]


async def test_snapshot_reports_spend_reservations_and_left(tmp_path: Path) -> None:
    """The read-only snapshot shows each budget's settled, reserved and remaining amounts, the
    spend per app and the open reservations."""
    pol = policy(
        """\
        limits:
          - {id: budget.all, scope: global, period: week, usd: 1}
          - {id: budget.app, period: day, usd: 0.5}
        """
    )
    clock = Clock(at(ZoneInfo("UTC"), 2026, 3, 4, 12))
    ledger = await open_ledger(tmp_path / "b.db", clock)
    try:
        a = pol.for_app("a")
        res = await ledger.reserve(a, app="a", target="cheap", prompt_tokens=1000, max_tokens=1000)
        await ledger.settle(res, prompt_tokens=1000, completion_tokens=1000)
        await ledger.reserve(a, app="b", target="cheap", prompt_tokens=1000, max_tokens=3000)
    finally:
        await ledger.aclose()
    conn = await open_readonly(tmp_path / "b.db")
    try:
        snap = await budget_snapshot(conn, pol, clock.now)
    finally:
        await conn.close()
    by_key = {(s.rule_id, s.app): s for s in snap.budgets}
    assert set(by_key) == {("budget.all", None), ("budget.app", "a"), ("budget.app", "b")}
    total = by_key[("budget.all", None)]
    assert total.settled_usd == pytest.approx(0.002)
    assert total.reserved_usd == pytest.approx(0.004)
    assert total.left_usd == pytest.approx(0.994)
    assert total.period_label == "2026-W10"
    assert by_key[("budget.app", "a")].left_usd == pytest.approx(0.498)
    assert [(s.app, s.day_usd) for s in snap.spend] == [("a", pytest.approx(0.002)), ("b", 0.0)]
    assert [r.app for r in snap.open_reservations] == ["b"]
    assert snap.to_dict()["timezone"] == "UTC"


async def test_cancelled_reservations_do_not_wedge_the_store(tmp_path: Path) -> None:
    """Reservations cancelled at any point leave no transaction open: the next reservation
    works, and every row is either a completed reservation or absent."""
    pol = policy("limits:\n  - {id: budget.day, period: day, usd: 100}\n").for_app("a")
    ledger = await open_ledger(tmp_path / "b.db", Clock(1e9))
    try:
        for delay_steps in range(8):
            tasks = [
                asyncio.create_task(
                    ledger.reserve(pol, app="a", target="cheap", prompt_tokens=1, max_tokens=1)
                )
                for _ in range(10)
            ]
            for _ in range(delay_steps):
                await asyncio.sleep(0)
            for task in tasks[::2]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        res = await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=1, max_tokens=1)
        await ledger.settle(res, prompt_tokens=1, completion_tokens=1)
        assert not ledger.connection.in_transaction
    finally:
        await ledger.aclose()
    assert store_sum(tmp_path / "b.db")[0] == 2000
