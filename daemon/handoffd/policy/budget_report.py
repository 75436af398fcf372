"""What the budget store says now: spend, open reservations and what is left per budget.

Read-only: ``handoffctl budget`` opens the store with ``mode=ro`` (the daemon keeps the only
writer) and may run while the daemon is up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

from handoffd.errors import ConfigError
from handoffd.policy.app_policy import LoadedPolicy
from handoffd.policy.periods import PeriodWindow, window_at
from handoffd.policy.prices import nanos_to_usd, usd_to_nanos
from handoffd.schema.policy import BudgetLimit, BudgetScope, Period

_SPLIT_SQL = """
SELECT
  COALESCE(SUM(CASE WHEN state = 'settled' THEN settled_nanos ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN state = 'open' AND expires_at > :now THEN reserved_nanos ELSE 0 END), 0)
FROM budget_reservations
WHERE created_at >= :start AND created_at < :end
"""


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget in its current period."""

    rule_id: str
    scope: str
    #: the app it counts (None: all apps)
    app: str | None
    period: str
    period_label: str
    limit_usd: float
    settled_usd: float
    reserved_usd: float
    left_usd: float
    resets_in_s: float
    shadow: bool


@dataclass(frozen=True, slots=True)
class OpenReservation:
    id: str
    app: str
    target: str
    reserved_usd: float
    age_s: float
    expires_in_s: float


@dataclass(frozen=True, slots=True)
class AppSpend:
    """Settled spend of one app in the current day, week and month."""

    app: str
    day_usd: float
    week_usd: float
    month_usd: float


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    at: float
    timezone: str
    budgets: tuple[BudgetStatus, ...]
    spend: tuple[AppSpend, ...]
    open_reservations: tuple[OpenReservation, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def open_readonly(path: Path) -> aiosqlite.Connection:
    """A read-only connection to the budget store at ``path``."""
    if not await asyncio.to_thread(path.exists):
        raise ConfigError(
            f"{path}: no budget store here: the daemon creates it on its first cloud handoff "
            "(or pass --db with the right path)"
        )
    try:
        uri = (await asyncio.to_thread(path.resolve)).as_uri()
        return await aiosqlite.connect(f"{uri}?mode=ro", uri=True)
    except aiosqlite.Error as exc:
        raise ConfigError(f"{path}: cannot open the budget store read-only: {exc}") from None


async def _split(
    conn: aiosqlite.Connection, window: PeriodWindow, app: str | None, now: float
) -> tuple[int, int]:
    sql = _SPLIT_SQL if app is None else _SPLIT_SQL + " AND app = :app"
    params: dict[str, object] = {"start": window.start, "end": window.end, "now": now}
    if app is not None:
        params["app"] = app
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def budget_snapshot(
    conn: aiosqlite.Connection,
    policy: LoadedPolicy | None,
    now: float,
    apps: Iterable[str] | None = None,
) -> BudgetSnapshot:
    """Every budget of ``policy`` for every app that has a section or spend this month (or just
    ``apps``), plus settled spend per app and the open reservations."""
    tz = policy.timezone if policy is not None else ZoneInfo("UTC")
    month = window_at(Period.MONTH, now, tz)
    if apps is None:
        async with conn.execute(
            "SELECT DISTINCT app FROM budget_reservations WHERE created_at >= ?", (month.start,)
        ) as cursor:
            seen = [str(row[0]) for row in await cursor.fetchall()]
        names = sorted({*seen, *(policy.app_names if policy is not None else ())})
    else:
        names = sorted(set(apps))
    statuses: list[BudgetStatus] = []
    if policy is not None:
        for limit in policy.defaults.budgets:
            if limit.scope is BudgetScope.GLOBAL:
                statuses.append(await _status(conn, limit, None, now, tz))
        for name in names:
            for limit in policy.for_app(name).budgets:
                if limit.scope is BudgetScope.APP:
                    statuses.append(await _status(conn, limit, name, now, tz))
    spend = []
    for name in names:
        totals = []
        for period in (Period.DAY, Period.WEEK, Period.MONTH):
            settled, _ = await _split(conn, window_at(period, now, tz), name, now)
            totals.append(nanos_to_usd(settled))
        spend.append(AppSpend(name, *totals))
    async with conn.execute(
        "SELECT id, app, target, reserved_nanos, created_at, expires_at FROM budget_reservations "
        "WHERE state = 'open' AND expires_at > ? ORDER BY created_at",
        (now,),
    ) as cursor:
        rows = await cursor.fetchall()
    reservations = tuple(
        OpenReservation(
            id=str(r[0]),
            app=str(r[1]),
            target=str(r[2]),
            reserved_usd=nanos_to_usd(int(r[3])),
            age_s=now - float(r[4]),
            expires_in_s=float(r[5]) - now,
        )
        for r in rows
    )
    return BudgetSnapshot(
        at=now,
        timezone=str(tz.key),
        budgets=tuple(statuses),
        spend=tuple(spend),
        open_reservations=reservations,
    )


async def _status(
    conn: aiosqlite.Connection, limit: BudgetLimit, app: str | None, now: float, tz: ZoneInfo
) -> BudgetStatus:
    window = window_at(limit.period, now, tz)
    settled, reserved = await _split(conn, window, app, now)
    left = max(usd_to_nanos(limit.usd) - settled - reserved, 0)
    return BudgetStatus(
        rule_id=limit.id,
        scope=limit.scope.value,
        app=app,
        period=limit.period.value,
        period_label=window.label,
        limit_usd=limit.usd,
        settled_usd=nanos_to_usd(settled),
        reserved_usd=nanos_to_usd(reserved),
        left_usd=nanos_to_usd(left),
        resets_in_s=window.seconds_left(now),
        shadow=limit.shadow,
    )
