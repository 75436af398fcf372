"""Administrator operations run outside the daemon: retention pruning and on-demand checkpoints.

Both verify the ledger first and refuse to sign anything over a chain that does not verify.
Pruning is the one write that does not go through the daemon's writer: it takes SQLite's write
lock in short transactions (an anchor first, then deletions in chunks), so a running daemon
only waits a moment for its next commit.

Pruning keeps the rest verifiable: before anything is deleted, a signed ``prune`` checkpoint
(the *anchor*) records the count and head hash of the removed prefix; the first kept entry's
``prev_hash`` must equal it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoffd.errors import ConfigError, Unavailable
from handoffd.ledger.checkpoints import Checkpoint, export_checkpoint, sign_checkpoint
from handoffd.ledger.migrations import MIGRATION_NAMES, applied_migrations
from handoffd.ledger.store import connect_reader, connect_writer, insert_checkpoint, ledger_uid
from handoffd.ledger.times import format_time
from handoffd.ledger.verify import VerifyReport, verify_ledger

_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class PruneResult:
    removed: int
    anchor: Checkpoint | None
    anchor_file: Path | None


def _verified(path: Path) -> VerifyReport:
    report = verify_ledger(path)
    if not report.ok:
        raise ConfigError(
            f"{path}: the ledger does not verify ({report.summary()}); nothing was signed or "
            "removed. Investigate with `handoffctl audit verify` first"
        )
    return report


def checkpoint_current_head(
    path: Path, key: Ed25519PrivateKey, *, kind: str = "manual"
) -> tuple[Checkpoint, VerifyReport]:
    """Verify the ledger (read-only) and sign a checkpoint of the head it verified.

    The checkpoint is not stored in the ledger (this does not write to it): export it.
    """
    report = _verified(path)
    db = connect_reader(path)
    try:
        uid = ledger_uid(db)
    finally:
        db.close()
    checkpoint = sign_checkpoint(
        key, ledger_uid=uid, entry_count=report.head_seq, head_hash=report.head_hash, kind=kind
    )
    return checkpoint, report


def prune_ledger(
    path: Path,
    *,
    before: datetime,
    signing_key: Ed25519PrivateKey,
    checkpoint_dir: Path | None = None,
) -> PruneResult:
    """Remove the entries older than ``before`` (a prefix of the chain), anchored by a signed
    ``prune`` checkpoint stored in the ledger and exported to ``checkpoint_dir``."""
    _verified(path)
    cutoff = format_time(before)
    db = connect_writer(path)
    try:
        missing = [m for m in MIGRATION_NAMES if m not in applied_migrations(db)]
        if missing:
            raise ConfigError(
                f"{path}: the ledger's schema is older than this handoffctl (missing "
                f"{missing[0]}); start handoffd once to migrate it, then prune"
            )
        anchor = _write_anchor(db, cutoff, signing_key)
        if anchor is None:
            return PruneResult(removed=0, anchor=None, anchor_file=None)
        removed = 0
        while True:
            db.execute("BEGIN IMMEDIATE")
            cursor = db.execute(
                "DELETE FROM entries WHERE seq IN "
                "(SELECT seq FROM entries WHERE seq <= ? ORDER BY seq LIMIT ?)",
                (anchor.entry_count, _CHUNK),
            )
            db.execute("COMMIT")
            removed += cursor.rowcount
            if cursor.rowcount < _CHUNK:
                break
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise Unavailable(f"{path}: pruning stopped ({exc}); run the prune again") from exc
    finally:
        db.close()
    exported = export_checkpoint(anchor, checkpoint_dir) if checkpoint_dir else None
    return PruneResult(removed=removed, anchor=anchor, anchor_file=exported)


def _write_anchor(
    db: sqlite3.Connection, cutoff: str, key: Ed25519PrivateKey
) -> Checkpoint | None:
    """Sign and store the anchor of the prefix older than ``cutoff``; None if it is empty."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT min(seq) FROM entries WHERE time >= ?", (cutoff,)).fetchone()
        if row[0] is None:
            last = db.execute("SELECT max(seq) FROM entries").fetchone()[0]
            keep_from = None if last is None else int(last) + 1
        else:
            keep_from = int(row[0])
        first = db.execute("SELECT min(seq) FROM entries").fetchone()[0]
        if keep_from is None or first is None or keep_from <= int(first):
            db.execute("ROLLBACK")
            return None
        count = keep_from - 1
        head = db.execute("SELECT entry_hash FROM entries WHERE seq = ?", (count,)).fetchone()
        if head is None:
            raise ConfigError(f"entry #{count} is missing: verify the ledger before pruning")
        anchor = sign_checkpoint(
            key, ledger_uid=ledger_uid(db), entry_count=count, head_hash=str(head[0]), kind="prune"
        )
        insert_checkpoint(db, anchor)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return anchor
