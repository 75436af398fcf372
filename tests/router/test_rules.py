"""The rules strategy and the pre-generation score, each routing both ways."""

from __future__ import annotations

import math

import pytest
from handoffd.domain import ChatRequest, GenerationParams, Message, Role, Route
from handoffd.router.evidence import RouteInput
from handoffd.router.prescore import (
    CANDIDATES,
    p_cannot,
    pre_score_decision,
    self_assessment_messages,
)
from handoffd.router.rules import SoftRules, hard_rule
from handoffd.schema.routing import PreScoreConfig, RulesConfig


def inp(
    text: str = "What is the capital of France?",
    *,
    prompt_tokens: int = 20,
    window: int = 2048,
    max_tokens: int = 64,
    needs: frozenset[str] = frozenset(),
    cloud_allowed: bool = True,
) -> RouteInput:
    request = ChatRequest(
        messages=(Message(Role.SYSTEM, "Be brief."), Message(Role.USER, text)),
        params=GenerationParams(max_tokens=max_tokens),
    )
    return RouteInput(request, prompt_tokens, window, needs, cloud_allowed)  # type: ignore[arg-type]


RULES = RulesConfig.model_validate(
    {
        "max_local_prompt_tokens": 1000,
        "keywords": [
            {"id": "legal", "words": ["contract", "law suit"], "description": "legal advice"},
            {"id": "diary", "words": ["my diary"], "route": "local"},
        ],
        "patterns": [{"id": "big-product", "regex": r"\d{3,}\s*[*x]\s*\d{3,}"}],
    }
)


def test_context_overflow_goes_to_the_cloud() -> None:
    """prompt_tokens + max_tokens over the window -> CLOUD with both numbers in the reason."""
    decision = hard_rule(inp(prompt_tokens=2000, max_tokens=100), RULES)
    assert decision is not None
    assert decision.route is Route.CLOUD
    assert decision.rule_ids == ("rules.context_overflow",)
    assert "2000" in decision.reasons[0].message
    assert "2048" in decision.reasons[0].message


def test_context_overflow_without_cloud_is_denied() -> None:
    """Overflow when the cloud may not be used is DENIED, never truncated."""
    decision = hard_rule(inp(prompt_tokens=2000, max_tokens=100, cloud_allowed=False), RULES)
    assert decision is not None
    assert decision.route is Route.DENIED
    assert decision.rule_ids == ("rules.context_overflow", "routing.cloud_not_allowed")


def test_fitting_prompt_passes_the_hard_rules() -> None:
    """A prompt that fits exactly (== window) is not a hard-rule case."""
    assert hard_rule(inp(prompt_tokens=1984, max_tokens=64), RULES) is None


def test_missing_capability_goes_to_the_cloud() -> None:
    """Images (or tools, JSON schema) the local model lacks -> CLOUD; a capability it has does
    not."""
    decision = hard_rule(inp(needs=frozenset({"images"})), RULES)
    assert decision is not None
    assert decision.rule_ids == ("rules.capability.images",)
    capable = RulesConfig.model_validate({"local_capabilities": {"tools": True}})
    assert hard_rule(inp(needs=frozenset({"tools"})), capable) is None


def test_prompt_length_rule() -> None:
    """Longer than max_local_prompt_tokens -> CLOUD; at the limit -> no opinion."""
    rules = SoftRules(RULES)
    long = rules.decide(inp(prompt_tokens=1001))
    assert long is not None
    assert long.route is Route.CLOUD
    assert long.rule_ids == ("rules.prompt_tokens",)
    assert long.scores["rules.max_local_prompt_tokens"] == 1000
    assert rules.decide(inp(prompt_tokens=1000)) is None


def test_keyword_rules_match_whole_words_any_case() -> None:
    """Keywords match whole words in any case; a keyword rule may route either way."""
    rules = SoftRules(RULES)
    cloud = rules.decide(inp("Please review this CONTRACT for me"))
    assert cloud is not None
    assert cloud.route is Route.CLOUD
    assert cloud.rule_ids == ("rules.keyword.legal",)
    assert "legal advice" in cloud.reasons[0].message
    multiword = rules.decide(inp("Is a law  suit likely?".replace("  ", " ")))
    assert multiword is not None
    assert multiword.route is Route.CLOUD
    local = rules.decide(inp("Summarise my diary entry"))
    assert local is not None
    assert local.route is Route.LOCAL
    assert rules.decide(inp("The contractor arrived")) is None


def test_pattern_rule() -> None:
    """A regex rule matches the user's text."""
    rules = SoftRules(RULES)
    decision = rules.decide(inp("What is 482 * 917?"))
    assert decision is not None
    assert decision.rule_ids == ("rules.pattern.big-product",)
    assert rules.decide(inp("What is 4 * 9?")) is None


def test_pre_score_routes_both_ways() -> None:
    """P(No) over the threshold -> CLOUD; under -> LOCAL; scores carry both numbers."""
    config = PreScoreConfig(threshold=0.5)
    unsure = pre_score_decision({"Yes": math.log(0.2), "No": math.log(0.6)}, config)
    assert unsure.route is Route.CLOUD
    assert unsure.scores["pre_score.p_cannot"] == pytest.approx(0.75)
    assert unsure.scores["pre_score.threshold"] == 0.5
    assert unsure.rule_ids == ("pre_score.cloud",)
    sure = pre_score_decision({"Yes": math.log(0.7), "No": math.log(0.1)}, config)
    assert sure.route is Route.LOCAL
    assert sure.rule_ids == ("pre_score.local",)


def test_pre_score_sums_spellings_and_handles_no_mass() -> None:
    """ "Yes" and "yes" are summed; no mass on either gives 0.5."""
    lp = {"Yes": math.log(0.1), "yes": math.log(0.1), "No": math.log(0.2), "no": -math.inf}
    assert p_cannot(lp) == pytest.approx(0.5)
    assert p_cannot({}) == 0.5


def test_self_assessment_prompt() -> None:
    """The self-assessment embeds the question and asks for Yes/No; long questions keep
    their end."""
    messages = self_assessment_messages("What is 2 + 2?")
    assert messages[-1].role is Role.USER
    assert "What is 2 + 2?" in messages[-1].content
    assert set(CANDIDATES) == {"Yes", "yes", "No", "no"}
    long = self_assessment_messages("x" * 10_000 + " the real question?")
    assert long[-1].content.count("x") <= 4001
    assert "the real question?" in long[-1].content
