"""The Router: precedence of strategies, explanations, and the in-generation gate."""

from __future__ import annotations

import math

import pytest
from handoffd.domain import (
    ChatRequest,
    GenerationParams,
    HandoffPreference,
    Message,
    Role,
    Route,
    TokenChunk,
)
from handoffd.errors import InternalError
from handoffd.router import LogisticModel, RouteInput, Router
from handoffd.router.features import PRE_SCORE_FEATURE
from handoffd.schema.routing import RoutingConfig

#: p_wrong > 0.5 exactly when the question has a number of 3+ digits
BIG_NUMBERS = LogisticModel(
    features=("req.big_numbers",), weights=(3.0,), mean=(0.0,), scale=(1.0,), bias=-1.5
)
#: p_wrong follows the model's own doubt
DOUBT = LogisticModel(
    features=(PRE_SCORE_FEATURE,), weights=(1.0,), mean=(0.0,), scale=(1.0,), bias=0.0
)
UNSURE = {"Yes": math.log(0.1), "No": math.log(0.9)}
SURE = {"Yes": math.log(0.9), "No": math.log(0.1)}


def make_input(
    text: str = "What is the capital of France?",
    *,
    preference: HandoffPreference = HandoffPreference.AUTO,
    prompt_tokens: int = 20,
    cloud_allowed: bool = True,
    system: str | None = None,
) -> RouteInput:
    messages = [Message(Role.USER, text)]
    if system is not None:
        messages.insert(0, Message(Role.SYSTEM, system))
    request = ChatRequest(
        messages=tuple(messages), params=GenerationParams(max_tokens=64), preference=preference
    )
    return RouteInput(request, prompt_tokens, 2048, frozenset(), cloud_allowed)


def router(data: dict[str, object], learned: LogisticModel | None = BIG_NUMBERS) -> Router:
    return Router(RoutingConfig.model_validate(data), learned=learned)


def test_learned_routes_both_ways_with_explained_reason() -> None:
    """The learned score decides when no rule does; the reason names the top features."""
    r = router({"strategies": ["rules", "learned"]})
    hard = r.decide(make_input("What is 482 * 917?"))
    assert hard.route is Route.CLOUD
    assert hard.strategy == "learned"
    assert hard.rule_ids[0] == "learned.cloud"
    assert "numbers of 3+ digits" in hard.reasons[0].message
    assert hard.scores["learned.threshold"] == r.config.learned.threshold
    easy = r.decide(make_input("What is 4 * 9?"))
    assert easy.route is Route.LOCAL
    assert easy.rule_ids[0] == "learned.local"


def test_overflow_is_denied_for_local_only_and_when_cloud_is_refused() -> None:
    """A prompt that cannot fit goes to the cloud when it may; it is DENIED (never truncated)
    for a local_only app or when the policy forbids the handoff."""
    r = router({"strategies": ["rules", "learned"]})
    allowed = r.decide(make_input(prompt_tokens=2040))
    assert allowed.route is Route.CLOUD
    assert allowed.rule_ids == ("rules.context_overflow",)
    local_only = r.decide(make_input(prompt_tokens=2040, preference=HandoffPreference.LOCAL_ONLY))
    assert local_only.route is Route.DENIED
    assert local_only.rule_ids == ("rules.context_overflow", "routing.cloud_not_allowed")
    denied = r.decide(make_input(prompt_tokens=2040, cloud_allowed=False))
    assert denied.route is Route.DENIED


def test_local_only_beats_rules_and_scores() -> None:
    """local_only keeps a request the rules and the scorer would send away."""
    r = router({"strategies": ["rules", "learned"], "rules": {"max_local_prompt_tokens": 10}})
    decision = r.decide(make_input("What is 482 * 917?", preference=HandoffPreference.LOCAL_ONLY))
    assert decision.route is Route.LOCAL
    assert decision.strategy == "preference"
    assert decision.rule_ids == ("preference.local_only",)


