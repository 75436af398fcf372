"""The policy file: what may leave the device, what it may cost and how often (``version: 1``).

A policy file has global defaults at the top level and per-app sections under ``apps:``. Each
section may hold ``privacy`` (per-entity actions), ``labels`` (never-send rules), ``cloud``
(allowed targets), ``budgets``, ``rate_limits`` and ``routing``. ``tests:`` holds embedded cases
that ``handoffctl policy check`` runs.

Merge rule (how ``apps.<app>`` combines with the defaults; see :mod:`handoffd.policy.compose`):

* ``privacy``, ``routing`` and ``cloud`` are mappings: the app's keys are merged into the
  defaults' key by key, recursively; where both set a value (a scalar or a list) the app wins.
* ``labels``, ``rate_limits`` and ``budgets.limits`` are rule lists: the app inherits every
  default rule and adds its own; ``disable: [rule ids]`` drops inherited rules by id.
* ``budgets.max_cost_per_request``: the app's replaces the defaults'.
* Rule ids are unique across the whole policy (all files, defaults and apps), so a rule id in a
  decision names exactly one place in the policy. Budgets with ``scope: global`` belong at the top
  level only (they count every app's spend).

Several files (``load_policy([a, b])``) combine in order: mappings merge key by key, rule lists and
``tests`` are concatenated, and any other value from a later file replaces the earlier one.
"""

from __future__ import annotations

import re
import zoneinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from handoffd.schema.base import Frozen
from handoffd.schema.privacy import Action, PrivacyConfig
from handoffd.schema.routing import RoutingConfig

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
TARGET_NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
APP_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"



def _shaped(pattern: str, what: str, example: str) -> Any:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{what} {value!r} is not allowed: use {example}")
        return value

    return (AfterValidator(check), WithJsonSchema({"type": "string", "pattern": pattern}))


RuleId = Annotated[
    str,
    *_shaped(
        RULE_ID_PATTERN,
        "rule id",
        "lower-case letters, digits, '.', '_' and '-', such as 'labels.health'",
    ),
]
TargetName = Annotated[
    str,
    *_shaped(
        TARGET_NAME_PATTERN,
        "target name",
        "a name from the daemon config's cloud.targets (lower-case letters, digits, '_', '-')",
    ),
]
AppName = Annotated[
    str,
    *_shaped(
        APP_NAME_PATTERN,
        "app name",
        "letters, digits, '.', '_' and '-', starting with a letter or digit",
    ),
]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Usd = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
PerMinute = Annotated[int, Field(ge=1, le=1_000_000_000)]

#: rule ids the engine itself uses; a policy may not define rules with these ids
RESERVED_RULE_IDS = frozenset({"preference.local_only", "budget.price_unknown"})

class LabelAction(StrEnum):
    """What a never-send rule does with a labelled request."""

    #: answer on the device; never hand off
    LOCAL = "local"
    #: refuse the request entirely
    DENY = "deny"


class LabelRule(Frozen):
    """Requests carrying any of ``labels`` never leave the device (``local``) or are refused."""

    id: RuleId
    labels: Annotated[tuple[Label, ...], Field(min_length=1)]
    action: LabelAction = LabelAction.LOCAL
    #: evaluate and log, do not enforce
    shadow: bool = False
    description: str = ""

    @field_validator("labels")
    @classmethod
    def _lowercase(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(label.casefold() for label in value)


class CloudAccess(Frozen):
    """Which configured cloud targets this section may hand off to, in order of preference."""

    #: rule id named when a request stays local because no target is allowed
    id: RuleId = "cloud.targets"
    #: target names from the daemon config's ``cloud.targets``; empty: nothing leaves the device
    allow: tuple[TargetName, ...] = ()
    #: when a handoff cannot happen (cloud down, breaker open, over budget, rate limited):
    #: ``local_fallback`` answers on the device (route LOCAL_FALLBACK, with the reason);
    #: ``error`` fails the request with that error instead
    on_failure: Literal["local_fallback", "error"] = "local_fallback"

    @field_validator("allow")
    @classmethod
    def _no_repeats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"target {name!r} is listed twice: list each target once")
            seen.add(name)
        return value


