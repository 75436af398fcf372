"""Retention pruning: the remaining chain stays verifiable through a signed anchor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from handoffd.errors import ConfigError
from handoffd.ledger import Checkpoint, LedgerReader, prune_ledger, verify_ledger
from handoffd.ledger.checkpoints import sign_checkpoint

from tests.ledger.conftest import PopulatedLedger
from tests.ledger.ledger_testkit import DAY0, SteppingClock, attacker, intent, open_ledger

DAY2 = DAY0 + timedelta(days=1)


def test_prune_removes_the_old_prefix_and_anchors_it(
    populated: PopulatedLedger, tmp_path: Path
) -> None:
    """Pruning before day 2 removes day 1's 20 entries, stores and exports a signed prune
    anchor, and the rest verifies (also against a checkpoint exported after the prune)."""
    result = prune_ledger(
        populated.path, before=DAY2, signing_key=populated.key, checkpoint_dir=tmp_path / "cps"
    )
    assert result.removed == 20
    assert result.anchor is not None
    assert result.anchor.entry_count == 20
    assert result.anchor.kind == "prune"
    assert result.anchor_file is not None
    assert result.anchor_file.parent == tmp_path / "cps"
    assert Checkpoint.read(result.anchor_file) == result.anchor
    with LedgerReader(populated.path) as reader:
        assert reader.count() == 40
        assert min(e.time for e in reader.entries(limit=0)) >= "2026-11-02"
    report = verify_ledger(populated.path, external=[populated.exported])
    assert report.ok, report.problems
    assert report.entries_checked == 40


async def test_writing_continues_after_a_prune(populated: PopulatedLedger) -> None:
    """The daemon appends after a prune (even of everything) and the chain still verifies."""
    prune_ledger(populated.path, before=datetime(2030, 1, 1, tzinfo=UTC), signing_key=populated.key)
    with LedgerReader(populated.path) as reader:
        assert reader.count() == 0
        assert reader.head()[0] == 60
    ledger = await open_ledger(
        populated.path, populated.key, clock=SteppingClock(DAY0 + timedelta(days=9))
    )
    try:
        await ledger.record_intent(intent(ledger))
    finally:
        await ledger.aclose()
    report = verify_ledger(populated.path)
    assert report.ok, report.problems
    assert report.head_seq == 61


def test_tampering_with_the_first_kept_entry_is_detected(populated: PopulatedLedger) -> None:
    """After a prune, changing the first remaining entry (hash recomputed) no longer follows
    the anchor: detected and named."""
    prune_ledger(populated.path, before=DAY2, signing_key=populated.key)
    db = attacker(populated.path)
    db.execute("UPDATE entries SET prev_hash = ? WHERE seq = 21", ("f" * 64,))
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert report.first_bad_seq == 21
    assert "prune anchor" in report.problems[0]


def test_deleting_past_the_anchor_is_detected(populated: PopulatedLedger) -> None:
    """Deleting more than the anchor vouches for is a missing prefix again."""
    prune_ledger(populated.path, before=DAY2, signing_key=populated.key)
    db = attacker(populated.path)
    db.execute("DELETE FROM entries WHERE seq <= 25")
    db.close()
    report = verify_ledger(populated.path)
    assert not report.ok
    assert report.first_bad_seq == 21


def test_checkpoint_older_than_the_prune_cannot_vouch(
    populated: PopulatedLedger, tmp_path: Path
) -> None:
    """A checkpoint exported before a prune that removed its position cannot be checked:
    verify says so (and does not pass silently)."""
    early = sign_checkpoint(
        populated.key,
        ledger_uid=populated.exported.ledger_uid,
        entry_count=10,
        head_hash=_hash_at(populated.path, 10),
        kind="manual",
    )
    prune_ledger(populated.path, before=DAY2, signing_key=populated.key)
    report = verify_ledger(populated.path, external=[early])
    assert not report.ok
    assert "pruned" in report.problems[0]


def _hash_at(path: Path, seq: int) -> str:
    db = attacker(path)
    try:
        return str(db.execute("SELECT entry_hash FROM entries WHERE seq = ?", (seq,)).fetchone()[0])
    finally:
        db.close()


def test_prune_refuses_a_ledger_that_does_not_verify(populated: PopulatedLedger) -> None:
    """Pruning would sign over tampering: it refuses and removes nothing."""
    db = attacker(populated.path)
    db.execute("UPDATE entries SET body = json_set(body, '$.app', 'x') WHERE seq = 3")
    db.close()
    with pytest.raises(ConfigError, match="does not verify"):
        prune_ledger(populated.path, before=DAY2, signing_key=populated.key)
    with LedgerReader(populated.path) as reader:
        assert reader.count() == 60


def test_prune_with_nothing_old_enough_changes_nothing(populated: PopulatedLedger) -> None:
    """A cutoff before the first entry removes nothing and writes no anchor."""
    result = prune_ledger(
        populated.path, before=DAY0 - timedelta(days=1), signing_key=populated.key
    )
    assert result.removed == 0
    assert result.anchor is None
    with LedgerReader(populated.path) as reader:
        assert reader.count() == 60
        assert all(cp.kind != "prune" for cp in reader.checkpoints())
