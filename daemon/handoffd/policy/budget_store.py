"""The budget store's SQLite schema (append-only migrations) and its spend query.

One table, ``budget_reservations``: one row per cloud call, created ``open`` with the worst
case, then ``settled`` with the real cost or ``released``. Money is integer nano-dollars.
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
)

# what a reservation counts for in a period: its real cost once settled, its worst case while
# open and unexpired, nothing once released or expired
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


async def spent_nanos(
    conn: aiosqlite.Connection, window: PeriodWindow, app: str | None, now: float
) -> int:
    """Spend counted in ``window`` for ``app`` (None: every app)."""
    sql = SPEND_SQL if app is None else SPEND_SQL + " AND app = :app"
    params: dict[str, object] = {"start": window.start, "end": window.end, "now": now}
    if app is not None:
        params["app"] = app
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0