class Period(StrEnum):
    """Calendar periods, in the policy's time zone. Weeks start on Monday 00:00 (ISO)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class BudgetScope(StrEnum):
    #: one counter over every app's spend (top level only)
    GLOBAL = "global"
    #: one counter per app
    APP = "app"


class BudgetLimit(Frozen):
    """At most ``usd`` of cloud spend per calendar ``period`` for the ``scope``."""

    id: RuleId
    period: Period
    usd: Usd
    scope: BudgetScope = BudgetScope.APP
    shadow: bool = False
    description: str = ""


class MaxCostPerRequest(Frozen):
    """A request whose worst case (prompt + max_tokens at the target's prices) costs more stays
    on the device (or is refused at reservation)."""

    id: RuleId = "budget.max_cost_per_request"
    usd: Usd
    shadow: bool = False


class Budgets(Frozen):
    max_cost_per_request: MaxCostPerRequest | None = None
    limits: tuple[BudgetLimit, ...] = ()


class RateScope(StrEnum):
    #: one bucket per app
    APP = "app"
    #: one bucket per cloud target (per app and target when defined in an app section)
    TARGET = "target"


class RateLimitRule(Frozen):
    """Requests, tokens (prompt + max_tokens) per minute and concurrent requests.

    GCRA: a full minute's worth may come at once, then admissions spread evenly.
    """

    id: RuleId
    scope: RateScope = RateScope.APP
    #: scope ``target`` only: the targets this rule covers (empty: every target, each its own)
    targets: tuple[TargetName, ...] = ()
    #: scope ``app`` only: ``cloud`` counts handoffs only, ``all`` counts local answers too
    applies_to: Literal["cloud", "all"] = "cloud"
    requests_per_minute: PerMinute | None = None
    tokens_per_minute: PerMinute | None = None
    max_concurrent: Annotated[int, Field(ge=1, le=100_000)] | None = None
    shadow: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _coherent(self) -> RateLimitRule:
        if (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.max_concurrent is None
        ):
            raise ValueError(
                f"rate limit {self.id!r} limits nothing: set requests_per_minute, "
                "tokens_per_minute or max_concurrent"
            )
        if self.targets and self.scope is not RateScope.TARGET:
            raise ValueError(f"rate limit {self.id!r}: 'targets' needs 'scope: target'")
        if self.applies_to == "all" and self.scope is not RateScope.APP:
            raise ValueError(
                f"rate limit {self.id!r}: 'applies_to: all' needs 'scope: app' "
                "(target limits only count handoffs)"
            )
        return self


_SECTION_MARK = "x-handoffd-section"


class RuleSections(Frozen):
    """The rule sections the defaults and each app section share."""

    labels: tuple[LabelRule, ...] = ()
    cloud: CloudAccess | None = None
    budgets: Budgets | None = None
    rate_limits: tuple[RateLimitRule, ...] = ()


class PolicySection(RuleSections):
    """What the defaults may set."""

    privacy: PrivacyConfig | None = None
    routing: RoutingConfig | None = None


#: an app's partial ``privacy`` / ``routing`` section: plain data, validated as the full model
#: only once merged with the defaults (so an app may name e.g. a custom entity type that only
#: the defaults define)
PrivacyOverride = Annotated[
    dict[str, Any], WithJsonSchema({"type": "object", _SECTION_MARK: "PrivacyConfig"})
]
RoutingOverride = Annotated[
    dict[str, Any], WithJsonSchema({"type": "object", _SECTION_MARK: "RoutingConfig"})
]


class AppSection(RuleSections):
    """An app's overrides, merged into the defaults (see the module docstring)."""

    privacy: PrivacyOverride | None = None
    routing: RoutingOverride | None = None
    #: ids of inherited default rules this app does not get
    disable: tuple[RuleId, ...] = ()

    @field_validator("budgets")
    @classmethod
    def _no_global_budget(cls, value: Budgets | None) -> Budgets | None:
        for limit in value.limits if value else ():
            if limit.scope is BudgetScope.GLOBAL:
                raise ValueError(
                    f"budget {limit.id!r} has scope global inside an app section: global "
                    "budgets count every app, put it in the top-level budgets"
                )
        return value


class CaseInput(Frozen):
    """The request of an embedded policy test."""

    prompt: str = ""
    app: str = "default"
    labels: tuple[Label, ...] = ()
    #: the app's handoff preference (values of handoffd.domain.HandoffPreference)
    preference: Literal["auto", "local_only", "prefer_cloud"] = "auto"
    #: tokens in the prompt; default: estimated as one per 4 characters
    prompt_tokens: Annotated[int, Field(ge=0)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] = 256


class CaseExpectation(Frozen):
    """What the policy must decide. Each listed rule id must be among the matched ones (other
    rules may match too)."""

    #: cloud: may be handed off; local: must stay on the device; deny: refused
    outcome: Literal["cloud", "local", "deny"]
    #: enforced rules that must match
    rule_ids: tuple[str, ...] = ()
    #: shadow-mode rules that must match
    shadow_rule_ids: tuple[str, ...] = ()
    #: the preferred allowed cloud target
    target: str | None = None
    #: entity type -> action applied before sending (e.g. EMAIL: redact)
    actions: dict[str, Action] = Field(default_factory=dict)


class PolicyCase(Frozen):
    """One embedded test: an input and the decision the policy must make for it."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    input: CaseInput
    expect: CaseExpectation


class PolicyFile(PolicySection):
    """The whole policy file."""

    version: Literal[1]
    #: IANA time zone of the budgets' calendar periods
    timezone: str = "UTC"
    apps: dict[AppName, AppSection] = Field(default_factory=dict)
    tests: tuple[PolicyCase, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
            ) from None
        return value


def _resolve_section_marks(node: Any) -> Any:
    """App sections' privacy/routing are validated after merging; for editors they are the
    same models as at the top level, so point them at those definitions."""
    if isinstance(node, dict):
        if _SECTION_MARK in node:
            return {"$ref": f"#/$defs/{node[_SECTION_MARK]}"}
        return {k: _resolve_section_marks(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_section_marks(v) for v in node]
    return node


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (for editors and ``handoffctl policy schema``)."""
    schema = _resolve_section_marks(PolicyFile.model_json_schema(mode="validation"))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "handoffd policy file (version 1)",
        **{k: v for k, v in schema.items() if k != "title"},
    }


class PolicySettings(Frozen):
    """The daemon config's ``policy:`` section: where the policy lives and how budgets are kept."""

    #: policy files, combined in order; empty: nothing may leave the device (no handoff at all)
    files: tuple[Path, ...] = ()
    #: seconds between checks of the files for changes (SIGHUP reloads at once)
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    #: the budget store; default ``<state dir>/budget.sqlite3``
    budget_db: Path | None = None
    #: an unsettled reservation stops counting after this long (a crashed daemon's calls)
    reservation_ttl_s: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    #: fsync every budget commit (a power loss cannot forget recorded spend)
    durable_budget: bool = True
