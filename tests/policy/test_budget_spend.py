"""The budget store's per-period aggregates: always equal to a scan of the reservations, kept by
triggers whoever writes, created on first use (also for a store made by schema 1), and a
reservation's SQLite work does not grow with the period's traffic.

Real SQLite files; the reference is ``SPEND_SQL``, the scan every reservation ran before.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from handoffd.errors import ResourceExhausted
from handoffd.policy import BudgetLedger
from handoffd.policy.budget import BudgetReservation
from handoffd.policy.budget_store import SCHEMA_VERSION, scanned_spent_nanos
from handoffd.policy.periods import window_at

from tests.policy.test_budget import Clock, at, open_ledger, policy

UTC = ZoneInfo("UTC")
# every kind of budget, global and per app; generous: the tests are about counting
ALL_KINDS = """\
limits:
  - {id: g.day, scope: global, period: day, usd: 1000}
  - {id: g.week, scope: global, period: week, usd: 1000}
  - {id: g.month, scope: global, period: month, usd: 1000}
  - {id: a.day, period: day, usd: 1000}
  - {id: a.week, period: week, usd: 1000}
  - {id: a.month, period: month, usd: 1000}
"""

# the schema the store had before the aggregates (migration 1, as the old code created it)
SCHEMA_1 = """
CREATE TABLE budget_reservations (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, target TEXT NOT NULL,
    request_id TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, expires_at REAL NOT NULL,
    reserved_nanos INTEGER NOT NULL CHECK (reserved_nanos >= 0),
    settled_nanos INTEGER CHECK (settled_nanos >= 0),
    state TEXT NOT NULL CHECK (state IN ('open', 'settled', 'released')), closed_at REAL
);
CREATE INDEX budget_reservations_time ON budget_reservations (created_at);
CREATE INDEX budget_reservations_app_time ON budget_reservations (app, created_at);
CREATE INDEX budget_reservations_open ON budget_reservations (expires_at) WHERE state = 'open';
PRAGMA user_version = 1;
"""


def insert_rows(path: Path, rows: list[tuple[str, float, float, int, int | None, str]]) -> None:
    """Write reservations (app, created_at, expires_at, reserved, settled, state) straight
    into the file, as another process would."""
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO budget_reservations (id, app, target, created_at, expires_at, "
            "reserved_nanos, settled_nanos, state) VALUES (?, ?, 'cheap', ?, ?, ?, ?, ?)",
            [(uuid.uuid4().hex, *row) for row in rows],
        )
    db.close()


def stale_aggregates(path: Path) -> list[tuple[object, ...]]:
    """Every ``budget_spend`` row whose total differs from the settled reservations it covers."""
    with sqlite3.connect(path) as db:
        found = db.execute(
            "SELECT s.scope, s.app, s.period, s.tz, s.period_start, s.settled_nanos, "
            "(SELECT COALESCE(SUM(r.settled_nanos), 0) FROM budget_reservations r "
            " WHERE r.state = 'settled' AND r.created_at >= s.period_start "
            " AND r.created_at < s.period_end AND (s.scope = 'global' OR r.app = s.app)) AS real "
            "FROM budget_spend s"
        ).fetchall()
    db.close()
    return [row for row in found if row[5] != row[6]]


def aggregate_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count = int(db.execute("SELECT COUNT(*) FROM budget_spend").fetchone()[0])
    db.close()
    return count


async def assert_matches_scan(ledger: BudgetLedger, text: str, tz: str, apps: list[str]) -> None:
    """Every budget of the policy, for every app, counts what the reference scan counts."""
    loaded = policy(text, tz=tz)
    now = ledger.clock()
    for app in apps:
        pol = loaded.for_app(app)
        for limit in pol.budgets:
            window = window_at(limit.period, now, pol.timezone)
            scope_app = app if limit.scope.value == "app" else None
            expected = await scanned_spent_nanos(ledger.connection, window, scope_app, now)
            got = await ledger.spent_usd(pol, limit, app)
            assert round(got * 1e9) == expected, (limit.id, app, tz)


async def test_store_of_schema_1_is_migrated_and_counts_the_same(tmp_path: Path) -> None:
    """A store written by the old code (schema 1, no aggregates) opens with the new code:
    the schema is upgraded, and every budget counts exactly the settled and open, unexpired
    reservations of its period, as the old scan did (released and expired ones not)."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1)
    db.close()
    now = at(UTC, 2026, 3, 18, 12)
    rng = random.Random(3)
    rows: list[tuple[str, float, float, int, int | None, str]] = []
    for _ in range(600):
        created = now - rng.uniform(0, 40 * 86400)  # this month, and February
        app = rng.choice(["a", "b", "c"])
        state = rng.choice(["settled", "settled", "settled", "open", "released"])
        expires = created + 900 if rng.random() < 0.9 else now + 60  # some still in flight
        settled = rng.randint(0, 10_000) if state == "settled" else None
        rows.append((app, created, expires, rng.randint(10_000, 20_000), settled, state))
    insert_rows(path, rows)
    clock = Clock(now)
    ledger = await open_ledger(path, clock)
    try:
        for tz in ("UTC", "America/New_York", "Asia/Kathmandu"):
            await assert_matches_scan(ledger, ALL_KINDS, tz, ["a", "b", "c", "nobody"])
        # after the migration, new settles keep the aggregates exact
        pol = policy(ALL_KINDS).for_app("b")
        res = await ledger.reserve(pol, app="b", target="cheap", prompt_tokens=10, max_tokens=10)
        await ledger.settle(res, prompt_tokens=10, completion_tokens=3)
        await assert_matches_scan(ledger, ALL_KINDS, "UTC", ["a", "b", "c"])
    finally:
        await ledger.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    db.close()
    assert aggregate_count(path) > 0
    assert stale_aggregates(path) == []


