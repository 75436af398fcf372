"""The ledger's schema, changed only by appending named migrations (the simonw/llm pattern).

:data:`MIGRATIONS` is an ordered list of functions; each runs once, in its own transaction, and
its name is recorded in ``_migrations``. :func:`migrate` runs on every open of the writer. Never
edit or reorder a migration that has shipped: append a new one. A ledger that names a migration
this code does not know was written by a newer handoffd and is refused.

Schema (after all migrations):

- ``entries(seq INTEGER PRIMARY KEY, prev_hash, entry_hash, body)``: the chain. ``body`` is the
  canonical JSON of the entry (:mod:`handoffd.ledger.chain`); the queryable columns ``id``,
  ``time``, ``kind``, ``app``, ``route``, ``outcome``, ``intent_id`` are *generated* from it, so
  what the review tools show is always what the hash covers.
- ``checkpoints``: signed (entry count, head hash, time) statements, incl. prune anchors.
- ``_meta(key, value)``: ``ledger_uid``, a random id that checkpoints name.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable

from handoffd.errors import ConfigError

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_entries(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE entries (
            seq INTEGER PRIMARY KEY,
            prev_hash TEXT NOT NULL,
            entry_hash TEXT NOT NULL,
            body TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE TABLE _meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO _meta (key, value) VALUES ('ledger_uid', ?)", (secrets.token_hex(16),))


@migration
def m002_checkpoints(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            entry_count INTEGER NOT NULL,
            head_hash TEXT NOT NULL,
            public_key BLOB NOT NULL,
            signature BLOB NOT NULL
        )
        """
    )


@migration
def m003_query_columns(db: sqlite3.Connection) -> None:
    for name in ("id", "time", "kind", "app", "route", "outcome", "intent_id"):
        db.execute(
            f"ALTER TABLE entries ADD COLUMN {name} TEXT "
            f"GENERATED ALWAYS AS (json_extract(body, '$.{name}')) VIRTUAL"
        )
    db.execute("CREATE UNIQUE INDEX entries_id ON entries (id)")
    db.execute("CREATE INDEX entries_time ON entries (time)")
    db.execute("CREATE INDEX entries_app_time ON entries (app, time)")
    db.execute("CREATE INDEX entries_intent ON entries (intent_id) WHERE intent_id IS NOT NULL")


@migration
def m004_checkpoint_kind(db: sqlite3.Connection) -> None:
    # periodic | manual | prune (a prune anchor vouches for the entries it removed)
    db.execute("ALTER TABLE checkpoints ADD COLUMN kind TEXT NOT NULL DEFAULT 'manual'")
    db.execute("CREATE INDEX checkpoints_count ON checkpoints (entry_count)")


MIGRATION_NAMES: tuple[str, ...] = tuple(m.__name__ for m in MIGRATIONS)


def _ensure_table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    """Names recorded in ``_migrations`` (empty for a blank file)."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
    ).fetchone()
    if not exists:
        return []
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def check_known(applied: list[str], where: str) -> None:
    """Refuse a ledger written by a newer handoffd."""
    unknown = [name for name in applied if name not in MIGRATION_NAMES]
    if unknown:
        raise ConfigError(
            f"{where}: the ledger was migrated by a newer handoffd (unknown migration "
            f"{unknown[0]!r}): upgrade handoffd, or point --ledger at another file"
        )


def migrate(db: sqlite3.Connection, *, where: str, upto: int | None = None) -> list[str]:
    """Apply the missing migrations (the first ``upto`` only, for tests); return their names.

    ``db`` must be in autocommit mode (``isolation_level=None``): each migration gets its own
    ``BEGIN IMMEDIATE ... COMMIT`` so a crash leaves the schema at a recorded step.
    """
    _ensure_table(db)
    applied = applied_migrations(db)
    check_known(applied, where)
    done = []
    for fn in MIGRATIONS[:upto]:
        if fn.__name__ in applied:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated between our read and the lock
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (fn.__name__,)).fetchone():
                db.execute("ROLLBACK")
                continue
            fn(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) "
                "VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                (fn.__name__,),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        done.append(fn.__name__)
    return done
