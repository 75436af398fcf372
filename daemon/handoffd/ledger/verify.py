"""Checking a ledger: the hash chain, its stored checkpoints and checkpoints kept elsewhere.

What is detected, and how:

- a changed entry: its hash no longer matches its body and position;
- a changed entry whose hash was recomputed, an inserted, deleted or reordered entry: a gap in
  the positions, or an entry whose ``prev_hash`` is not the hash of the entry before it;
- a deleted prefix: the first entry is not #1 and no signed *prune anchor* vouches for the gap;
- tail truncation: a checkpoint (stored, or exported and given here) counts more entries than
  the ledger has;
- a whole chain recomputed after a change (by someone holding the device's signing key, who can
  also re-sign the stored checkpoints): an exported checkpoint's head hash differs from the
  recomputed entry at its position. Keep exported checkpoints off the device.

Entries written after the newest checkpoint that left the device are only as trustworthy as the
device itself: appending forged entries at the tail is indistinguishable from writing them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from handoffd.ledger.chain import GENESIS_HASH
from handoffd.ledger.checkpoints import Checkpoint
from handoffd.ledger.store import chain_head, connect_reader, ledger_uid, load_checkpoints


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    entries_checked: int
    #: position of the newest entry (= entries ever written, when nothing is wrong)
    head_seq: int
    head_hash: str
    checkpoints_checked: int
    #: what is wrong, first found first; empty when ok
    problems: tuple[str, ...] = ()
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    #: things that are fine but worth knowing (e.g. checkpoints older than a prune)
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoints_checked": self.checkpoints_checked,
            "first_bad_seq": self.first_bad_seq,
            "first_bad_id": self.first_bad_id,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        if self.ok:
            return (
                f"OK: {self.entries_checked} entries up to #{self.head_seq} chain correctly and "
                f"match {self.checkpoints_checked} signed checkpoint(s)"
            )
        where = ""
        if self.first_bad_seq is not None:
            where = f" first bad entry: #{self.first_bad_seq}"
            if self.first_bad_id:
                where += f" (id {self.first_bad_id})"
        return f"TAMPERED:{where}: {self.problems[0]}"


def _entry_id(body: str | None) -> str | None:
    if body is None:
        return None
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def _label(cp: Checkpoint, origin: str) -> str:
    return f"{origin} {cp.kind} checkpoint of {cp.time} ({cp.entry_count} entries)"


def verify_ledger(
    path: Path,
    *,
    external: Sequence[Checkpoint] = (),
    public_key: bytes | None = None,
) -> VerifyReport:
    """Verify the ledger at ``path`` (read-only) against its own and the ``external``
    checkpoints; ``public_key`` (raw 32 bytes) pins the key every checkpoint must be signed by."""
    db = connect_reader(path)
    try:
        db.execute("BEGIN")  # one snapshot: the daemon may append while this runs
        return _Verification(db, pinned=public_key).run(external)
    finally:
        db.close()


class _Verification:
    """One verification run over one read snapshot."""

    def __init__(self, db: sqlite3.Connection, *, pinned: bytes | None) -> None:
        self.db = db
        self.pinned = pinned
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.bad_seq: int | None = None
        self.bad_id: str | None = None
        #: checkpoints whose signature holds, with where they came from
        self.trusted: list[tuple[Checkpoint, str]] = []
        #: position -> (hash it must have, which checkpoint says so)
        self.expect: dict[int, list[tuple[str, str]]] = defaultdict(list)
        self.verified = 0

    def fail(self, message: str, seq: int | None = None, entry: str | None = None) -> None:
        self.problems.append(message)
        if seq is not None and self.bad_seq is None:
            self.bad_seq, self.bad_id = seq, entry

    def run(self, external: Sequence[Checkpoint]) -> VerifyReport:
        self._check_signatures(load_checkpoints(self.db), external)
        first_row = self.db.execute("SELECT seq FROM entries ORDER BY seq LIMIT 1").fetchone()
        head_seq, head_hash = chain_head(self.db)
        start = int(first_row[0]) if first_row else head_seq + 1
        self._plan(start, head_seq)
        checked = self._walk(start)
        return VerifyReport(
            ok=not self.problems,
            entries_checked=checked,
            head_seq=head_seq,
            head_hash=head_hash,
            checkpoints_checked=self.verified,
            problems=tuple(self.problems),
            first_bad_seq=self.bad_seq,
            first_bad_id=self.bad_id,
            notes=tuple(self.notes),
        )

    def _check_signatures(self, stored: list[Checkpoint], external: Sequence[Checkpoint]) -> None:
        uid = ledger_uid(self.db)
        keys = {cp.public_key for cp in stored} | {cp.public_key for cp in external}
        if self.pinned is None and len(keys) > 1:
            self.fail(
                f"checkpoints are signed by {len(keys)} different keys: one was not made by this "
                "device, or its key changed; pin the device's key with --public-key FILE"
            )
        for cp in stored:
            if cp.signature_valid(self.pinned):
                self.trusted.append((cp, "stored"))
            else:
                self.fail(f"the {_label(cp, 'stored')} has a bad signature (forged or altered)")
        for cp in external:
            if cp.ledger_uid != uid:
                self.fail(f"the checkpoint of {cp.time} is for ledger {cp.ledger_uid}, not {uid}")
            elif cp.signature_valid(self.pinned):
                self.trusted.append((cp, "exported"))
            else:
                self.fail(f"the {_label(cp, 'exported')} has a bad signature (forged or altered)")

    def _plan(self, start: int, head_seq: int) -> None:
        """Check what checkpoints say about the ends of the chain; note what to check inside."""
        anchors = [cp for cp, _ in self.trusted if cp.kind == "prune"]
        covered = max((cp.entry_count for cp in anchors), default=0)
        if start > 1 and covered < start - 1:
            self.fail(
                f"entries #{covered + 1}..#{start - 1} are missing and no signed prune anchor "
                "vouches for their removal (deleted?)",
                seq=covered + 1,
            )
        for cp, origin in self.trusted:
            if cp.entry_count > head_seq:
                self.fail(
                    f"the ledger ends at entry #{head_seq}, but the {_label(cp, origin)} counts "
                    f"{cp.entry_count}: entries #{head_seq + 1}..#{cp.entry_count} were removed "
                    "(tail truncated)",
                    seq=head_seq + 1,
                )
            elif cp.entry_count >= start - 1:
                self.expect[cp.entry_count].append((cp.head_hash, _label(cp, origin)))
            elif origin == "exported" and not any(
                a.entry_count == cp.entry_count and a.head_hash == cp.head_hash for a in anchors
            ):
                self.fail(
                    f"the {_label(cp, origin)} covers only entries that were pruned, so it "
                    "cannot be checked; verify with a checkpoint exported after the last prune"
                )
            else:
                self.notes.append(f"the {_label(cp, origin)} predates the last prune")

    def _walk(self, start: int) -> int:
        """Hash every entry in order; stop at the first break. Returns entries checked."""
        before_start = self.expect.get(start - 1, [])
        self.verified += len(before_start)
        if start == 1:
            for want, label in before_start:
                if want != GENESIS_HASH:
                    self.fail(f"the {label} does not start from the genesis hash")
        # the first entry links to the genesis hash, or after a prune to the anchor's head
        anchor_prevs = [want for want, _ in before_start] if start > 1 else []
        expected_prev: str | None = GENESIS_HASH if start == 1 else None
        prev_seq, prev_body, checked = start - 1, None, 0
        rows = self.db.execute("SELECT seq, prev_hash, entry_hash, body FROM entries ORDER BY seq")
        for seq, prev, digest, body in rows:
            problem = None
            if seq != prev_seq + 1:
                gap = f"#{prev_seq + 1}..#{seq - 1}"
                self.fail(f"entries {gap} are missing (deleted)", prev_seq + 1)
                break
            if seq == start and any(prev != want for want in anchor_prevs):
                problem = (
                    f"entry #{seq}, the first after the prune, does not follow the signed prune "
                    "anchor: it was changed, or entries were inserted or removed here"
                )
            elif expected_prev is not None and prev != expected_prev:
                problem = (
                    f"entry #{seq} does not follow entry #{prev_seq} "
                    f"({_entry_id(prev_body) or '?'}): one of them was changed, or entries were "
                    "inserted, removed or reordered here"
                )
            computed = hashlib.sha256(
                f"{seq}\n{prev}\n".encode("ascii") + body.encode("utf-8")
            ).hexdigest()
            if problem is None and computed != digest:
                problem = (
                    f"entry #{seq} does not match its hash: it was modified, moved, or an entry "
                    "was inserted before it"
                )
            if problem is None and seq in self.expect:
                self.verified += len(self.expect[seq])
                for want, label in self.expect[seq]:
                    if computed != want:
                        problem = (
                            f"entry #{seq} differs from what the {label} signed: the chain was "
                            "rewritten up to here (recomputed after a change)"
                        )
            if problem is not None:
                self.fail(problem, seq, _entry_id(body))
                break
            checked += 1
            expected_prev, prev_seq, prev_body = computed, seq, body
        return checked
