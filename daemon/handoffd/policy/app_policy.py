"""A loaded policy, and the merged, ready-to-evaluate policy of one app.

:class:`LoadedPolicy` is immutable: a reload builds a new one and swaps it in whole (see
:mod:`handoffd.policy.reload`). Every app section is resolved at load, so errors surface at load
and ``for_app`` is a dictionary lookup; an app without a section gets the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

from handoffd.policy.compose import ResolvedSection
from handoffd.schema.policy import (
    BudgetLimit,
    CloudAccess,
    LabelRule,
    MaxCostPerRequest,
    PolicyCase,
    PolicyFile,
    RateLimitRule,
)
from handoffd.schema.privacy import Action, PrivacyConfig
from handoffd.schema.routing import RoutingConfig

#: the name of the defaults' AppPolicy (apps without a section of their own)
DEFAULTS = "*"


@dataclass(frozen=True, slots=True)
class AppPolicy:
    """Everything the engine, the budget ledger, the rate limiter and the router need for one
    app's requests, with the defaults already merged in."""

    #: the app's section name, or ``"*"`` for the defaults
    name: str
    policy_hash: str
    timezone: ZoneInfo
    privacy: PrivacyConfig
    routing: RoutingConfig
    labels: tuple[LabelRule, ...]
    cloud: CloudAccess
    budgets: tuple[BudgetLimit, ...]
    max_cost_per_request: MaxCostPerRequest | None
    rate_limits: tuple[RateLimitRule, ...]
    #: label (casefolded) -> the rules that name it, in file order
    label_index: Mapping[str, tuple[LabelRule, ...]]
    #: entity type -> action, for every type the privacy section knows
    entity_actions: Mapping[str, Action]

    @classmethod
    def build(
        cls, name: str, section: ResolvedSection, policy_hash: str, timezone: ZoneInfo
    ) -> AppPolicy:
        index: dict[str, list[LabelRule]] = {}
        for rule in section.labels:
            for label in rule.labels:
                index.setdefault(label, []).append(rule)
        return cls(
            name=name,
            policy_hash=policy_hash,
            timezone=timezone,
            privacy=section.privacy,
            routing=section.routing,
            labels=section.labels,
            cloud=section.cloud,
            budgets=section.budgets,
            max_cost_per_request=section.max_cost_per_request,
            rate_limits=section.rate_limits,
            label_index=MappingProxyType({k: tuple(v) for k, v in index.items()}),
            entity_actions=MappingProxyType(section.privacy.effective_actions()),
        )

    def action_for(self, entity_type: str) -> Action:
        action = self.entity_actions.get(entity_type)
        return action if action is not None else self.privacy.default_action


class LoadedPolicy:
    """A validated policy: the merged document, its hash and every app's resolved policy."""

    __slots__ = ("_apps", "_defaults", "document", "hash", "sources", "timezone")

    def __init__(
        self,
        document: PolicyFile,
        policy_hash: str,
        sources: tuple[Path, ...],
        defaults: AppPolicy,
        apps: Mapping[str, AppPolicy],
    ) -> None:
        self.document = document
        #: sha256 (hex) over the canonical JSON of the merged, validated document
        self.hash = policy_hash
        self.sources = sources
        self.timezone = defaults.timezone
        self._defaults = defaults
        self._apps = dict(apps)

    def for_app(self, app: str) -> AppPolicy:
        """The app's merged policy; apps without a section get the defaults."""
        return self._apps.get(app, self._defaults)

    @property
    def defaults(self) -> AppPolicy:
        return self._defaults

    @property
    def app_names(self) -> tuple[str, ...]:
        """Apps with a section of their own."""
        return tuple(self._apps)

    @property
    def cases(self) -> tuple[PolicyCase, ...]:
        return self.document.tests

    def __repr__(self) -> str:
        return f"LoadedPolicy(hash={self.hash[:12]}, apps={list(self._apps)})"
