"""Cloud spend budgets: reserve the worst case before a call, settle the real cost after.

Facts behind the design (200 concurrent requests against a $5 budget): check-then-record spent
$11.5; reserving inside ``BEGIN IMMEDIATE``, then calling, then settling never overspent. So:

1. :meth:`BudgetLedger.reserve` opens ``BEGIN IMMEDIATE`` (the write lock, also against other
   processes), reads the spend of every applicable budget (the app's and the global ones; day,
   week, month in the policy's time zone) from per-period aggregates plus the open reservations
   (:mod:`handoffd.policy.budget_spend`: the cost does not grow with traffic), and inserts a
   reservation of the worst case (prompt + max_tokens at the target's prices) only if every
   enforced budget still has room; otherwise it raises :class:`ResourceExhausted` naming the
   rule and when the period resets.
2. The caller makes the cloud call, then :meth:`settle` records the real cost (or
   :meth:`release` frees the reservation if nothing was billed).
3. A reservation expires (``reservation_ttl_s``): a daemon that crashed mid-call stops holding
   budget once it lapses.

Spend counts each reservation in the period it was made: settled ones at their real cost, open
unexpired ones at their reserved worst case. Money is integer nano-dollars (exact sums). An
unknown price refuses the request (fail closed). The store is one SQLite file (WAL) with one
writer connection owned by this object (aiosqlite's thread); state survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from handoffd.errors import ConfigError, PolicyDenied, ResourceExhausted
from handoffd.logsetup import get_logger
from handoffd.policy.app_policy import AppPolicy
from handoffd.policy.budget_spend import SpendKey, current_spend
from handoffd.policy.budget_store import migrate
from handoffd.policy.periods import PeriodWindow, window_at
from handoffd.policy.prices import (
    cost_nanos,
    nanos_to_usd,
    unknown_prices,
    usd_to_nanos,
    worst_case_nanos,
)
from handoffd.schema.cloud import CloudPrices
from handoffd.schema.policy import BudgetLimit, BudgetScope
from handoffd.settings import state_dir

_log = get_logger(__name__)

PRICE_UNKNOWN_RULE_ID = "budget.price_unknown"
DEFAULT_TTL_S = 900.0
BUDGET_DB_NAME = "budget.sqlite3"


def default_budget_path() -> Path:
    """``<state dir>/budget.sqlite3``."""
    return state_dir() / BUDGET_DB_NAME

@dataclass(frozen=True, slots=True)
class BudgetReservation:
    """A worst-case hold on every applicable budget, until settled, released or expired."""

    id: str
    app: str
    target: str
    reserved_nanos: int
    created_at: float
    expires_at: float
    prices: CloudPrices

    @property
    def reserved_usd(self) -> float:
        return nanos_to_usd(self.reserved_nanos)


class BudgetLedger:
    """The daemon's budget store: one writer connection, transactions serialized on it."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: Path,
        prices: Mapping[str, CloudPrices],
        *,
        reservation_ttl_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._conn = conn
        self.path = path
        self._prices = dict(prices)
        self._ttl = reservation_ttl_s
        self._clock = clock
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: Path,
        prices: Mapping[str, CloudPrices],
        *,
        reservation_ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
        durable: bool = True,
    ) -> BudgetLedger:
        """Open (creating if needed) the store at ``path``. ``prices``: per cloud target, from
        the daemon config. ``durable``: fsync every commit (``synchronous=FULL``), so a power
        loss cannot forget recorded spend; ``False`` (``NORMAL``) is faster."""
        if reservation_ttl_s <= 0:
            raise ConfigError(f"reservation_ttl_s must be > 0, got {reservation_ttl_s}")
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, aiosqlite.Error) as exc:
            raise ConfigError(f"{path}: cannot open the budget store: {exc}") from None
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            await conn.execute("PRAGMA busy_timeout = 5000")
            await migrate(conn)
        except aiosqlite.Error as exc:
            await conn.close()
            raise ConfigError(f"{path}: cannot use the budget store: {exc}") from None
        return cls(conn, path, prices, reservation_ttl_s=reservation_ttl_s, clock=clock)

    async def aclose(self) -> None:
        async with self._lock:
            await self._conn.close()

    async def reserve(
        self,
        policy: AppPolicy,
        *,
        app: str,
        target: str,
        prompt_tokens: int,
        max_tokens: int,
        request_id: str = "",
    ) -> BudgetReservation:
        """Hold the worst case of a call of ``app`` to ``target`` against every budget of
        ``policy``, or raise :class:`ResourceExhausted` (over budget; ``retry_after_s`` is when
        the period resets) or :class:`PolicyDenied` (unknown price, or above
        ``max_cost_per_request``)."""
        prices = self._known_prices(target)
        worst = worst_case_nanos(prices, prompt_tokens, max_tokens)
        _check_max_cost(policy, app, target, worst)
        reservation: BudgetReservation | None = None
        async with self._lock:
            now = self._clock()
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                over = await self._over_budget(policy, app, worst, now)
                if over:
                    # nothing reserved; keep any period aggregate created on the way, so that
                    # refused requests do not each sum the period again
                    await self._conn.execute("COMMIT")
                else:
                    reservation = BudgetReservation(
                        id=uuid.uuid4().hex,
                        app=app,
                        target=target,
                        reserved_nanos=worst,
                        created_at=now,
                        expires_at=now + self._ttl,
                        prices=prices,
                    )
                    await self._conn.execute(
                        "INSERT INTO budget_reservations (id, app, target, request_id, "
                        "created_at, expires_at, reserved_nanos, state) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
                        (reservation.id, app, target, request_id, now, reservation.expires_at,
                         worst),
                    )
                    await self._conn.execute("COMMIT")
            except BaseException:
                # statements already queued on the connection's thread still run (even when
                # this task was cancelled), so always queue a ROLLBACK behind them
                await asyncio.shield(self._rollback_quietly())
                raise
        if reservation is None:
            raise _exhausted(over, app, worst, now)
        _log.debug("budget.reserved", app=app, target=target, reserved_nanos=worst)
        return reservation

    async def _rollback_quietly(self) -> None:
        with contextlib.suppress(aiosqlite.Error):
            await self._conn.execute("ROLLBACK")

    def _known_prices(self, target: str) -> CloudPrices:
        prices = self._prices.get(target)
        missing = unknown_prices(prices)
        if prices is None or missing:
            raise PolicyDenied(
                f"cloud target {target!r} has no known {' and '.join(missing)} price: set "
                f"cloud.targets.{target}.price_usd_per_mtok in the daemon config (requests to a "
                "target with unknown prices are refused)",
                rule_ids=(PRICE_UNKNOWN_RULE_ID,),
            )
        return prices

    async def _over_budget(
        self, policy: AppPolicy, app: str, worst: int, now: float
    ) -> list[tuple[BudgetLimit, PeriodWindow, int]]:
        keys = [_spend_key(policy, limit, app, now) for limit in policy.budgets]
        spend = await current_spend(self._conn, keys, str(policy.timezone), now)
        over: list[tuple[BudgetLimit, PeriodWindow, int]] = []
        for limit, key in zip(policy.budgets, keys, strict=True):
            spent = spend[key]
            if spent + worst <= usd_to_nanos(limit.usd):
                continue
            if limit.shadow:
                _log.info("budget.shadow_exceeded", rule_id=limit.id, app=app, spent_nanos=spent)
                continue
            over.append((limit, key.window, spent))
        return over

    async def settle(
        self,
        reservation: BudgetReservation,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        cached_prompt_tokens: int = 0,
    ) -> float:
        """Record the real cost of the call (at the prices of the reservation); returns USD.
        A reservation that expired meanwhile is still settled: the money was spent."""
        cost = cost_nanos(
            reservation.prices, prompt_tokens, completion_tokens, cached_prompt_tokens
        )
        await self._record(reservation, cost)
        return nanos_to_usd(cost)

    async def settle_worst_case(self, reservation: BudgetReservation) -> float:
        """Settle at the reserved worst case: for calls whose usage is unknown but that may
        have been billed (cancelled mid-stream). Returns USD."""
        await self._record(reservation, reservation.reserved_nanos)
        return reservation.reserved_usd

    async def _record(self, reservation: BudgetReservation, cost: int) -> None:
        async with self._lock:
            cursor = await self._conn.execute(
                "UPDATE budget_reservations SET state = 'settled', settled_nanos = ?, "
                "closed_at = ? WHERE id = ? AND state != 'settled'",
                (cost, self._clock(), reservation.id),
            )
            changed = cursor.rowcount
            await cursor.close()
        if changed != 1:
            _log.warning("budget.settle_unknown", reservation=reservation.id)
        if cost > reservation.reserved_nanos:
            _log.warning(
                "budget.settled_above_reservation",
                reservation=reservation.id,
                reserved_nanos=reservation.reserved_nanos,
                settled_nanos=cost,
            )

    async def release(self, reservation: BudgetReservation) -> None:
        """Free a reservation whose call billed nothing (failed before the cloud answered)."""
        async with self._lock:
            cursor = await self._conn.execute(
                "UPDATE budget_reservations SET state = 'released', closed_at = ? "
                "WHERE id = ? AND state = 'open'",
                (self._clock(), reservation.id),
            )
            await cursor.close()

    async def spent_usd(self, policy: AppPolicy, limit: BudgetLimit, app: str) -> float:
        """What ``limit`` has counted in its current period (settled + open reservations)."""
        async with self._lock:
            now = self._clock()
            key = _spend_key(policy, limit, app, now)
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                spend = await current_spend(self._conn, [key], str(policy.timezone), now)
                await self._conn.execute("COMMIT")
            except BaseException:
                await asyncio.shield(self._rollback_quietly())
                raise
        return nanos_to_usd(spend[key])

    @property
    def connection(self) -> aiosqlite.Connection:
        """The writer connection (for :mod:`handoffd.policy.budget_report` reads)."""
        return self._conn

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock


