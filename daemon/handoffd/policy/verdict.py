"""What the policy engine is told about a request, and what it answers.

Both are plain frozen values: the pipeline builds :class:`RequestFacts` (the privacy scanner's
findings summarised as entity type -> count and rule ids, never the values) and acts on the
:class:`PolicyVerdict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from handoffd.domain import HandoffPreference, Reason
from handoffd.errors import PolicyDenied
from handoffd.schema.privacy import Action


@dataclass(frozen=True, slots=True)
class EntitySummary:
    """How often the scanner found one entity type, and which detector rules found it."""

    count: int
    rule_ids: tuple[str, ...] = ()


def _empty() -> Mapping[str, EntitySummary]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the policy needs to know about a request (no text)."""

    app: str
    labels: frozenset[str] = frozenset()
    preference: HandoffPreference = HandoffPreference.AUTO
    prompt_tokens: int = 0
    max_tokens: int = 256
    #: entity type -> summary, from the privacy scanner over everything that would be sent
    entities: Mapping[str, EntitySummary] = field(default_factory=_empty)


class Outcome(StrEnum):
    """Whether a request may leave the device."""

    #: may be handed off (the router still decides whether it is)
    CLOUD = "cloud"
    #: must be answered on the device
    LOCAL = "local"
    #: refused: no answer at all
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class PolicyVerdict:
    """The policy's answer for one request, explained by rule ids.

    ``reasons`` are the enforced rules that matched (blocking ones first, then what applies when
    sending, such as redactions and the allowed targets); ``shadow`` are shadow-mode rules that
    matched and would have changed the outcome or action (logged, not enforced).
    """

    outcome: Outcome
    app: str
    policy_hash: str
    #: allowed cloud targets in order of preference (empty unless the outcome is CLOUD)
    cloud_targets: tuple[str, ...] = ()
    #: found entity type -> its action (allow, pseudonymize, redact, block), for the Redactor
    entity_actions: Mapping[str, Action] = field(default_factory=lambda: MappingProxyType({}))
    reasons: tuple[Reason, ...] = ()
    shadow: tuple[Reason, ...] = ()
    #: the rules that kept the request on the device or refused it
    blocked_by: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        """May the request leave the device?"""
        return self.outcome is Outcome.CLOUD

    @property
    def denied(self) -> bool:
        return self.outcome is Outcome.DENY

    @property
    def cloud_target(self) -> str | None:
        """The preferred allowed target, or None."""
        return self.cloud_targets[0] if self.cloud_targets else None

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.rule_id for r in self.reasons))

    def raise_if_denied(self) -> None:
        """Raise :class:`PolicyDenied` naming the rules when the outcome is DENY."""
        if self.outcome is Outcome.DENY:
            blocking = [r for r in self.reasons if r.rule_id in self.blocked_by]
            detail = "; ".join(f"{r.rule_id}: {r.message}" for r in blocking)
            raise PolicyDenied(
                f"the device's policy refuses this request ({detail})", rule_ids=self.blocked_by
            )
