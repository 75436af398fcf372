"""Schema migrations: from a blank file, from every earlier schema, and refusing newer ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handoffd.errors import ConfigError
from handoffd.ledger import HandoffOutcome, LedgerReader, Outcome, verify_ledger
from handoffd.ledger.chain import GENESIS_HASH, canonical_json, entry_hash
from handoffd.ledger.checkpoints import sign_checkpoint
from handoffd.ledger.entries import HandoffIntent, intent_body
from handoffd.ledger.migrations import MIGRATION_NAMES, MIGRATIONS, migrate

from tests.ledger.ledger_testkit import intent, open_ledger


def _applied(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    finally:
        db.close()


async def test_blank_file_gets_every_migration_in_order(tmp_path: Path) -> None:
    """Opening a new file applies all migrations, in order, recorded by name."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path)
    await ledger.aclose()
    assert _applied(path) == list(MIGRATION_NAMES)
    assert MIGRATION_NAMES[0] == "m001_entries"


async def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    """Migrations run on every open but each only once."""
    path = tmp_path / "l.db"
    for _ in range(2):
        ledger = await open_ledger(path)
        await ledger.aclose()
    db = sqlite3.connect(path)
    assert migrate(db, where="test") == []
    db.close()
    assert _applied(path) == list(MIGRATION_NAMES)


def _seed_old_schema(path: Path, upto: int) -> list[str]:
    """A ledger as the handoffd of migration ``upto`` left it, with a few entries (and a
    checkpoint where that schema has the table). Returns the entry ids."""
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, where="seed", upto=upto)
    ids: list[str] = []
    if upto >= 1:
        prev = GENESIS_HASH
        for seq in range(1, 4):
            entry_id = f"01HAAAAAAAAAAAAAAAAAAAAAA{seq}"
            body = canonical_json(
                intent_body(
                    HandoffIntent(
                        app="old", prompt_hmac="ab", cloud_target="openai", cloud_model="m"
                    ),
                    entry_id=entry_id,
                    time=f"2026-01-0{seq}T00:00:00.000000Z",
                    keep_redacted_prompt=False,
                )
            )
            digest = entry_hash(seq, prev, body)
            db.execute(
                "INSERT INTO entries (seq, prev_hash, entry_hash, body) VALUES (?, ?, ?, ?)",
                (seq, prev, digest, body),
            )
            prev = digest
            ids.append(entry_id)
    db.close()
    return ids


@pytest.mark.parametrize("upto", range(len(MIGRATIONS)))
async def test_every_earlier_schema_migrates_and_keeps_its_entries(
    tmp_path: Path, upto: int
) -> None:
    """A ledger left at each earlier schema (0..n-1 migrations) is migrated on open; its
    entries stay readable and verifiable, and new entries continue the same chain."""
    path = tmp_path / "l.db"
    old_ids = _seed_old_schema(path, upto)
    key = Ed25519PrivateKey.generate()
    ledger = await open_ledger(path, key)
    try:
        new_intent = await ledger.record_intent(intent(ledger))
        await ledger.record_outcome(new_intent, HandoffOutcome(Outcome.SENT))
        if old_ids:
            await ledger.record_outcome(old_ids[0], HandoffOutcome(Outcome.FAILED))
        await ledger.checkpoint()
    finally:
        await ledger.aclose()
    assert _applied(path) == list(MIGRATION_NAMES)
    with LedgerReader(path) as reader:
        assert [reader.get(i).app for i in old_ids] == ["old"] * len(old_ids)
        assert reader.count() == len(old_ids) + 2 + (1 if old_ids else 0)
    report = verify_ledger(path)
    assert report.ok, report.problems
    assert report.checkpoints_checked == 1


async def test_checkpoint_rows_from_before_the_kind_column_read_as_manual(tmp_path: Path) -> None:
    """Checkpoints stored before m004 (no kind column) are migrated with kind 'manual' and
    still verify, because their signature was made over that kind."""
    path = tmp_path / "l.db"
    _seed_old_schema(path, 3)
    key = Ed25519PrivateKey.generate()
    db = sqlite3.connect(path, isolation_level=None)
    uid = db.execute("SELECT value FROM _meta WHERE key = 'ledger_uid'").fetchone()[0]
    head = db.execute("SELECT entry_hash FROM entries WHERE seq = 3").fetchone()[0]
    cp = sign_checkpoint(key, ledger_uid=uid, entry_count=3, head_hash=head, kind="manual")
    db.execute(
        "INSERT INTO checkpoints (time, entry_count, head_hash, public_key, signature) "
        "VALUES (?, ?, ?, ?, ?)",
        (cp.time, 3, head, cp.public_key, cp.signature),
    )
    db.close()

    ledger = await open_ledger(path, key)
    await ledger.aclose()
    report = verify_ledger(path)
    assert report.ok, report.problems
    assert report.checkpoints_checked == 1


async def test_ledger_from_a_newer_handoffd_is_refused(tmp_path: Path) -> None:
    """A ledger that records a migration this code does not know is refused with advice."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path)
    await ledger.aclose()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', 'x')")
    db.close()
    with pytest.raises(ConfigError, match="upgrade handoffd"):
        await open_ledger(path)
    with pytest.raises(ConfigError, match="upgrade handoffd"):
        LedgerReader(path)


def test_reader_on_an_old_schema_says_to_start_the_daemon(tmp_path: Path) -> None:
    """The read-only CLI cannot migrate: it says what to do instead."""
    path = tmp_path / "l.db"
    _seed_old_schema(path, 2)
    with pytest.raises(ConfigError, match="start handoffd once"):
        LedgerReader(path)
