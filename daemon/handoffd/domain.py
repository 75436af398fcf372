"""Plain, frozen value types shared by every layer.

Transports convert their wire messages into these, the pipeline orders the steps over them, and
components (engine, router, policy, cloud, ledger) take and return them. Nothing here does I/O.
Validation of client input happens where the input arrives (see :mod:`handoffd.validation`); a
value of these types is already valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class HandoffPreference(StrEnum):
    """What the calling app asks for; the device's policy has the last word."""

    AUTO = "auto"
    LOCAL_ONLY = "local_only"
    PREFER_CLOUD = "prefer_cloud"


class Route(StrEnum):
    """Where a request was answered."""

    LOCAL = "local"
    CLOUD = "cloud"
    #: the request was meant for the cloud, but the cloud could not be used; answered locally
    LOCAL_FALLBACK = "local_fallback"
    #: nobody answered: the policy refused the request
    DENIED = "denied"


class Priority(StrEnum):
    INTERACTIVE = "interactive"
    BACKGROUND = "background"


class FinishReason(StrEnum):
    STOP = "stop"  # EOS or a stop sequence
    LENGTH = "length"  # max_tokens reached
    HANDOFF = "handoff"  # the local model asked for the cloud
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means off
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    preference: HandoffPreference = HandoffPreference.AUTO
    labels: frozenset[str] = frozenset()
    client_request_id: str = ""
    #: the calling app's identity (from its socket or token); policies and the ledger key on it
    app: str = "default"
    priority: Priority = Priority.INTERACTIVE


@dataclass(frozen=True, slots=True)
class Reason:
    """One explained step of a decision: which rule said what."""

    rule_id: str
    message: str


def _frozen_scores(scores: Mapping[str, float] | None = None) -> Mapping[str, float]:
    return MappingProxyType(dict(scores or {}))


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request goes and why."""

    route: Route
    strategy: str
    reasons: tuple[Reason, ...] = ()
    scores: Mapping[str, float] = field(default_factory=_frozen_scores)
    cloud_target: str | None = None

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.reasons)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Timing:
    queue_ms: float = 0.0
    ttft_ms: float = 0.0
    total_ms: float = 0.0
    decode_tokens_per_s: float = 0.0


@dataclass(frozen=True, slots=True)
class TokenChunk:
    """A piece of generated text with the evidence the router needs.

    ``text`` may be empty when a token completes no whole UTF-8 character yet.
    """

    text: str
    token_id: int
    logprob: float
    #: entropy of the next-token distribution (nats) at this step
    entropy: float = 0.0


@dataclass(frozen=True, slots=True)
class ChatResult:
    text: str
    route: Route
    decision: Decision
    model: str
    usage: Usage = field(default_factory=Usage)
    timing: Timing = field(default_factory=Timing)
    cost_usd: float = 0.0
    ledger_id: str = ""
    finish_reason: FinishReason = FinishReason.STOP
    policy_hash: str = ""


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    decision: Decision


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    text: str


@dataclass(frozen=True, slots=True)
class FinalEvent:
    result: ChatResult


ChatEvent = DecisionEvent | DeltaEvent | FinalEvent


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    layout: str
    precision: str
    context_window: int
    execution_provider: str
    path: str
    source: str = ""


class CallerRole(StrEnum):
    """What an authenticated caller may do: ``app`` chats as itself, ``admin`` also reads the
    audit ledger, reloads policy and sees status."""

    APP = "app"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as established by the transport (socket or bearer token)."""

    app: str
    role: CallerRole = CallerRole.APP

    @property
    def is_admin(self) -> bool:
        return self.role is CallerRole.ADMIN
