"""Tamper evidence: each attack is done with plain sqlite3 on the file, as an attacker would."""

from __future__ import annotations

import json
import sqlite3

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handoffd.ledger import verify_ledger
from handoffd.ledger.chain import entry_hash
from handoffd.ledger.checkpoints import sign_checkpoint

from tests.ledger.conftest import PopulatedLedger
from tests.ledger.ledger_testkit import attacker


def _id_at(populated: PopulatedLedger, seq: int) -> str:
    return populated.population.ids[seq - 1]


def _recompute_from(db: sqlite3.Connection, seq: int) -> tuple[int, str]:
    """Rewrite every hash from ``seq`` on so the chain links again; returns the new head."""
    prev = db.execute("SELECT entry_hash FROM entries WHERE seq = ?", (seq - 1,)).fetchone()[0]
    head = (seq - 1, prev)
    for s, body in db.execute("SELECT seq, body FROM entries WHERE seq >= ? ORDER BY seq", (seq,)):
        digest = entry_hash(s, prev, body)
        db.execute(
            "UPDATE entries SET prev_hash = ?, entry_hash = ? WHERE seq = ?", (prev, digest, s)
        )
        prev, head = digest, (s, digest)
    return head


def test_untouched_ledger_verifies_with_and_without_the_exported_checkpoint(
    populated: PopulatedLedger,
) -> None:
    """A ledger nobody touched verifies, alone and against the checkpoint kept off the device."""
    alone = verify_ledger(populated.path)
    with_export = verify_ledger(populated.path, external=[populated.exported])
    assert alone.ok, alone.problems
    assert with_export.ok, with_export.problems
    assert alone.entries_checked == len(populated.population.ids) == 60
    assert with_export.checkpoints_checked == 2  # the stored copy and the exported one


def test_modified_field_is_detected_and_named(populated: PopulatedLedger) -> None:
    """Changing one field of one entry (the settled cost) names exactly that entry."""
    db = attacker(populated.path)
    db.execute("UPDATE entries SET body = json_set(body, '$.settled_cost_usd', 0.5) WHERE seq = 10")
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert report.first_bad_seq == 10
    assert report.first_bad_id == _id_at(populated, 10)
    assert "modified" in report.problems[0]


def test_deleted_row_is_detected(populated: PopulatedLedger) -> None:
    """Deleting an entry in the middle leaves a gap that verify names."""
    db = attacker(populated.path)
    db.execute("DELETE FROM entries WHERE seq = 17")
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert report.first_bad_seq == 17
    assert "missing" in report.problems[0]


def test_inserted_row_is_detected(populated: PopulatedLedger) -> None:
    """A forged entry slipped in at #10 (later entries shifted down) breaks the link after it."""
    db = attacker(populated.path)
    db.execute("UPDATE entries SET seq = -seq WHERE seq >= 10")
    db.execute("UPDATE entries SET seq = 1 - seq WHERE seq < 0")
    prev = db.execute("SELECT entry_hash FROM entries WHERE seq = 9").fetchone()[0]
    forged = json.dumps({"id": "01FORGEDFORGEDFORGEDFORGED", "app": "kiosk", "kind": "intent"})
    db.execute(
        "INSERT INTO entries (seq, prev_hash, entry_hash, body) VALUES (10, ?, ?, ?)",
        (prev, entry_hash(10, prev, forged), forged),
    )
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert report.first_bad_seq == 11
    assert "does not follow entry #10" in report.problems[0]


def test_swapped_rows_are_detected(populated: PopulatedLedger) -> None:
    """Swapping the positions of two neighbouring entries is detected at the first of them."""
    db = attacker(populated.path)
    db.execute("UPDATE entries SET seq = -10 WHERE seq = 10")
    db.execute("UPDATE entries SET seq = 10 WHERE seq = 11")
    db.execute("UPDATE entries SET seq = 11 WHERE seq = -10")
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert report.first_bad_seq == 10
    assert report.first_bad_id == _id_at(populated, 11)


def test_truncated_tail_is_detected_by_the_stored_checkpoint(populated: PopulatedLedger) -> None:
    """Cutting the last entries off is caught by the checkpoint stored in the ledger."""
    db = attacker(populated.path)
    db.execute("DELETE FROM entries WHERE seq > 50")
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert report.first_bad_seq == 51
    assert "tail truncated" in report.problems[0]


