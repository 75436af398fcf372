"""Routing: decide per request whether the local model answers or the cloud does, and why.

Public API::

    router = Router(policy.routing)                          # once per policy load
    inp = RouteInput(request, prompt_tokens, context_window, needs=..., cloud_allowed=...)
    if router.pre_score_needed(inp):
        messages, candidates = router.pre_score_prompt(inp)
        logprobs = await engine.score_next_token(messages, candidates)
    decision = router.decide(inp, pre_score=logprobs)        # LOCAL / CLOUD / DENIED + reasons
    gate = router.answer_gate(inp)                           # for a LOCAL answer: cascade and
    ...engine.generate(router.local_messages(inp), params, tools=router.local_tools(inp))
                                                             # model handoff while it streams

Strategies: :mod:`.rules`, :mod:`.prescore`, :mod:`.cascade`, :mod:`.handoff_tool` /
:mod:`.handoff_detect` (model-initiated handoff), :mod:`.learned`; how they combine:
:mod:`.router`.
"""

from handoffd.router.cascade import CascadeMonitor, CascadeState, GateStep
from handoffd.router.evidence import RouteInput
from handoffd.router.gate import LocalAnswerGate
from handoffd.router.handoff_detect import HandoffCallDetector, parse_handoff_call
from handoffd.router.handoff_tool import HandoffCall, handoff_tool_schema, marker_instruction
from handoffd.router.learned import LogisticModel
from handoffd.router.router import Router

__all__ = [
    "CascadeMonitor",
    "CascadeState",
    "GateStep",
    "HandoffCall",
    "HandoffCallDetector",
    "LocalAnswerGate",
    "LogisticModel",
    "RouteInput",
    "Router",
    "handoff_tool_schema",
    "marker_instruction",
    "parse_handoff_call",
]