def test_prefer_cloud_when_allowed_and_not_when_refused() -> None:
    """prefer_cloud -> CLOUD when the policy allows; otherwise the router decides and notes it."""
    r = router({"strategies": ["rules", "learned"]})
    assert r.decide(make_input(preference=HandoffPreference.PREFER_CLOUD)).route is Route.CLOUD
    refused = r.decide(make_input(preference=HandoffPreference.PREFER_CLOUD, cloud_allowed=False))
    assert refused.route is Route.LOCAL
    assert "preference.prefer_cloud" in refused.rule_ids


def test_soft_rule_beats_scorers() -> None:
    """A matching keyword rule decides before the learned score is consulted."""
    r = router(
        {
            "strategies": ["rules", "learned"],
            "rules": {"keywords": [{"id": "maths-local", "words": ["sum"], "route": "local"}]},
        }
    )
    decision = r.decide(make_input("What is the sum of 482 and 917?"))
    assert decision.route is Route.LOCAL
    assert decision.rule_ids == ("rules.keyword.maths-local",)


def test_rules_off_skips_soft_rules_but_not_hard_rules() -> None:
    """Without "rules" listed, soft rules do not run; overflow still does."""
    r = router({"strategies": ["learned"], "rules": {"max_local_prompt_tokens": 10}})
    assert r.decide(make_input(prompt_tokens=100)).strategy == "learned"
    assert r.decide(make_input(prompt_tokens=2040)).rule_ids == ("rules.context_overflow",)


def test_cloud_verdict_becomes_local_when_not_allowed() -> None:
    """A scorer's CLOUD is answered locally when the policy forbids the handoff, with a reason."""
    r = router({"strategies": ["rules", "learned"]})
    decision = r.decide(make_input("What is 482 * 917?", cloud_allowed=False))
    assert decision.route is Route.LOCAL
    assert decision.rule_ids[:2] == ("learned.cloud", "routing.cloud_not_allowed")


def test_combine_any_versus_first() -> None:
    """combine: any -> any scorer's CLOUD wins; combine: first -> the first listed decides."""
    data = {"strategies": ["rules", "learned", "pre_score"]}
    any_router = router({**data, "combine": "any"})
    decision = any_router.decide(make_input(), pre_score=UNSURE)
    assert decision.route is Route.CLOUD
    assert decision.strategy == "pre_score"
    assert set(decision.rule_ids) == {"pre_score.cloud", "learned.local"}
    assert "learned.p_wrong" in decision.scores
    assert "pre_score.p_cannot" in decision.scores
    first_router = router({**data, "combine": "first"})
    first = first_router.decide(make_input(), pre_score=UNSURE)
    assert first.route is Route.LOCAL
    assert first.strategy == "learned"
    assert first.rule_ids == ("learned.local",)


def test_no_scorer_means_default_local() -> None:
    """With only rules and nothing matching, the request stays local with a reason."""
    r = router({"strategies": ["rules"]}, learned=None)
    decision = r.decide(make_input())
    assert decision.route is Route.LOCAL
    assert decision.rule_ids == ("routing.default_local",)


def test_pre_score_needed_only_when_it_will_be_used() -> None:
    """The pipeline runs the self-assessment only when a scorer will read it."""
    with_doubt = router({"strategies": ["rules", "learned"]}, learned=DOUBT)
    assert with_doubt.uses_pre_score
    assert with_doubt.pre_score_needed(make_input())
    assert not with_doubt.pre_score_needed(make_input(preference=HandoffPreference.LOCAL_ONLY))
    assert not with_doubt.pre_score_needed(make_input(prompt_tokens=2040))
    messages, candidates = with_doubt.pre_score_prompt(make_input("Who wrote Ulysses?"))
    assert "Who wrote Ulysses?" in messages[-1].content
    assert "No" in candidates
    assert with_doubt.decide(make_input(), pre_score=UNSURE).route is Route.CLOUD
    assert with_doubt.decide(make_input(), pre_score=SURE).route is Route.LOCAL
    with pytest.raises(InternalError):
        with_doubt.decide(make_input())
    plain = router({"strategies": ["rules", "learned"]})
    assert not plain.pre_score_needed(make_input())


