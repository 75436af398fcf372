"""Writing the ledger: durability on return, group commit, outcomes, validation, fail closed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from handoffd.errors import InvalidRequest, NotFound, Unavailable
from handoffd.ledger import (
    AuditLedger,
    HandoffOutcome,
    LedgerReader,
    Outcome,
    verify_ledger,
)
from handoffd.ledger.ulid import is_ulid

from tests.ledger.ledger_testkit import HMAC_KEY, intent, open_ledger, refusal


def _count(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM entries").fetchone()[0])
    finally:
        db.close()


def _all_bytes(directory: Path) -> bytes:
    """Everything on disk: the database, its WAL and any other file."""
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())


async def test_intent_is_in_the_file_when_record_intent_returns(tmp_path: Path) -> None:
    """record_intent returns a ULID only once another connection can read the entry."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path)
    try:
        entry_id = await ledger.record_intent(intent(ledger))
        assert is_ulid(entry_id)
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        row = db.execute("SELECT kind, app FROM entries WHERE id = ?", (entry_id,)).fetchone()
        db.close()
        assert row == ("intent", "kiosk")
    finally:
        await ledger.aclose()


async def test_concurrent_records_share_transactions_and_chain_correctly(tmp_path: Path) -> None:
    """200 concurrent intents are written in fewer transactions than entries (group commit),
    every one gets a distinct, ordered id, and the chain verifies."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path)
    try:
        ids = await asyncio.gather(*(ledger.record_intent(intent(ledger)) for _ in range(200)))
        assert len(set(ids)) == 200
        assert ledger.commit_count < 200
        assert ledger.entry_count == 200
    finally:
        await ledger.aclose()
    assert verify_ledger(path).ok
    assert _count(path) == 200
    assert sorted(ids) == ids  # ULIDs sort in the order the calls were made


async def test_outcome_copies_the_intent_and_maps_routes(tmp_path: Path) -> None:
    """Outcome entries carry the intent's app, target and request id, link to the intent, and
    take the route that fits the outcome; refusals need no intent."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path)
    try:
        sent_intent = await ledger.record_intent(intent(ledger, "notes", client_request_id="r1"))
        sent = await ledger.record_outcome(
            sent_intent, HandoffOutcome(Outcome.SENT, tokens_in=9, settled_cost_usd=0.01)
        )
        fb_intent = await ledger.record_intent(intent(ledger, "notes"))
        fallback = await ledger.record_outcome(
            fb_intent, HandoffOutcome(Outcome.FALLBACK, error_class="CloudUnavailable")
        )
        refused = await ledger.record_refusal(refusal(ledger, "kiosk", "privacy.ssn.block"))
    finally:
        await ledger.aclose()
    with LedgerReader(path) as reader:
        s, f, r = reader.get(sent), reader.get(fallback), reader.get(refused)
    assert (s.kind, s.intent_id, s.app, s.client_request_id) == (
        "outcome",
        sent_intent,
        "notes",
        "r1",
    )
    assert (s.route, s.outcome, s.cloud_target, s.tokens_in) == ("cloud", "sent", "openai", 9)
    assert s.settled_cost_usd == 0.01
    assert (f.route, f.outcome, f.error_class) == ("local_fallback", "fallback", "CloudUnavailable")
    assert (r.route, r.outcome, r.intent_id, r.rule_ids) == (
        "denied",
        "refused",
        None,
        ("privacy.ssn.block",),
    )


