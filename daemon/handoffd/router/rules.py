"""The rules strategy: decisions that need no model, only the request and the policy.

Hard rules (:func:`hard_rule`) come first because the local model cannot answer at all: a prompt
that does not fit the context window with its ``max_tokens`` (never truncated silently) or a
capability the local model lacks. Soft rules (:class:`SoftRules`) are the owner's preferences:
prompt length, then keyword and regex rules in file order; the first that matches decides.

Rule ids (stable; they appear in the ledger and in ``handoffctl explain``)::

    rules.context_overflow        prompt_tokens + max_tokens > the local context window
    rules.capability.<name>       the request needs tools / images / json_schema
    rules.prompt_tokens           prompt longer than rules.max_local_prompt_tokens
    rules.keyword.<id>            a keyword rule matched
    rules.pattern.<id>            a regex rule matched
"""

from __future__ import annotations

import re

from handoffd.domain import Decision, Reason, Route
from handoffd.router.evidence import RouteInput
from handoffd.schema.routing import Capability, KeywordRule, PatternRule, RouteChoice, RulesConfig

STRATEGY = "rules"

CONTEXT_OVERFLOW = "rules.context_overflow"
PROMPT_TOKENS = "rules.prompt_tokens"
CLOUD_NOT_ALLOWED = "routing.cloud_not_allowed"

_CAPABILITY_ORDER: tuple[Capability, ...] = ("images", "tools", "json_schema")


def _route(choice: RouteChoice) -> Route:
    return Route.CLOUD if choice == "cloud" else Route.LOCAL


def hard_rule(inp: RouteInput, config: RulesConfig) -> Decision | None:
    """CLOUD (or DENIED when the cloud may not be used) if the local model cannot answer at all."""
    needed = inp.prompt_tokens + inp.max_tokens
    scores = {
        "rules.prompt_tokens": float(inp.prompt_tokens),
        "rules.max_tokens": float(inp.max_tokens),
        "rules.context_window": float(inp.context_window),
    }
    if needed > inp.context_window:
        reason = Reason(
            CONTEXT_OVERFLOW,
            f"the prompt ({inp.prompt_tokens} tokens) plus max_tokens ({inp.max_tokens}) needs "
            f"{needed} tokens, more than the local context window of {inp.context_window}",
        )
        return _needs_cloud(inp, reason, scores)
    for capability in _CAPABILITY_ORDER:
        if capability in inp.needs and config.local_capabilities.lacks(capability):
            reason = Reason(
                f"rules.capability.{capability}",
                f"the request uses {capability.replace('_', ' ')}, which the local model "
                "does not support",
            )
            return _needs_cloud(inp, reason, scores)
    return None


def _needs_cloud(inp: RouteInput, reason: Reason, scores: dict[str, float]) -> Decision:
    if inp.cloud_allowed:
        return Decision(route=Route.CLOUD, strategy=STRATEGY, reasons=(reason,), scores=scores)
    denied = Reason(
        CLOUD_NOT_ALLOWED,
        "the local model cannot answer this request and the policy does not allow a handoff",
    )
    return Decision(route=Route.DENIED, strategy=STRATEGY, reasons=(reason, denied), scores=scores)


def _word_regex(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


class SoftRules:
    """The owner's rules, compiled once when the policy loads."""

    def __init__(self, config: RulesConfig) -> None:
        self._config = config
        self._keywords: list[tuple[KeywordRule, re.Pattern[str]]] = [
            (rule, _word_regex(rule.words)) for rule in config.keywords
        ]
        self._patterns: list[tuple[PatternRule, re.Pattern[str]]] = [
            (rule, rule.compiled()) for rule in config.patterns
        ]

    def decide(self, inp: RouteInput) -> Decision | None:
        """The first matching rule's decision, or None when no rule matches."""
        limit = self._config.max_local_prompt_tokens
        if limit is not None and inp.prompt_tokens > limit:
            return Decision(
                route=Route.CLOUD,
                strategy=STRATEGY,
                reasons=(
                    Reason(
                        PROMPT_TOKENS,
                        f"the prompt has {inp.prompt_tokens} tokens, more than "
                        f"rules.max_local_prompt_tokens ({limit})",
                    ),
                ),
                scores={
                    "rules.prompt_tokens": float(inp.prompt_tokens),
                    "rules.max_local_prompt_tokens": float(limit),
                },
            )
        text = inp.user_text
        for keyword_rule, regex in self._keywords:
            found = regex.search(text)
            if found:
                return self._matched(
                    f"rules.keyword.{keyword_rule.id}",
                    keyword_rule.route,
                    f"keyword {found.group(0).lower()!r} of rule {keyword_rule.id!r}",
                    keyword_rule.description,
                )
        for pattern_rule, regex in self._patterns:
            if regex.search(text):
                return self._matched(
                    f"rules.pattern.{pattern_rule.id}",
                    pattern_rule.route,
                    f"pattern of rule {pattern_rule.id!r}",
                    pattern_rule.description,
                )
        return None

    @staticmethod
    def _matched(rule_id: str, route: RouteChoice, what: str, description: str) -> Decision:
        where = "the cloud" if route == "cloud" else "the device"
        message = f"{what} matched: answer on {where}"
        if description:
            message += f" ({description})"
        return Decision(route=_route(route), strategy=STRATEGY, reasons=(Reason(rule_id, message),))