async def test_random_traffic_keeps_aggregates_equal_to_the_scan(tmp_path: Path) -> None:
    """Reserve, settle, settle at worst case, release and crash (never closed) in random order
    across apps, days, a week and a month boundary, in New York time: after every step each
    budget counts what the reference scan counts, and no aggregate row drifts."""
    path = tmp_path / "b.db"
    tz = "America/New_York"
    clock = Clock(at(ZoneInfo(tz), 2026, 3, 28, 9))  # a Saturday; March ends on Tuesday
    ledger = await open_ledger(path, clock, reservation_ttl_s=600.0)
    rng = random.Random(11)
    loaded = policy(ALL_KINDS, tz=tz)
    held: list[BudgetReservation] = []
    try:
        for step in range(250):
            clock.now += rng.uniform(0, 3000)
            roll = rng.random()
            if roll < 0.45 or not held:
                app = rng.choice(["a", "b"])
                held.append(
                    await ledger.reserve(
                        loaded.for_app(app), app=app, target="cheap",
                        prompt_tokens=rng.randint(1, 500), max_tokens=rng.randint(1, 500),
                    )
                )
            else:
                res = held.pop(rng.randrange(len(held)))
                if roll < 0.75:
                    used = rng.randint(0, 500)
                    await ledger.settle(res, prompt_tokens=used, completion_tokens=used)
                elif roll < 0.85:
                    await ledger.settle_worst_case(res)
                elif roll < 0.95:
                    await ledger.release(res)
                # else: left open, as a crashed daemon leaves it; it expires
            if step % 10 == 0:
                await assert_matches_scan(ledger, ALL_KINDS, tz, ["a", "b"])
        await assert_matches_scan(ledger, ALL_KINDS, tz, ["a", "b"])
    finally:
        await ledger.aclose()
    assert stale_aggregates(path) == []
    assert aggregate_count(path) > 6  # several days, two weeks, two months