async def test_outcome_of_an_intent_from_an_earlier_run(tmp_path: Path) -> None:
    """An outcome can follow an intent written before a restart (read back from the file)."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path)
    intent_id = await ledger.record_intent(intent(ledger, "robot"))
    await ledger.aclose()
    ledger = await open_ledger(path)
    try:
        outcome_id = await ledger.record_outcome(intent_id, HandoffOutcome(Outcome.FAILED))
    finally:
        await ledger.aclose()
    with LedgerReader(path) as reader:
        assert reader.get(outcome_id).app == "robot"
    assert verify_ledger(path).ok


async def test_bad_outcomes_are_refused_without_breaking_the_batch(tmp_path: Path) -> None:
    """Unknown intent ids (NotFound), malformed ids and second outcomes (InvalidRequest) are
    refused; good entries queued alongside are still written."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path)
    try:
        intent_id = await ledger.record_intent(intent(ledger))
        await ledger.record_outcome(intent_id, HandoffOutcome(Outcome.SENT))
        results = await asyncio.gather(
            ledger.record_outcome("01HZZZZZZZZZZZZZZZZZZZZZZZ", HandoffOutcome(Outcome.SENT)),
            ledger.record_outcome(intent_id, HandoffOutcome(Outcome.SENT)),
            ledger.record_intent(intent(ledger)),
            return_exceptions=True,
        )
        with pytest.raises(InvalidRequest, match="not a ledger entry id"):
            await ledger.record_outcome("nope", HandoffOutcome(Outcome.SENT))
    finally:
        await ledger.aclose()
    assert isinstance(results[0], NotFound)
    assert isinstance(results[1], InvalidRequest)
    assert isinstance(results[2], str)
    assert _count(path) == 3
    assert verify_ledger(path).ok


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"app": ""}, "app"),
        ({"scores": {"confidence": float("nan")}}, "scores"),
        ({"estimated_tokens_in": -1}, "estimated_tokens_in"),
        ({"estimated_cost_usd": float("inf")}, "estimated_cost_usd"),
        ({"rule_ids": ("",)}, "rule_ids"),
    ],
)
async def test_invalid_intents_are_rejected_before_anything_is_written(
    tmp_path: Path, overrides: dict[str, Any], field: str
) -> None:
    """An intent with a bad field raises InvalidRequest naming the field; nothing is written."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path)
    try:
        with pytest.raises(InvalidRequest, match=field):
            await ledger.record_intent(replace(intent(ledger), **overrides))
    finally:
        await ledger.aclose()
    assert _count(path) == 0


async def test_prompt_digest_is_a_keyed_hmac(tmp_path: Path) -> None:
    """prompt_digest is HMAC-SHA256 under the device key: stable per key, different across
    keys, and not the plain SHA-256 of the text."""
    a = await AuditLedger.open(tmp_path / "a.db", hmac_key=HMAC_KEY, signing_key=None)
    b = await AuditLedger.open(tmp_path / "b.db", hmac_key=b"x" * 32, signing_key=None)
    try:
        text = "what is my balance?"
        expected = hmac.new(HMAC_KEY, text.encode(), hashlib.sha256).hexdigest()
        assert a.prompt_digest(text) == expected == a.prompt_digest(text)
        assert b.prompt_digest(text) != expected
        assert expected != hashlib.sha256(text.encode()).hexdigest()
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("opted_in", [False, True])
async def test_prompt_text_is_stored_only_redacted_and_only_when_opted_in(
    tmp_path: Path, opted_in: bool
) -> None:
    """The raw prompt never reaches the file; the redacted prompt does only when the device's
    ledger settings opt in (the pipeline passes it only when the policy opts in)."""
    path = tmp_path / "l.db"
    raw = "my SSN is 078-05-1120, call me"
    redacted = "my SSN is <SSN_1>, call me"
    ledger = await open_ledger(path, store_redacted_prompt=opted_in)
    try:
        entry_id = await ledger.record_intent(
            intent(ledger, prompt_hmac=ledger.prompt_digest(raw), redacted_prompt=redacted)
        )
        with LedgerReader(path) as reader:
            stored = reader.get(entry_id).redacted_prompt
    finally:
        await ledger.aclose()
    files = _all_bytes(tmp_path)
    assert b"078-05-1120" not in files
    assert stored == (redacted if opted_in else None)
    assert (b"<SSN_1>" in files) is opted_in


async def test_write_that_cannot_commit_fails_closed_and_the_chain_survives(
    tmp_path: Path,
) -> None:
    """While another process holds the write lock past the busy timeout, record_intent raises
    Unavailable (so the handoff does not happen); afterwards writing resumes and verifies."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path, busy_timeout_s=0.05)
    try:
        await ledger.record_intent(intent(ledger))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(Unavailable):
            await ledger.record_intent(intent(ledger))
        blocker.execute("ROLLBACK")
        blocker.close()
        await ledger.record_intent(intent(ledger))
    finally:
        await ledger.aclose()
    assert _count(path) == 2
    assert verify_ledger(path).ok


async def test_a_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    """Two ledgers writing one file would fork the chain: the second notices and refuses."""
    path = tmp_path / "l.db"
    first = await open_ledger(path)
    second = await open_ledger(path)
    try:
        await first.record_intent(intent(first))
        with pytest.raises(Unavailable, match="another process"):
            await second.record_intent(intent(second))
    finally:
        await first.aclose()
        await second.aclose()
    assert verify_ledger(path).ok


async def test_closed_ledger_refuses_writes(tmp_path: Path) -> None:
    """After aclose, record_* raises Unavailable instead of hanging."""
    ledger = await open_ledger(tmp_path / "l.db")
    await ledger.aclose()
    with pytest.raises(Unavailable):
        await ledger.record_intent(intent(ledger))


async def test_short_hmac_key_is_a_config_error(tmp_path: Path) -> None:
    """A HMAC key under 32 bytes is refused at open."""
    from handoffd.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 32"):
        await AuditLedger.open(tmp_path / "l.db", hmac_key=b"short", signing_key=None)
