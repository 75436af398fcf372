"""The budget store's SQLite schema (append-only migrations) and its reference spend scan.

``budget_reservations``: one row per cloud call, created ``open`` with the worst case, then
``settled`` with the real cost or ``released``. Money is integer nano-dollars.

``budget_spend`` (migration 2): the settled spend of one calendar period for one scope (all apps,
or one app), computed in one time zone, so that a reservation reads a handful of rows instead of
summing the period's reservations. Rows are created on first use by
:mod:`handoffd.policy.budget_spend` (summing the reservations once: the store does not know the
policy's time zone, so the migration cannot compute the periods itself); from then on triggers on
``budget_reservations`` keep every row that covers a reservation's ``created_at`` equal to the
settled sum, in the same transaction as the change, whoever writes the row.
"""

from __future__ import annotations

import aiosqlite

from handoffd.policy.periods import PeriodWindow

_MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "create reservations",
        """
        CREATE TABLE budget_reservations (
            id TEXT PRIMARY KEY,
            app TEXT NOT NULL,
            target TEXT NOT NULL,
            request_id TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            reserved_nanos INTEGER NOT NULL CHECK (reserved_nanos >= 0),
            settled_nanos INTEGER CHECK (settled_nanos >= 0),
            state TEXT NOT NULL CHECK (state IN ('open', 'settled', 'released')),
            closed_at REAL
        );
        CREATE INDEX budget_reservations_time ON budget_reservations (created_at);
        CREATE INDEX budget_reservations_app_time ON budget_reservations (app, created_at);
        CREATE INDEX budget_reservations_open ON budget_reservations (expires_at)
            WHERE state = 'open';
        """,
    ),
    (
        "settled spend per period",
        # budget_spend rows covering a reservation: its period (any time zone), the global
        # scope or its app; settling, un-settling or deleting a row moves its cost
        """
        CREATE TABLE budget_spend (
            scope TEXT NOT NULL CHECK (scope IN ('global', 'app')),
            app TEXT NOT NULL,
            period TEXT NOT NULL,
            tz TEXT NOT NULL,
            period_start REAL NOT NULL,
            period_end REAL NOT NULL,
            settled_nanos INTEGER NOT NULL,
            PRIMARY KEY (scope, app, period, tz, period_start)
        ) WITHOUT ROWID;
        CREATE INDEX budget_spend_end ON budget_spend (period_end);
        CREATE TRIGGER budget_spend_on_insert AFTER INSERT ON budget_reservations
        WHEN NEW.state = 'settled'
        BEGIN
            UPDATE budget_spend SET settled_nanos = settled_nanos + COALESCE(NEW.settled_nanos, 0)
            WHERE period_end > NEW.created_at AND period_start <= NEW.created_at
              AND (scope = 'global' OR app = NEW.app);
        END;
        CREATE TRIGGER budget_spend_on_update
        AFTER UPDATE OF state, settled_nanos, created_at, app ON budget_reservations
        WHEN OLD.state = 'settled' OR NEW.state = 'settled'
        BEGIN
            UPDATE budget_spend SET settled_nanos = settled_nanos - COALESCE(OLD.settled_nanos, 0)
            WHERE OLD.state = 'settled'
              AND period_end > OLD.created_at AND period_start <= OLD.created_at
              AND (scope = 'global' OR app = OLD.app);
            UPDATE budget_spend SET settled_nanos = settled_nanos + COALESCE(NEW.settled_nanos, 0)
            WHERE NEW.state = 'settled'
              AND period_end > NEW.created_at AND period_start <= NEW.created_at
              AND (scope = 'global' OR app = NEW.app);
        END;
        CREATE TRIGGER budget_spend_on_delete AFTER DELETE ON budget_reservations
        WHEN OLD.state = 'settled'
        BEGIN
            UPDATE budget_spend SET settled_nanos = settled_nanos - COALESCE(OLD.settled_nanos, 0)
            WHERE period_end > OLD.created_at AND period_start <= OLD.created_at
              AND (scope = 'global' OR app = OLD.app);
        END;
        """,
    ),
)

#: the schema version :func:`migrate` brings a store to
SCHEMA_VERSION = len(_MIGRATIONS)

# what a reservation counts for in a period: its real cost once settled, its worst case while
# open and unexpired, nothing once released or expired. The reference definition of spend: a
# scan of the period's reservations (what every reservation ran before migration 2; tests and
# bench/policy.py check the aggregates against it).
SPEND_SQL = """
SELECT COALESCE(SUM(CASE WHEN state = 'settled' THEN settled_nanos ELSE reserved_nanos END), 0)
FROM budget_reservations
WHERE created_at >= :start AND created_at < :end
  AND (state = 'settled' OR (state = 'open' AND expires_at > :now))
"""


async def migrate(conn: aiosqlite.Connection) -> None:
    """Apply the migrations this store has not seen (``PRAGMA user_version`` counts them)."""
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    done = int(row[0]) if row else 0
    for number, (_name, script) in enumerate(_MIGRATIONS, start=1):
        if number <= done:
            continue
        await conn.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
        )


async def scanned_spent_nanos(
    conn: aiosqlite.Connection, window: PeriodWindow, app: str | None, now: float
) -> int:
    """Spend counted in ``window`` for ``app`` (None: every app), by scanning the period's
    reservations (:data:`SPEND_SQL`): O(reservations in the period). The ledger reads
    :mod:`handoffd.policy.budget_spend` instead; this is the reference it must agree with."""
    sql = SPEND_SQL if app is None else SPEND_SQL + " AND app = :app"
    params: dict[str, object] = {"start": window.start, "end": window.end, "now": now}
    if app is not None:
        params["app"] = app
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0