def test_marker_mode_adds_the_instruction_and_no_tools() -> None:
    """mode: marker appends the instruction to the system message (or adds one)."""
    r = router({"strategies": ["model_handoff"]}, learned=None)
    with_system = r.local_messages(make_input(system="Be brief."))
    assert with_system[0].content.startswith("Be brief.")
    assert "[[HANDOFF]]" in with_system[0].content
    without = r.local_messages(make_input())
    assert without[0].role is Role.SYSTEM
    assert len(without) == 2
    assert r.local_tools(make_input()) is None
    local_only = make_input(preference=HandoffPreference.LOCAL_ONLY)
    assert len(r.local_messages(local_only)) == 1


def test_tool_mode_offers_the_tool() -> None:
    """mode: tool offers the handoff tool and leaves the messages alone."""
    r = router({"strategies": ["model_handoff"], "model_handoff": {"mode": "tool"}}, learned=None)
    tools = r.local_tools(make_input())
    assert tools is not None
    assert tools[0]["function"]["name"] == "handoff"
    assert len(r.local_messages(make_input())) == 1
    assert r.local_tools(make_input(cloud_allowed=False)) is None


def feed_all(gate, texts: list[str], logprob: float = -0.1) -> tuple[str, list]:  # type: ignore[no-untyped-def]
    shown, steps = [], []
    for n, text in enumerate(texts):
        step = gate.feed(TokenChunk(text, n, logprob))
        steps.append(step)
        shown.append(step.emit)
        if step.handoff:
            return "".join(shown), steps
    step = gate.finish()
    steps.append(step)
    shown.append(step.emit)
    return "".join(shown), steps


def test_gate_model_handoff_during_hold_back_shows_nothing() -> None:
    """A marker call inside the cascade window hands off; the client sees no local text."""
    r = router(
        {"strategies": ["model_handoff", "cascade"], "cascade": {"hold_back_tokens": 4}},
        learned=None,
    )
    gate = r.answer_gate(make_input())
    shown, steps = feed_all(gate, ["[[HAND", "OFF]]", ": not sure", "\n", "more"])
    assert shown == ""
    assert steps[-1].handoff
    assert gate.decision is not None
    assert gate.decision.route is Route.CLOUD
    assert gate.decision.strategy == "model_handoff"
    assert gate.decision.rule_ids == ("model_handoff.marker",)
    assert "not sure" in gate.decision.reasons[0].message


def test_gate_confident_answer_streams_whole() -> None:
    """A confident answer with no call comes out complete, the first K tokens in one delta."""
    r = router(
        {"strategies": ["model_handoff", "cascade"], "cascade": {"hold_back_tokens": 2}},
        learned=None,
    )
    gate = r.answer_gate(make_input())
    shown, steps = feed_all(gate, ["Paris", " is", " the", " capital."])
    assert shown == "Paris is the capital."
    assert [s.emit for s in steps] == ["", "Paris is", " the", " capital.", ""]
    assert gate.decision is not None
    assert gate.decision.rule_ids == ("cascade.confident",)


def test_gate_unsure_answer_hands_off() -> None:
    """Low confidence in the window hands off through the gate."""
    r = router({"strategies": ["cascade"], "cascade": {"hold_back_tokens": 2}}, learned=None)
    gate = r.answer_gate(make_input())
    shown, steps = feed_all(gate, ["I", " think", " 7"], logprob=-3.0)
    assert shown == ""
    assert steps[-1].handoff
    assert gate.handed_off


def test_gate_refused_call_when_cloud_not_allowed() -> None:
    """With the cloud forbidden no detector runs: the marker text is just text."""
    r = router({"strategies": ["model_handoff"]}, learned=None)
    gate = r.answer_gate(make_input(cloud_allowed=False))
    shown, steps = feed_all(gate, ["[[HANDOFF]]: x"])
    assert shown == "[[HANDOFF]]: x"
    assert not any(s.handoff for s in steps)


def test_gate_short_marker_answer_at_finish() -> None:
    """A marker answer that ends without a newline hands off when the answer ends."""
    r = router({"strategies": ["model_handoff"]}, learned=None)
    gate = r.answer_gate(make_input())
    shown, steps = feed_all(gate, ["[[HANDOFF]]", ": obscure"])
    assert shown == ""
    assert steps[-1].handoff