def test_truncation_that_also_removes_stored_checkpoints_needs_the_exported_one(
    populated: PopulatedLedger,
) -> None:
    """If the attacker also deletes the stored checkpoints, the chain alone looks fine; the
    checkpoint kept off the device still catches the truncation."""
    db = attacker(populated.path)
    db.execute("DELETE FROM entries WHERE seq > 50")
    db.execute("DELETE FROM checkpoints")
    db.close()
    assert verify_ledger(populated.path).ok  # the limit of a plain hash chain
    report = verify_ledger(populated.path, external=[populated.exported])
    assert not report.ok
    assert report.first_bad_seq == 51


def test_whole_chain_recomputed_and_resigned_is_caught_by_the_exported_checkpoint(
    populated: PopulatedLedger,
) -> None:
    """An attacker with the device's key changes entry #10, recomputes every later hash and
    re-signs the stored checkpoints: only the exported checkpoint can tell, and it does."""
    db = attacker(populated.path)
    db.execute("UPDATE entries SET body = json_set(body, '$.settled_cost_usd', 0.5) WHERE seq = 10")
    count, head = _recompute_from(db, 10)
    uid = db.execute("SELECT value FROM _meta WHERE key = 'ledger_uid'").fetchone()[0]
    db.execute("DELETE FROM checkpoints")
    forged = sign_checkpoint(
        populated.key, ledger_uid=uid, entry_count=count, head_hash=head, kind="periodic"
    )
    db.execute(
        "INSERT INTO checkpoints (time, entry_count, head_hash, kind, public_key, signature) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (forged.time, count, head, forged.kind, forged.public_key, forged.signature),
    )
    db.close()
    assert verify_ledger(populated.path).ok  # consistent, re-signed: the device alone is fooled
    report = verify_ledger(populated.path, external=[populated.exported])
    assert not report.ok
    assert report.first_bad_seq == populated.exported.entry_count
    assert "rewritten" in report.problems[0]


def test_recomputed_chain_without_the_key_fails_on_the_stored_checkpoint(
    populated: PopulatedLedger,
) -> None:
    """Without the device key the attacker cannot re-sign: the stored checkpoint disagrees."""
    db = attacker(populated.path)
    db.execute("UPDATE entries SET body = json_set(body, '$.app', 'other') WHERE seq = 5")
    _recompute_from(db, 5)
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert "rewritten" in report.problems[0]


def test_altered_stored_checkpoint_has_a_bad_signature(populated: PopulatedLedger) -> None:
    """Editing a stored checkpoint's count invalidates its signature."""
    db = attacker(populated.path)
    db.execute("UPDATE checkpoints SET entry_count = entry_count - 5")
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert "bad signature" in report.problems[0]


def test_checkpoint_from_another_key_is_refused(populated: PopulatedLedger) -> None:
    """A stored checkpoint signed by a key other than the pinned device key is rejected, and two
    signing keys without a pin are flagged."""
    db = attacker(populated.path)
    uid = db.execute("SELECT value FROM _meta WHERE key = 'ledger_uid'").fetchone()[0]
    head = db.execute("SELECT entry_hash FROM entries WHERE seq = 60").fetchone()[0]
    other = sign_checkpoint(
        Ed25519PrivateKey.generate(), ledger_uid=uid, entry_count=60, head_hash=head, kind="manual"
    )
    db.execute(
        "INSERT INTO checkpoints (time, entry_count, head_hash, kind, public_key, signature) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (other.time, 60, head, other.kind, other.public_key, other.signature),
    )
    db.close()
    assert "different keys" in verify_ledger(populated.path).problems[0]
    pinned = populated.exported.public_key
    report = verify_ledger(populated.path, public_key=pinned)
    assert not report.ok
    assert "bad signature" in report.problems[0]


def test_deleted_prefix_without_a_prune_anchor_is_detected(populated: PopulatedLedger) -> None:
    """Deleting the oldest entries (not through prune) leaves no anchor: detected."""
    db = attacker(populated.path)
    db.execute("DELETE FROM entries WHERE seq <= 8")
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert report.first_bad_seq == 1
    assert "no signed prune anchor" in report.problems[0]
