"""What the ledger records: plain values the pipeline builds, and the bodies made from them.

Three things are written:

- :class:`HandoffIntent` (kind ``intent``): written, durably, *before* anything is sent to a
  cloud. If it cannot be written the handoff does not happen (fail closed).
- :class:`HandoffOutcome` (kind ``outcome``): what came of an intent: ``sent``, ``failed``,
  ``fallback`` (answered locally instead) or ``refused`` (e.g. the budget reservation failed).
  It copies the intent's identifying fields, so every row can be read on its own.
- :class:`HandoffRefusal` (kind ``outcome``, outcome ``refused``, no intent): refused by policy,
  budget or rate limit before any intent was written.

Prompts are never stored: only a keyed hash (``prompt_hmac``, from
:meth:`handoffd.ledger.AuditLedger.prompt_digest`) and, where both the policy and the device's
ledger settings opt in, the *redacted* prompt. Redaction is summarized as entity type -> count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from handoffd.domain import Route
from handoffd.errors import InvalidRequest
from handoffd.ledger.chain import BODY_VERSION

_MAX_TEXT = 512  # app names, ids, targets, classes
_MAX_PROMPT = 1 << 20


class EntryKind(StrEnum):
    INTENT = "intent"
    OUTCOME = "outcome"


class Outcome(StrEnum):
    SENT = "sent"
    REFUSED = "refused"
    FAILED = "failed"
    FALLBACK = "fallback"


_DEFAULT_ROUTE = {
    Outcome.SENT: Route.CLOUD,
    Outcome.REFUSED: Route.DENIED,
    Outcome.FAILED: Route.CLOUD,
    Outcome.FALLBACK: Route.LOCAL_FALLBACK,
}


def _empty_scores() -> Mapping[str, float]:
    return MappingProxyType({})


def _empty_counts() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HandoffIntent:
    """A request is about to leave the device."""

    app: str
    #: keyed hash of the prompt as it will be sent (``AuditLedger.prompt_digest(text)``)
    prompt_hmac: str
    cloud_target: str
    cloud_model: str
    client_request_id: str = ""
    strategy: str = ""
    scores: Mapping[str, float] = field(default_factory=_empty_scores)
    rule_ids: tuple[str, ...] = ()
    policy_hash: str = ""
    #: entity type -> how many were redacted (never the values)
    redaction: Mapping[str, int] = field(default_factory=_empty_counts)
    estimated_tokens_in: int = 0
    estimated_cost_usd: float = 0.0
    #: the redacted prompt, only when the policy opts in; the ledger also needs
    #: ``store_redacted_prompt`` in its settings, else it drops this
    redacted_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class HandoffOutcome:
    """What came of an intent."""

    outcome: Outcome
    tokens_in: int = 0
    tokens_out: int = 0
    settled_cost_usd: float = 0.0
    latency_ms: float = 0.0
    #: the handoffd error class name when it failed or fell back, e.g. ``CloudUnavailable``
    error_class: str = ""
    #: the model the cloud says answered, when it differs from the intent's
    cloud_model: str = ""
    #: the final route; default: sent/failed -> cloud, fallback -> local_fallback, refused -> denied
    route: Route | None = None
    #: rules that decided this outcome (e.g. the budget rule that refused it); when empty the
    #: outcome entry carries the intent's rule ids
    rule_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HandoffRefusal:
    """A handoff refused by policy, budget or rate limit before any intent."""

    app: str
    prompt_hmac: str
    rule_ids: tuple[str, ...]
    #: ``PolicyDenied`` or ``ResourceExhausted`` (budget, rate limit)
    error_class: str
    client_request_id: str = ""
    strategy: str = ""
    scores: Mapping[str, float] = field(default_factory=_empty_scores)
    policy_hash: str = ""
    redaction: Mapping[str, int] = field(default_factory=_empty_counts)
    cloud_target: str = ""
    cloud_model: str = ""
    estimated_tokens_in: int = 0
    estimated_cost_usd: float = 0.0
    redacted_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One stored entry, as read back (every field of the body plus its place in the chain)."""

    seq: int
    id: str
    time: str
    kind: str
    intent_id: str | None
    app: str
    client_request_id: str
    route: str
    strategy: str
    scores: Mapping[str, float]
    rule_ids: tuple[str, ...]
    policy_hash: str
    redaction: Mapping[str, int]
    prompt_hmac: str
    redacted_prompt: str | None
    cloud_target: str
    cloud_model: str
    tokens_in: int
    tokens_out: int
    estimated_cost_usd: float
    settled_cost_usd: float
    latency_ms: float
    outcome: str
    error_class: str
    prev_hash: str
    entry_hash: str

    @classmethod
    def from_row(cls, seq: int, prev_hash: str, entry_hash: str, body: str) -> LedgerEntry:
        data: dict[str, Any] = json.loads(body)
        return cls(
            seq=seq,
            id=str(data.get("id", "")),
            time=str(data.get("time", "")),
            kind=str(data.get("kind", "")),
            intent_id=data.get("intent_id"),
            app=str(data.get("app", "")),
            client_request_id=str(data.get("client_request_id", "")),
            route=str(data.get("route", "")),
            strategy=str(data.get("strategy", "")),
            scores=MappingProxyType(dict(data.get("scores") or {})),
            rule_ids=tuple(data.get("rule_ids") or ()),
            policy_hash=str(data.get("policy_hash", "")),
            redaction=MappingProxyType(dict(data.get("redaction") or {})),
            prompt_hmac=str(data.get("prompt_hmac", "")),
            redacted_prompt=data.get("redacted_prompt"),
            cloud_target=str(data.get("cloud_target", "")),
            cloud_model=str(data.get("cloud_model", "")),
            tokens_in=int(data.get("tokens_in", 0)),
            tokens_out=int(data.get("tokens_out", 0)),
            estimated_cost_usd=float(data.get("estimated_cost_usd", 0.0)),
            settled_cost_usd=float(data.get("settled_cost_usd", 0.0)),
            latency_ms=float(data.get("latency_ms", 0.0)),
            outcome=str(data.get("outcome", "")),
            error_class=str(data.get("error_class", "")),
            prev_hash=prev_hash,
            entry_hash=entry_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (mappings as dicts, tuples as lists)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["scores"] = dict(self.scores)
        out["redaction"] = dict(self.redaction)
        out["rule_ids"] = list(self.rule_ids)
        return out


# --- validation and body building --------------------------------------------------------------


def _text(name: str, value: str, *, required: bool = False, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"ledger field {name} must be text, got {type(value).__name__}")
    if required and not value:
        raise InvalidRequest(f"ledger field {name} is empty: set it", field=name)
    if len(value) > limit:
        raise InvalidRequest(
            f"ledger field {name} is {len(value)} characters long; at most {limit} are kept",
            field=name,
        )
    return value


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest(f"ledger field {name} must be a whole number >= 0, got {value!r}")
    return value


def _amount(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"ledger field {name} must be a number, got {value!r}", field=name)
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidRequest(f"ledger field {name} must be finite and >= 0, got {value!r}")
    return number


def _scores(value: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for key, score in value.items():
        out[_text("scores key", key, required=True)] = float(score)
        if not math.isfinite(out[key]):
            raise InvalidRequest(f"ledger field scores[{key!r}] is {score!r}: pass a finite number")
    return out


def _redaction(value: Mapping[str, int]) -> dict[str, int]:
    return {
        _text("redaction key", k, required=True): _count(f"redaction[{k!r}]", n)
        for k, n in value.items()
    }


def _rules(value: tuple[str, ...]) -> list[str]:
    return [_text("rule_ids item", r, required=True) for r in value]


def _prompt(value: str | None, keep: bool) -> str | None:
    if value is None or not keep:
        return None
    return _text("redacted_prompt", value, limit=_MAX_PROMPT)


def _base(entry_id: str, time: str, kind: EntryKind) -> dict[str, Any]:
    return {"v": BODY_VERSION, "id": entry_id, "time": time, "kind": kind.value}


def intent_body(
    intent: HandoffIntent, *, entry_id: str, time: str, keep_redacted_prompt: bool
) -> dict[str, Any]:
    """The body of an intent entry; raises :class:`InvalidRequest` naming a bad field."""
    return {
        **_base(entry_id, time, EntryKind.INTENT),
        "intent_id": None,
        "app": _text("app", intent.app, required=True),
        "client_request_id": _text("client_request_id", intent.client_request_id),
        "route": Route.CLOUD.value,
        "strategy": _text("strategy", intent.strategy),
        "scores": _scores(intent.scores),
        "rule_ids": _rules(intent.rule_ids),
        "policy_hash": _text("policy_hash", intent.policy_hash),
        "redaction": _redaction(intent.redaction),
        "prompt_hmac": _text("prompt_hmac", intent.prompt_hmac, required=True),
        "redacted_prompt": _prompt(intent.redacted_prompt, keep_redacted_prompt),
        "cloud_target": _text("cloud_target", intent.cloud_target, required=True),
        "cloud_model": _text("cloud_model", intent.cloud_model),
        "tokens_in": _count("estimated_tokens_in", intent.estimated_tokens_in),
        "tokens_out": 0,
        "estimated_cost_usd": _amount("estimated_cost_usd", intent.estimated_cost_usd),
        "settled_cost_usd": 0.0,
        "latency_ms": 0.0,
        "outcome": "",
        "error_class": "",
    }


def refusal_body(
    refusal: HandoffRefusal, *, entry_id: str, time: str, keep_redacted_prompt: bool
) -> dict[str, Any]:
    """The body of a refusal (an outcome with no intent)."""
    return {
        **_base(entry_id, time, EntryKind.OUTCOME),
        "intent_id": None,
        "app": _text("app", refusal.app, required=True),
        "client_request_id": _text("client_request_id", refusal.client_request_id),
        "route": Route.DENIED.value,
        "strategy": _text("strategy", refusal.strategy),
        "scores": _scores(refusal.scores),
        "rule_ids": _rules(refusal.rule_ids),
        "policy_hash": _text("policy_hash", refusal.policy_hash),
        "redaction": _redaction(refusal.redaction),
        "prompt_hmac": _text("prompt_hmac", refusal.prompt_hmac, required=True),
        "redacted_prompt": _prompt(refusal.redacted_prompt, keep_redacted_prompt),
        "cloud_target": _text("cloud_target", refusal.cloud_target),
        "cloud_model": _text("cloud_model", refusal.cloud_model),
        "tokens_in": _count("estimated_tokens_in", refusal.estimated_tokens_in),
        "tokens_out": 0,
        "estimated_cost_usd": _amount("estimated_cost_usd", refusal.estimated_cost_usd),
        "settled_cost_usd": 0.0,
        "latency_ms": 0.0,
        "outcome": Outcome.REFUSED.value,
        "error_class": _text("error_class", refusal.error_class, required=True),
    }


def check_outcome(outcome: HandoffOutcome) -> None:
    """Validate an outcome before it is queued (its body needs the intent, built later)."""
    if not isinstance(outcome.outcome, Outcome):
        raise InvalidRequest(f"outcome must be an Outcome, got {outcome.outcome!r}")
    _count("tokens_in", outcome.tokens_in)
    _count("tokens_out", outcome.tokens_out)
    _amount("settled_cost_usd", outcome.settled_cost_usd)
    _amount("latency_ms", outcome.latency_ms)
    _text("error_class", outcome.error_class)
    _text("cloud_model", outcome.cloud_model)
    _rules(outcome.rule_ids)


def outcome_body(
    outcome: HandoffOutcome, intent: Mapping[str, Any], *, entry_id: str, time: str
) -> dict[str, Any]:
    """The body of an outcome of ``intent`` (the intent's body), copying its identifying fields."""
    route = outcome.route if outcome.route is not None else _DEFAULT_ROUTE[outcome.outcome]
    body = dict(intent)
    body.update(_base(entry_id, time, EntryKind.OUTCOME))
    body.update(
        {
            "intent_id": intent["id"],
            "route": route.value,
            "cloud_model": outcome.cloud_model or intent.get("cloud_model", ""),
            "tokens_in": outcome.tokens_in,
            "tokens_out": outcome.tokens_out,
            "settled_cost_usd": float(outcome.settled_cost_usd),
            "latency_ms": float(outcome.latency_ms),
            "outcome": outcome.outcome.value,
            "error_class": outcome.error_class,
            "rule_ids": list(outcome.rule_ids) or list(intent.get("rule_ids", [])),
            # the prompt (redacted or hashed) is on the intent already
            "redacted_prompt": None,
        }
    )
    return body
