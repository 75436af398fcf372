"""Spend of the current budget periods, read in O(budgets + in-flight calls), not O(traffic).

What a budget counts in a period (the definition, :data:`handoffd.policy.budget_store.SPEND_SQL`):
each reservation made in the period, at its real cost once settled, at its worst case while
open and unexpired, not at all once released or expired. Read here as two parts:

* **settled**: one row of ``budget_spend`` per (scope, app, period kind, time zone, period
  start), kept equal to the sum of the settled reservations it covers by triggers on
  ``budget_reservations`` (same transaction as the settle). A row a reservation needs and that
  does not exist yet (a new period, app or time zone; a store migrated from schema 1) is created
  by summing the period's settled reservations once.
* **open**: the open reservations whose expiry is still ahead, through the partial index on
  ``expires_at WHERE state = 'open'``: the calls in flight now. Reservations of a crashed
  daemon stay ``open`` but fall out of that range when they expire, so they stop counting
  without being touched or scanned.

Call :func:`current_spend` inside a write transaction (``BEGIN IMMEDIATE``): the rows it
creates and the reservation the caller then inserts must see the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from handoffd.policy.periods import PeriodWindow

_SETTLED_SQL = """
SELECT scope, app, period, period_start, settled_nanos FROM budget_spend
WHERE period_end > :now AND period_start <= :now AND tz = :tz
"""

_BACKFILL_SQL = """
SELECT COALESCE(SUM(settled_nanos), 0) FROM budget_reservations
WHERE state = 'settled' AND created_at >= :start AND created_at < :end
"""

_INSERT_SQL = """
INSERT INTO budget_spend (scope, app, period, tz, period_start, period_end, settled_nanos)
VALUES (:scope, :app, :period, :tz, :start, :end, :settled)
"""

_OPEN_SQL = """
SELECT app, created_at, reserved_nanos FROM budget_reservations
INDEXED BY budget_reservations_open
WHERE state = 'open' AND expires_at > :now
"""


@dataclass(frozen=True, slots=True)
class SpendKey:
    """One budget's current period: ``window`` for ``app`` (None: every app)."""

    window: PeriodWindow
    app: str | None

    @property
    def row_key(self) -> tuple[str, str, str, float]:
        """(scope, app, period, start) as ``budget_spend`` stores them."""
        scope = "global" if self.app is None else "app"
        return scope, self.app or "", self.window.period.value, self.window.start

    def covers(self, app: str, created_at: float) -> bool:
        """Whether a reservation of ``app`` made at ``created_at`` counts here."""
        in_period = self.window.start <= created_at < self.window.end
        return in_period and (self.app is None or self.app == app)


async def current_spend(
    conn: aiosqlite.Connection, keys: Sequence[SpendKey], tz: str, now: float
) -> dict[SpendKey, int]:
    """Nano-USD counted now in each of ``keys`` (windows that contain ``now``, computed in time
    zone ``tz``): settled spend from the aggregates plus open unexpired reservations."""
    wanted = {key.row_key: key for key in keys}
    settled: dict[SpendKey, int] = {}
    async with conn.execute(_SETTLED_SQL, {"now": now, "tz": tz}) as cursor:
        async for scope, app, period, start, nanos in cursor:
            key = wanted.get((str(scope), str(app), str(period), float(start)))
            if key is not None:
                settled[key] = int(nanos)
    for key in wanted.values():
        if key not in settled:
            settled[key] = await _backfill(conn, key, tz)
    spend = dict(settled)
    async with conn.execute(_OPEN_SQL, {"now": now}) as cursor:
        async for app, created_at, reserved in cursor:
            for key in wanted.values():
                if key.covers(str(app), float(created_at)):
                    spend[key] += int(reserved)
    return spend


async def _backfill(conn: aiosqlite.Connection, key: SpendKey, tz: str) -> int:
    """Create ``key``'s aggregate row from the settled reservations of its period; its sum."""
    params: dict[str, object] = {"start": key.window.start, "end": key.window.end}
    sql = _BACKFILL_SQL
    if key.app is not None:
        sql += " AND app = :app"
        params["app"] = key.app
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    total = int(row[0]) if row else 0
    scope, app, period, start = key.row_key
    row_params = {"scope": scope, "app": app, "period": period, "tz": tz, "start": start}
    await conn.execute(_INSERT_SQL, {**row_params, "end": key.window.end, "settled": total})
    return total
