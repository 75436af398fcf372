"""Opening the ledger file and the small SQL reads that the writer, readers and verifier share.

The writer connection (one per ledger, owned by one thread) runs in autocommit mode with explicit
``BEGIN IMMEDIATE``/``COMMIT``, WAL journal and ``synchronous=FULL`` (the WAL is synced on every
commit, so a commit that returned survives power loss). Readers open ``mode=ro`` URIs and can
run while the daemon writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from handoffd.errors import ConfigError, NotFound, Unavailable
from handoffd.ledger.chain import GENESIS_HASH
from handoffd.ledger.checkpoints import Checkpoint
from handoffd.ledger.migrations import MIGRATION_NAMES, applied_migrations, check_known


def connect_writer(path: Path, *, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    """The writable connection (call from the thread that will own it); creates the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
        )
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        db.execute("PRAGMA synchronous=FULL")
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"cannot open the audit ledger at {path}: {exc}") from exc
    if str(mode).lower() != "wal":
        db.close()
        raise Unavailable(f"cannot put the audit ledger at {path} in WAL mode (got {mode!r})")
    return db


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing, fully migrated ledger."""
    if not path.exists():
        raise NotFound(
            f"no audit ledger at {path}: handoffd creates it when it first opens the ledger; "
            "pass --ledger PATH if it lives elsewhere"
        )
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)
        applied = applied_migrations(db)
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot read the audit ledger ({exc})") from exc
    check_known(applied, str(path))
    missing = [name for name in MIGRATION_NAMES if name not in applied]
    if missing:
        db.close()
        raise ConfigError(
            f"{path}: the ledger's schema is older than this handoffctl (missing {missing[0]}); "
            "start handoffd once (it migrates the ledger on open) and retry"
        )
    return db


def ledger_uid(db: sqlite3.Connection) -> str:
    row = db.execute("SELECT value FROM _meta WHERE key = 'ledger_uid'").fetchone()
    if row is None:
        raise ConfigError("the ledger has no ledger_uid in _meta: it was not made by handoffd")
    return str(row[0])


def last_entry(db: sqlite3.Connection) -> tuple[int, str] | None:
    row = db.execute("SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def first_seq(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT seq FROM entries ORDER BY seq LIMIT 1").fetchone()
    return int(row[0]) if row else None


def load_checkpoints(db: sqlite3.Connection) -> list[Checkpoint]:
    """Every stored checkpoint, oldest first."""
    uid = ledger_uid(db)
    rows = db.execute(
        "SELECT time, entry_count, head_hash, kind, public_key, signature "
        "FROM checkpoints ORDER BY id"
    )
    return [
        Checkpoint(
            ledger_uid=uid,
            entry_count=int(count),
            head_hash=str(head),
            time=str(time),
            kind=str(kind),
            public_key=bytes(public_key),
            signature=bytes(signature),
        )
        for time, count, head, kind, public_key, signature in rows
    ]


def chain_head(db: sqlite3.Connection) -> tuple[int, str]:
    """(count, hash) of the newest entry; after a prune of everything, of the newest anchor."""
    last = last_entry(db)
    if last is not None:
        return last
    row = db.execute(
        "SELECT entry_count, head_hash FROM checkpoints WHERE kind = 'prune' "
        "ORDER BY entry_count DESC LIMIT 1"
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


def insert_checkpoint(db: sqlite3.Connection, checkpoint: Checkpoint) -> None:
    db.execute(
        "INSERT INTO checkpoints (time, entry_count, head_hash, kind, public_key, signature) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            checkpoint.time,
            checkpoint.entry_count,
            checkpoint.head_hash,
            checkpoint.kind,
            checkpoint.public_key,
            checkpoint.signature,
        ),
    )
