"""Helpers for the ledger tests: a stepping clock, a realistic populated ledger, an attacker."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handoffd.ledger import (
    AuditLedger,
    HandoffIntent,
    HandoffOutcome,
    HandoffRefusal,
    Outcome,
)

HMAC_KEY = b"k" * 32
DAY0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
APPS = ("kiosk", "notes", "robot")


class SteppingClock:
    """A clock for entries: starts at ``start`` and moves ``step`` forward on every reading."""

    def __init__(self, start: datetime = DAY0, step: timedelta = timedelta(minutes=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        value = self.now
        self.now += self.step
        return value


async def open_ledger(
    path: Path, key: Ed25519PrivateKey | None = None, **kwargs: object
) -> AuditLedger:
    return await AuditLedger.open(path, hmac_key=HMAC_KEY, signing_key=key, **kwargs)  # type: ignore[arg-type]


def intent(ledger: AuditLedger, app: str = "kiosk", **overrides: object) -> HandoffIntent:
    fields: dict[str, object] = {
        "app": app,
        "prompt_hmac": ledger.prompt_digest(f"prompt of {app}"),
        "cloud_target": "openai",
        "cloud_model": "gpt-4o-mini",
        "client_request_id": f"req-{app}",
        "strategy": "cascade",
        "scores": {"confidence": 0.31, "threshold": 0.5},
        "rule_ids": ("router.cascade.low_confidence",),
        "policy_hash": "p" * 16,
        "redaction": {"EMAIL": 1},
        "estimated_tokens_in": 120,
        "estimated_cost_usd": 0.002,
    }
    fields.update(overrides)
    return HandoffIntent(**fields)  # type: ignore[arg-type]


def refusal(ledger: AuditLedger, app: str, rule: str) -> HandoffRefusal:
    return HandoffRefusal(
        app=app,
        prompt_hmac=ledger.prompt_digest(f"refused prompt of {app}"),
        rule_ids=(rule,),
        error_class="PolicyDenied" if rule.startswith("privacy") else "ResourceExhausted",
        cloud_target="openai",
    )


@dataclass
class Population:
    """What :func:`populate` wrote, to compare against what is read back."""

    ids: list[str] = field(default_factory=list)
    handoffs: dict[tuple[str, str], int] = field(default_factory=dict)
    refusals: dict[tuple[str, str], int] = field(default_factory=dict)
    spend: dict[tuple[str, str], float] = field(default_factory=dict)

    def bump(self, table: dict[tuple[str, str], int], app: str, day: str) -> None:
        table[(app, day)] = table.get((app, day), 0) + 1


async def populate(ledger: AuditLedger, clock: SteppingClock, *, days: int = 3) -> Population:
    """Per day and app: 2 sent handoffs, 1 fallback, and (kiosk, robot) refusals."""
    pop = Population()
    outcomes = (Outcome.SENT, Outcome.SENT, Outcome.FALLBACK)
    for d in range(days):
        clock.now = DAY0 + timedelta(days=d)
        day = clock.now.date().isoformat()
        for n, app in enumerate(APPS):
            for outcome in outcomes:
                intent_id = await ledger.record_intent(intent(ledger, app))
                pop.ids.append(intent_id)
                pop.bump(pop.handoffs, app, day)
                cost = 0.001 * (n + 1) if outcome is Outcome.SENT else 0.0
                pop.spend[(app, day)] = pop.spend.get((app, day), 0.0) + cost
                pop.ids.append(
                    await ledger.record_outcome(
                        intent_id,
                        HandoffOutcome(
                            outcome,
                            tokens_in=100,
                            tokens_out=50 if outcome is Outcome.SENT else 0,
                            settled_cost_usd=cost,
                            latency_ms=420.0,
                            error_class="" if outcome is Outcome.SENT else "CloudUnavailable",
                        ),
                    )
                )
            if app != "notes":
                rule = "privacy.ssn.block" if app == "kiosk" else "budget.daily"
                pop.ids.append(await ledger.record_refusal(refusal(ledger, app, rule)))
                pop.bump(pop.refusals, app, day)
    return pop


def attacker(path: Path) -> sqlite3.Connection:
    """A plain writable sqlite3 connection, as someone editing the file would open it."""
    return sqlite3.connect(path, isolation_level=None)


def rows(path: Path) -> list[tuple[int, str, str, str]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [
            (int(s), str(p), str(h), str(b))
            for s, p, h, b in db.execute(
                "SELECT seq, prev_hash, entry_hash, body FROM entries ORDER BY seq"
            )
        ]
    finally:
        db.close()


ClockFactory = Callable[[], SteppingClock]