def _spend_key(policy: AppPolicy, limit: BudgetLimit, app: str, now: float) -> SpendKey:
    window = window_at(limit.period, now, policy.timezone)
    return SpendKey(window, app if limit.scope is BudgetScope.APP else None)


def _check_max_cost(policy: AppPolicy, app: str, target: str, worst: int) -> None:
    limit = policy.max_cost_per_request
    if limit is None or worst <= usd_to_nanos(limit.usd):
        return
    message = (
        f"the request may cost up to ${nanos_to_usd(worst):.6f} on {target!r}, above the "
        f"${limit.usd} allowed per request (rule {limit.id!r}): lower max_tokens"
    )
    if limit.shadow:
        _log.info("budget.shadow_exceeded", rule_id=limit.id, app=app, worst_nanos=worst)
        return
    raise PolicyDenied(message, rule_ids=(limit.id,))


def _exhausted(
    over: list[tuple[BudgetLimit, PeriodWindow, int]], app: str, worst: int, now: float
) -> ResourceExhausted:
    limit, window, spent = over[0]
    retry = max(w.seconds_left(now) for _, w, _ in over)
    who = f"app {app!r}" if limit.scope is BudgetScope.APP else "all apps"
    message = (
        f"budget {limit.id!r} (${limit.usd} per {limit.period.value} for {who}) has "
        f"${nanos_to_usd(max(usd_to_nanos(limit.usd) - spent, 0)):.6f} left this period "
        f"({window.label}); this request may cost up to ${nanos_to_usd(worst):.6f}: the period "
        f"resets in {retry:.0f} s, or lower max_tokens"
    )
    rule_ids = tuple(dict.fromkeys(lim.id for lim, _, _ in over))
    _log.info("budget.exhausted", rule_ids=rule_ids, app=app, retry_after_s=round(retry, 1))
    return ResourceExhausted(message, retry_after_s=retry, rule_ids=rule_ids)