async def test_rows_written_by_another_connection_are_counted(tmp_path: Path) -> None:
    """Settled reservations inserted into the file by another connection while the daemon has
    it open (a second process, a repair script) count at once: the triggers keep the
    aggregates, not the daemon's code path."""
    path = tmp_path / "b.db"
    pol = policy("limits:\n  - {id: budget.month, scope: global, period: month, usd: 0.01}\n")
    clock = Clock(at(UTC, 2026, 3, 18, 12))
    ledger = await open_ledger(path, clock)
    try:
        app = pol.for_app("a")
        res = await ledger.reserve(app, app="a", target="cheap", prompt_tokens=1, max_tokens=1)
        await ledger.settle(res, prompt_tokens=1, completion_tokens=1)
        month_start = at(UTC, 2026, 3, 1)
        insert_rows(
            path,
            [("z", month_start + i * 3600, month_start + i * 3600 + 900, 1000, 1_000_000,
              "settled") for i in range(8)],  # $0.008 more this month
        )
        assert await ledger.spent_usd(app, app.budgets[0], "a") == pytest.approx(0.008002)
        with pytest.raises(ResourceExhausted):
            await ledger.reserve(app, app="a", target="cheap", prompt_tokens=1000, max_tokens=1000)
        with sqlite3.connect(path) as db:  # a repair: one of them refunded
            db.execute("DELETE FROM budget_reservations WHERE app = 'z' AND created_at = ?",
                       (month_start,))
        db.close()
        assert await ledger.spent_usd(app, app.budgets[0], "a") == pytest.approx(0.007002)
    finally:
        await ledger.aclose()
    assert stale_aggregates(path) == []


async def test_reservation_work_does_not_grow_with_traffic(tmp_path: Path) -> None:
    """The SQLite work (virtual-machine instructions) of one reserve + settle is about the same
    with 5,000 settled reservations in the month as with none: no period is scanned."""
    path = tmp_path / "b.db"
    pol = policy(ALL_KINDS).for_app("a")
    clock = Clock(at(UTC, 2026, 3, 18, 12))
    ledger = await open_ledger(path, clock)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    async def one_pair() -> int:
        steps[0] = 0
        await ledger.connection.set_progress_handler(count, 1)
        res = await ledger.reserve(pol, app="a", target="cheap", prompt_tokens=5, max_tokens=5)
        await ledger.settle(res, prompt_tokens=5, completion_tokens=5)
        await ledger.connection.set_progress_handler(lambda: None, 1_000_000)
        return steps[0]

    try:
        await one_pair()  # creates this period's aggregate rows
        empty = await one_pair()
        month_start = at(UTC, 2026, 3, 1)
        span = clock.now - month_start
        insert_rows(
            path,
            [("a", month_start + span * i / 5000, month_start + span * i / 5000 + 900, 100, 10,
              "settled") for i in range(5000)],
        )
        full = await one_pair()
        reference = await scanned_spent_nanos(
            ledger.connection, window_at(pol.budgets[2].period, clock.now, UTC), None, clock.now
        )
    finally:
        await ledger.aclose()
    assert reference >= 50_000  # the rows are there and in this month
    assert full <= empty * 1.2 + 50, (empty, full)


async def test_refused_reservation_keeps_the_new_aggregate(tmp_path: Path) -> None:
    """A reservation refused for lack of budget still keeps the period's aggregate it created
    (reserving nothing), so a client retrying against an exhausted budget does not make every
    refusal sum the period again."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1)
    db.close()
    now = at(UTC, 2026, 3, 18, 12)
    insert_rows(path, [("a", now - 60, now + 840, 2_000_000, 2_000_000, "settled")])
    pol = policy("limits:\n  - {id: budget.day, scope: global, period: day, usd: 0.001}\n")
    ledger = await open_ledger(path, Clock(now))
    try:
        with pytest.raises(ResourceExhausted):
            await ledger.reserve(
                pol.for_app("a"), app="a", target="cheap", prompt_tokens=1, max_tokens=1
            )
        assert not ledger.connection.in_transaction
    finally:
        await ledger.aclose()
    assert aggregate_count(path) == 1
    assert stale_aggregates(path) == []
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM budget_reservations").fetchone()[0] == 1
    db.close()
