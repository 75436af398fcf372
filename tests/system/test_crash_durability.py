"""Crash durability of the whole daemon: ``kill -9`` under load, restart, and again.

Fifty concurrent clients hand requests off (PREFER_CLOUD) to a fake cloud through a real daemon
process; the daemon is SIGKILLed at a random point while requests are in flight, restarted on the
same state directory, twenty times. Afterwards:

- every handoff a client saw acknowledged (a response with route CLOUD and a ledger id) is in
  the ledger as an intent followed by its ``sent`` outcome with the same cost, and its budget
  reservation is settled at that cost;
- the ledger has no partial entries (every outcome follows its own intent, at most one outcome
  per intent) and ``verify_ledger`` passes after every kill;
- the budget of the app that has one was never overspent, although it ran out during the test
  (so the check had something to catch), and reservations the killed daemons left open will
  expire rather than count as spend.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import sqlite3
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from handoffd.auth import TokenStore
from handoffd.auth.tokens import default_token_file
from handoffd.domain import CallerRole
from handoffd.ledger import LedgerEntry, LedgerReader, verify_ledger
from handoffd.policy import load_policy
from handoffd.policy.budget_report import budget_snapshot, open_readonly
from handoffd.settings import state_dir
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

from tests.fakecloud import FakeCloud
from tests.system.daemonproc import DaemonFleet, DaemonProcess, cloud_target, write_yaml

ROUNDS = 20
#: daemons importing ahead of their turn
PREWARM_AHEAD = 2
CLIENTS = 50
CHANNELS = 5
MAX_TOKENS = 8
#: USD per million tokens: a handoff of the 4-word reply costs ~$0.008, its worst case ~$0.016
OUTPUT_PRICE = 2000.0
CAPPED_APP = "capped"
CAPPED_RULE = "budget.capped.month"
CAPPED_USD = 0.30
RESERVATION_TTL_S = 10.0
PROMPT_MARK = "crash-safe widget question"
REPLY = "Handed off and answered."


@dataclass
class Ack:
    app: str
    response: pb.ChatResponse


@dataclass
class RoundLog:
    acks: list[Ack] = field(default_factory=list)
    errors_before_kill: list[str] = field(default_factory=list)
    errors_after_kill: Counter[str] = field(default_factory=Counter)
    killed: bool = False
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    kill_after: int = 0


def _policy(path: Path) -> Path:
    return write_yaml(
        path,
        {
            "version": 1,
            "cloud": {"allow": ["cloud"]},
            "apps": {
                CAPPED_APP: {
                    "budgets": {
                        "limits": [
                            {
                                "id": CAPPED_RULE,
                                "scope": "app",
                                "period": "month",
                                "usd": CAPPED_USD,
                            }
                        ]
                    }
                }
            },
        },
    )


async def _client(
    stub: pb_grpc.HandoffdStub, number: int, token: str | None, log: RoundLog
) -> None:
    """Ask again and again until the daemon goes away; record what was acknowledged."""
    app = CAPPED_APP if token else "default"
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    asked = 0
    while True:
        asked += 1
        request = pb.ChatRequest(
            messages=[
                pb.Message(role=pb.ROLE_USER, content=f"{PROMPT_MARK} {number}.{asked}: why?")
            ],
            params=pb.GenerationParams(max_tokens=MAX_TOKENS),
            handoff=pb.PREFER_CLOUD,
            client_request_id=f"c{number}-{asked}",
        )
        try:
            response = await stub.Chat(request, metadata=metadata, timeout=60)
        except grpc.aio.AioRpcError as exc:
            if log.killed:
                log.errors_after_kill[exc.code().name] += 1
            else:
                log.errors_before_kill.append(f"{exc.code().name}: {exc.details()}")
                log.enough.set()  # stop the round: something is wrong
            return
        log.acks.append(Ack(app, response))
        if len(log.acks) >= log.kill_after:
            log.enough.set()


async def _load_and_kill(daemon: DaemonProcess, token: str, log: RoundLog) -> None:
    channels = [grpc.aio.insecure_channel(f"unix://{daemon.socket}") for _ in range(CHANNELS)]
    try:
        stubs = [pb_grpc.HandoffdStub(c) for c in channels]
        clients = [
            asyncio.create_task(_client(stubs[n % CHANNELS], n, token if n % 2 else None, log))
            for n in range(CLIENTS)
        ]
        await asyncio.wait_for(log.enough.wait(), timeout=120)
        log.killed = True
        daemon.signal(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*clients), timeout=120)
        assert await daemon.wait_async(30) == -signal.SIGKILL
    finally:
        for channel in channels:
            await channel.close(None)


def _ledger_entries(path: Path) -> list[LedgerEntry]:
    with LedgerReader(path) as reader:
        return reader.entries(limit=0, newest_first=False)


def _reservations(path: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(
            "SELECT request_id, app, state, reserved_nanos, settled_nanos, created_at, "
            "expires_at FROM budget_reservations"
        ).fetchall()
    finally:
        db.close()


def _check_ledger_shape(entries: list[LedgerEntry]) -> None:
    """No partial entries: every entry complete and of a known kind, every outcome after its
    own intent, at most one outcome per intent."""
    intents: dict[str, LedgerEntry] = {}
    outcomes: dict[str, LedgerEntry] = {}
    for entry in entries:
        assert entry.id, entry
        assert entry.time, entry
        assert entry.entry_hash, entry
        if entry.kind == "intent":
            intents[entry.id] = entry
        else:
            assert entry.kind == "outcome", entry
            assert entry.intent_id in intents, f"outcome {entry.id} without an earlier intent"
            assert entry.intent_id not in outcomes, f"second outcome for {entry.intent_id}"
            outcomes[entry.intent_id] = entry


async def test_kill_9_under_load_loses_no_acknowledged_handoff(
    fleet: DaemonFleet, tmp_path: Path
) -> None:
    """Twenty SIGKILLs under 50 concurrent handoff clients: acknowledged handoffs are all in
    the ledger and the budget store, the ledger verifies after every kill, no budget overspend
    (see the module docstring)."""
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    token = TokenStore(default_token_file(state)).add(CAPPED_APP, CallerRole.APP)
    fleet.forbid(token, PROMPT_MARK)
    policy = _policy(tmp_path / "policy.yaml")
    ledger, budget_db = state / "ledger.sqlite3", state / "budget.sqlite3"
    rng = random.Random(20261126)
    logs: list[RoundLog] = []
    with FakeCloud.start_in_thread(reply=REPLY) as fake:
        config = fleet.config(
            cloud=cloud_target(fake.url, output_price=OUTPUT_PRICE),
            policy_files=[policy],
            policy={"reservation_ttl_s": RESERVATION_TTL_S},
        )
        # each daemon imports while earlier ones work (see tests.system.prewarmed_daemon)
        daemons = (
            fleet.spawn(config, name=f"run{n:02d}", prewarmed=True) for n in range(ROUNDS + 1)
        )
        waiting = deque(itertools.islice(daemons, PREWARM_AHEAD))
        for round_number in range(ROUNDS):
            daemon = waiting.popleft()
            waiting.extend(itertools.islice(daemons, 1))
            daemon.go()
            await daemon.wait_ready_async()
            log = RoundLog(kill_after=rng.randint(5, 40))
            logs.append(log)
            await _load_and_kill(daemon, token, log)
            assert log.errors_before_kill == [], log.errors_before_kill
            report = verify_ledger(ledger)
            assert report.ok, f"after kill {round_number + 1}: {report.summary()}"
        final = waiting.popleft()
        final.go()
        await final.wait_ready_async()
        final.signal(signal.SIGTERM)
        assert await final.wait_async(15) == 0, final.describe()
        assert fake.chat_bodies()

    acks = [ack for log in logs for ack in log.acks]
    assert all(set(log.errors_after_kill) <= {"UNAVAILABLE"} for log in logs), [
        log.errors_after_kill for log in logs
    ]
    cloud_acks = [a for a in acks if a.response.route == pb.CLOUD]
    assert len(cloud_acks) >= ROUNDS * 2, "too few handoffs completed to say anything"
    assert verify_ledger(ledger).ok
    entries = _ledger_entries(ledger)
    _check_ledger_shape(entries)
    by_id = {e.id: e for e in entries}
    outcome_of = {e.intent_id: e for e in entries if e.kind == "outcome"}
    reservation_of = {r["request_id"]: r for r in _reservations(budget_db)}
    for ack in cloud_acks:
        r = ack.response
        intent = by_id.get(r.ledger_id)
        assert intent is not None, f"acknowledged handoff {r.ledger_id} is not in the ledger"
        assert intent.kind == "intent"
        assert intent.app == ack.app
        outcome = outcome_of.get(r.ledger_id)
        assert outcome is not None, f"acknowledged handoff {r.ledger_id} has no outcome"
        assert outcome.outcome == "sent"
        assert outcome.settled_cost_usd == pytest.approx(r.cost_usd)
        reservation = reservation_of[r.ledger_id]
        assert reservation["state"] == "settled"
        assert reservation["settled_nanos"] / 1e9 == pytest.approx(r.cost_usd)

    for ack in acks:  # refusals answered locally are acknowledged handoff attempts too
        if ack.response.ledger_id:
            assert ack.response.ledger_id in by_id
            assert ack.response.ledger_id in outcome_of

    # the capped app's budget ran out (refusals) and was never overspent
    refused = [
        a
        for a in acks
        if a.response.route == pb.LOCAL_FALLBACK
        and a.response.decision.reasons
        and a.response.decision.reasons[0].rule_id == CAPPED_RULE
    ]
    assert refused, "the capped budget never ran out: the overspend check would prove nothing"
    assert all(a.app == CAPPED_APP for a in refused)
    capped_rows = [r for r in _reservations(budget_db) if r["app"] == CAPPED_APP]
    settled = sum(r["settled_nanos"] for r in capped_rows if r["state"] == "settled")
    assert settled <= CAPPED_USD * 1e9
    left_open = [r for r in _reservations(budget_db) if r["state"] == "open"]
    acked_ids = {a.response.ledger_id for a in cloud_acks}
    assert not {r["request_id"] for r in left_open} & acked_ids
    for row in left_open:  # only killed daemons leave reservations open; they expire
        assert row["expires_at"] - row["created_at"] == pytest.approx(RESERVATION_TTL_S)
    conn = await open_readonly(budget_db)
    try:
        later = await budget_snapshot(
            conn, load_policy([policy]), time.time() + RESERVATION_TTL_S + 1, [CAPPED_APP]
        )
    finally:
        await conn.close()
    assert later.open_reservations == ()
    (capped,) = [b for b in later.budgets if b.rule_id == CAPPED_RULE]
    assert capped.reserved_usd == 0
    assert capped.settled_usd == pytest.approx(settled / 1e9)
    assert capped.settled_usd <= CAPPED_USD
