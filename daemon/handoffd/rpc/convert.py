"""Conversion between the v1 protobuf messages and the domain types.

Only representability is checked here (an unset role, an unknown enum number); value ranges are
checked by :mod:`handoffd.pipeline.validate`, the same for every transport.
"""

from __future__ import annotations

from handoffd.domain import (
    ChatRequest,
    ChatResult,
    Decision,
    FinishReason,
    GenerationParams,
    HandoffPreference,
    Message,
    ModelInfo,
    Priority,
    Role,
    Route,
)
from handoffd.errors import InvalidRequest
from handoffd.v1 import handoffd_pb2 as pb

DEFAULT_MAX_TOKENS = 256

_ROLES = {
    pb.ROLE_SYSTEM: Role.SYSTEM,
    pb.ROLE_USER: Role.USER,
    pb.ROLE_ASSISTANT: Role.ASSISTANT,
    pb.ROLE_TOOL: Role.TOOL,
}
_PREFERENCES = {
    pb.HANDOFF_PREFERENCE_UNSPECIFIED: HandoffPreference.AUTO,
    pb.AUTO: HandoffPreference.AUTO,
    pb.LOCAL_ONLY: HandoffPreference.LOCAL_ONLY,
    pb.PREFER_CLOUD: HandoffPreference.PREFER_CLOUD,
}
_PRIORITIES = {
    pb.PRIORITY_UNSPECIFIED: Priority.INTERACTIVE,
    pb.INTERACTIVE: Priority.INTERACTIVE,
    pb.BACKGROUND: Priority.BACKGROUND,
}
_ROUTES_OUT = {
    Route.LOCAL: pb.LOCAL,
    Route.CLOUD: pb.CLOUD,
    Route.LOCAL_FALLBACK: pb.LOCAL_FALLBACK,
    Route.DENIED: pb.DENIED,
}
_FINISH_OUT = {
    FinishReason.STOP: pb.STOP,
    FinishReason.LENGTH: pb.LENGTH,
    FinishReason.HANDOFF: pb.HANDOFF,
    FinishReason.CANCELLED: pb.CANCELLED,
    FinishReason.ERROR: pb.ERROR,
}


def request_from_proto(msg: pb.ChatRequest, *, app: str) -> ChatRequest:
    messages = []
    for i, m in enumerate(msg.messages):
        role = _ROLES.get(m.role)
        if role is None:
            raise InvalidRequest(
                f"messages[{i}].role is {m.role} ({'unset' if m.role == 0 else 'unknown'}): "
                "use ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL",
                field=f"messages[{i}].role",
            )
        messages.append(Message(role=role, content=m.content))
    p = msg.params
    params = GenerationParams(
        max_tokens=p.max_tokens if p.max_tokens != 0 else DEFAULT_MAX_TOKENS,
        temperature=p.temperature if p.HasField("temperature") else 0.0,
        top_p=p.top_p if p.HasField("top_p") else 1.0,
        top_k=p.top_k,
        repetition_penalty=p.repetition_penalty if p.HasField("repetition_penalty") else 1.0,
        seed=p.seed if p.HasField("seed") else None,
        stop=tuple(p.stop),
    )
    preference = _PREFERENCES.get(msg.handoff)
    if preference is None:
        raise InvalidRequest(
            f"handoff is {msg.handoff} (unknown): use AUTO, LOCAL_ONLY or PREFER_CLOUD",
            field="handoff",
        )
    priority = _PRIORITIES.get(msg.priority)
    if priority is None:
        raise InvalidRequest(
            f"priority is {msg.priority} (unknown): use INTERACTIVE or BACKGROUND", field="priority"
        )
    return ChatRequest(
        messages=tuple(messages),
        params=params,
        preference=preference,
        labels=frozenset(msg.labels),
        client_request_id=msg.client_request_id,
        app=app,
        priority=priority,
    )


def decision_to_proto(decision: Decision, *, policy_hash: str = "") -> pb.Decision:
    return pb.Decision(
        route=_ROUTES_OUT[decision.route],
        strategy=decision.strategy,
        reasons=[pb.Reason(rule_id=r.rule_id, message=r.message) for r in decision.reasons],
        scores=dict(decision.scores),
        cloud_target=decision.cloud_target or "",
        policy_hash=policy_hash,
    )


def result_to_proto(result: ChatResult, *, client_request_id: str) -> pb.ChatResponse:
    return pb.ChatResponse(
        text=result.text,
        route=_ROUTES_OUT[result.route],
        decision=decision_to_proto(result.decision, policy_hash=result.policy_hash),
        usage=pb.Usage(
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
        ),
        cost_usd=result.cost_usd,
        timing=pb.Timing(
            queue_ms=result.timing.queue_ms,
            ttft_ms=result.timing.ttft_ms,
            total_ms=result.timing.total_ms,
            decode_tokens_per_s=result.timing.decode_tokens_per_s,
        ),
        ledger_id=result.ledger_id,
        model=result.model,
        finish_reason=_FINISH_OUT[result.finish_reason],
        client_request_id=client_request_id,
    )


def model_info_to_proto(info: ModelInfo) -> pb.ModelInfo:
    return pb.ModelInfo(
        name=info.name,
        kind="local",
        layout=info.layout,
        precision=info.precision,
        context_window=info.context_window,
        execution_provider=info.execution_provider,
        path=info.path,
        source=info.source,
    )
