"""The thread-side writer: appends batches of entries to the chain in one transaction each.

A :class:`ChainWriter` is used only from the ledger's owner thread. It keeps the chain head
(count and hash of the newest entry) and advances it only after a batch's ``COMMIT`` returned,
so a failed batch leaves the in-memory head and the file in step.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoffd.errors import HandoffdError, InvalidRequest, NotFound, Unavailable
from handoffd.ledger.chain import canonical_json, entry_hash
from handoffd.ledger.checkpoints import Checkpoint, sign_checkpoint
from handoffd.ledger.entries import HandoffOutcome, outcome_body
from handoffd.ledger.store import chain_head, insert_checkpoint, last_entry, ledger_uid


@dataclass(frozen=True, slots=True)
class QueuedEntry:
    """One entry waiting for the next batch: a ready body, or an outcome to build here."""

    entry_id: str
    time: str
    body: Mapping[str, Any] | None = None
    outcome: HandoffOutcome | None = None
    intent_id: str | None = None
    #: the intent's body when the ledger still had it in memory (else it is read from the file)
    intent_body: Mapping[str, Any] | None = None


BatchResult = str | HandoffdError


class ChainWriter:
    def __init__(self, db: sqlite3.Connection, *, where: str) -> None:
        self._db = db
        self._where = where
        self.ledger_uid = ledger_uid(db)
        self.count, self.head = chain_head(db)

    def close(self) -> None:
        self._db.close()

    def _check_head(self) -> None:
        last = last_entry(self._db)
        if last is not None and last != (self.count, self.head):
            raise Unavailable(
                f"{self._where}: the ledger's last entry is #{last[0]}, not #{self.count} as "
                "this process wrote it: another process writes to this ledger; run one handoffd "
                "per ledger file"
            )

    def _intent_of(self, item: QueuedEntry) -> Mapping[str, Any]:
        intent_id = item.intent_id or ""
        if self._db.execute(
            "SELECT 1 FROM entries WHERE intent_id = ? LIMIT 1", (intent_id,)
        ).fetchone():
            raise InvalidRequest(f"ledger intent {intent_id} already has an outcome", field="id")
        if item.intent_body is not None:
            return item.intent_body
        row = self._db.execute(
            "SELECT body FROM entries WHERE id = ? AND kind = 'intent'", (intent_id,)
        ).fetchone()
        if row is None:
            raise NotFound(
                f"no ledger intent with id {intent_id}: record_outcome needs the id that "
                "record_intent returned"
            )
        body: dict[str, Any] = json.loads(row[0])
        return body

    def _body(self, item: QueuedEntry) -> Mapping[str, Any]:
        if item.body is not None:
            return item.body
        if item.outcome is None:
            raise InvalidRequest("a queued ledger entry has neither a body nor an outcome")
        return outcome_body(
            item.outcome, self._intent_of(item), entry_id=item.entry_id, time=item.time
        )

    def write_batch(self, items: Sequence[QueuedEntry]) -> list[BatchResult]:
        """Append ``items`` in one transaction; per item its id, or the error that refused it.

        Raises (for the whole batch) when the transaction cannot be committed.
        """
        results: list[BatchResult] = []
        count, head = self.count, self.head
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._check_head()
            for item in items:
                try:
                    body = canonical_json(self._body(item))
                except HandoffdError as exc:
                    results.append(exc)
                    continue
                count += 1
                digest = entry_hash(count, head, body)
                db.execute(
                    "INSERT INTO entries (seq, prev_hash, entry_hash, body) VALUES (?, ?, ?, ?)",
                    (count, head, digest, body),
                )
                head = digest
                results.append(item.entry_id)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.count, self.head = count, head
        return results

    def checkpoint(self, key: Ed25519PrivateKey, kind: str) -> Checkpoint:
        """Sign the current head and store the checkpoint."""
        checkpoint = sign_checkpoint(
            key, ledger_uid=self.ledger_uid, entry_count=self.count, head_hash=self.head, kind=kind
        )
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._check_head()
            insert_checkpoint(self._db, checkpoint)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return checkpoint
