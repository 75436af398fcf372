"""The ``routing:`` section of the policy file: which strategies decide LOCAL or CLOUD, and how.

Order of precedence (fixed by when the evidence exists, documented in :mod:`handoffd.router`):

1. **hard rules** — a prompt that does not fit the local context window, or a capability the
   local model lacks (tools, images, JSON schema), needs the cloud; if the cloud may not be used
   the request is DENIED (never silently truncated or half-answered);
2. **the client's preference** — ``local_only`` keeps the request on the device, ``prefer_cloud``
   sends it to the cloud when the policy allows;
3. **soft rules** — prompt length, then keyword and regex rules, in file order; the first match
   decides (a rule may route to ``local`` as well as ``cloud``);
4. **pre-generation scorers** (``learned``, ``pre_score``) in the order listed in ``strategies``;
   ``combine: any`` hands off when any of them says so, ``combine: first`` lets the first listed
   scorer decide alone;
5. **in-generation strategies** (``model_handoff``, ``cascade``) watch the local answer while it
   is generated and can still switch a LOCAL decision to CLOUD.

A strategy that is not listed in ``strategies`` does not run (rules excepted: the hard rules and
the preference always apply; listing ``rules`` turns on the soft rules).

Example::

    routing:
      strategies: [rules, learned, model_handoff]
      learned: {threshold: 0.5}
      rules:
        max_local_prompt_tokens: 1500
        keywords:
          - {id: legal, words: [contract, lawsuit], route: cloud}
        patterns:
          - {id: big-multiplication, regex: '\\d{3,}\\s*[*x]\\s*\\d{3,}'}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from handoffd.schema.base import Frozen

StrategyName = Literal["rules", "learned", "pre_score", "cascade", "model_handoff"]
#: strategies that score a request before anything is generated
PRE_GENERATION: tuple[StrategyName, ...] = ("learned", "pre_score")
#: strategies that watch the local answer while it is generated
IN_GENERATION: tuple[StrategyName, ...] = ("model_handoff", "cascade")

RouteChoice = Literal["cloud", "local"]
Capability = Literal["tools", "images", "json_schema"]
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]

DEFAULT_MARKER = "[[HANDOFF]]"


class KeywordRule(Frozen):
    """Route a request whose last user message contains one of ``words`` (whole words, any case)."""

    id: RuleId
    words: tuple[str, ...] = Field(min_length=1)
    route: RouteChoice = "cloud"
    description: str = ""

    @field_validator("words")
    @classmethod
    def _non_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for word in value:
            if not word.strip():
                raise ValueError("a keyword is blank: remove it or write the word")
        return value


class PatternRule(Frozen):
    """Route a request whose last user message matches ``regex`` (Python syntax)."""

    id: RuleId
    regex: str = Field(min_length=1, max_length=1000)
    ignore_case: bool = True
    route: RouteChoice = "cloud"
    description: str = ""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"invalid regular expression {value!r}: {exc}; "
                "quote it in single quotes in YAML and escape backslashes once"
            ) from None
        return value

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.regex, re.IGNORECASE if self.ignore_case else 0)


class LocalCapabilities(Frozen):
    """What the local model can do; a request that needs more goes to the cloud."""

    tools: bool = False
    images: bool = False
    json_schema: bool = False

    def lacks(self, capability: Capability) -> bool:
        return not bool(getattr(self, capability))


class RulesConfig(Frozen):
    #: prompts longer than this (tokens, chat template included) go to the cloud; None: no limit
    max_local_prompt_tokens: Annotated[int, Field(ge=1)] | None = None
    local_capabilities: LocalCapabilities = LocalCapabilities()
    keywords: tuple[KeywordRule, ...] = ()
    patterns: tuple[PatternRule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> RulesConfig:
        seen: set[str] = set()
        ids = [k.id for k in self.keywords] + [p.id for p in self.patterns]
        for rule_id in ids:
            if rule_id in seen:
                raise ValueError(f"rule id {rule_id!r} is used twice: give each rule its own id")
            seen.add(rule_id)
        return self


class PreScoreConfig(Frozen):
    #: hand off when P(the model says it cannot answer) >= threshold
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5


ConfidenceStatistic = Literal["quantile", "min", "mean", "entropy"]


class CascadeConfig(Frozen):
    """Judge the first ``hold_back_tokens`` tokens of the local answer before streaming them.

    Confidence is a statistic of the held tokens: the ``quantile`` of their log-probabilities,
    their ``min`` or ``mean`` log-probability (all <= 0), or ``entropy``: minus the mean entropy
    (nats) of the next-token distributions. Higher is more confident in every case; the answer is
    kept when confidence >= ``threshold``.
    """

    statistic: ConfidenceStatistic = "quantile"
    #: which quantile of the log-probabilities (statistic ``quantile``)
    quantile: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    #: default: hands off about 30% of the eval set's tune half on the default model
    #: (``handoffctl router calibrate --strategy cascade.quantile --target-rate 0.3``)
    threshold: Annotated[float, Field(le=0.0)] = -1.2
    hold_back_tokens: Annotated[int, Field(ge=1, le=256)] = 8
    #: low confidence: ``handoff`` drops the local answer, ``flag`` keeps it and marks the decision
    on_low_confidence: Literal["handoff", "flag"] = "handoff"


class ModelHandoffConfig(Frozen):
    """Let the local model ask for the cloud itself.

    ``tool``: the model is offered a ``handoff`` tool through its chat template (models with tool
    support); ``marker``: the system prompt tells it to answer with ``marker`` and a reason (any
    model); ``off``: neither.
    """

    mode: Literal["tool", "marker", "off"] = "marker"
    marker: str = Field(default=DEFAULT_MARKER, min_length=3, max_length=32)

    @field_validator("marker")
    @classmethod
    def _marker_chars(cls, value: str) -> str:
        if any(ch.isspace() for ch in value) or value.isalnum():
            raise ValueError(
                f"marker {value!r} must have no spaces and some punctuation so that normal text "
                f"never contains it, e.g. {DEFAULT_MARKER!r}"
            )
        return value


class LearnedConfig(Frozen):
    #: weights file (JSON, written by ``handoffctl router fit``); None: the shipped weights
    weights: Path | None = None
    #: hand off when the predicted probability that the local answer is wrong >= threshold.
    #: The default hands off about 30% of the eval set's tune half with the shipped weights and
    #: the default model, whose answers are wrong ~75% of the time (so 0.5 would send nearly
    #: everything away); recalibrate for another model: ``handoffctl router calibrate``
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.88


class RoutingConfig(Frozen):
    strategies: tuple[StrategyName, ...] = ("rules", "learned", "model_handoff")
    combine: Literal["any", "first"] = "any"
    rules: RulesConfig = RulesConfig()
    pre_score: PreScoreConfig = PreScoreConfig()
    cascade: CascadeConfig = CascadeConfig()
    model_handoff: ModelHandoffConfig = ModelHandoffConfig()
    learned: LearnedConfig = LearnedConfig()

    @field_validator("strategies")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if value.count(name) > 1:
                raise ValueError(f"strategy {name!r} is listed twice: list each strategy once")
        return value

    def enabled(self, name: StrategyName) -> bool:
        if name == "model_handoff" and self.model_handoff.mode == "off":
            return False
        return name in self.strategies

    def pre_generation(self) -> tuple[StrategyName, ...]:
        """The enabled pre-generation scorers in precedence order."""
        return tuple(s for s in self.strategies if s in PRE_GENERATION)
