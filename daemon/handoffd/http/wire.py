"""The OpenAI Chat Completions wire format: request parsing and response building.

Requests are parsed into a strict pydantic model: the usual parameters are accepted, parameters
that handoffd cannot honour with a non-default value (``n > 1``, ``logit_bias``, audio, ...)
are rejected with a message naming them, instead of being silently ignored.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handoffd.domain import (
    ChatRequest,
    ChatResult,
    FinishReason,
    GenerationParams,
    HandoffPreference,
    Message,
    Priority,
    Role,
)
from handoffd.errors import InvalidRequest

_FINISH = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.HANDOFF: "stop",
    FinishReason.CANCELLED: "stop",
    FinishReason.ERROR: "stop",
}
_PREFERENCE = {
    "auto": HandoffPreference.AUTO,
    "local": HandoffPreference.LOCAL_ONLY,
    "local_only": HandoffPreference.LOCAL_ONLY,
    "cloud": HandoffPreference.PREFER_CLOUD,
    "prefer_cloud": HandoffPreference.PREFER_CLOUD,
}


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_Part] | None = None
    name: str | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``; ``handoff``/``labels`` are handoffd extras."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    n: Literal[1] | None = None
    user: str | None = None
    presence_penalty: Literal[0] | None = None
    frequency_penalty: Literal[0] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    # handoffd extras (also settable by headers, see README)
    handoff: Literal["auto", "local", "local_only", "cloud", "prefer_cloud"] | None = None
    labels: list[str] | None = None
    priority: Literal["interactive", "background"] | None = None


def _content(message: _Message, index: int) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise InvalidRequest(
                f"messages[{index}].content has a {part.type!r} part; the local model takes text "
                "only (send text parts)",
                field=f"messages[{index}].content",
            )
        texts.append(part.text)
    return "".join(texts)


def parse_request(
    body: Any,
    *,
    app: str,
    handoff_header: str | None = None,
    labels_header: str | None = None,
    request_id: str = "",
) -> tuple[ChatCompletionRequest, ChatRequest]:
    """Validate an OpenAI-style body and convert it to the domain request."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", field="body")
    try:
        wire = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unrecognized request argument (handoffd does not support it)"
        raise InvalidRequest(f"{field}: {message}", field=field) from None
    if wire.tools:
        raise InvalidRequest(
            "tools: the local model does not take tool definitions through this facade yet; "
            "send the request without tools",
            field="tools",
        )
    messages = tuple(
        Message(role=Role.SYSTEM if m.role == "developer" else Role(m.role), content=_content(m, i))
        for i, m in enumerate(wire.messages)
    )
    max_tokens = wire.max_completion_tokens or wire.max_tokens or 256
    stop = (wire.stop,) if isinstance(wire.stop, str) else tuple(wire.stop or ())
    params = GenerationParams(
        max_tokens=max_tokens,
        temperature=1.0 if wire.temperature is None else wire.temperature,
        top_p=1.0 if wire.top_p is None else wire.top_p,
        top_k=wire.top_k or 0,
        repetition_penalty=wire.repetition_penalty or 1.0,
        seed=wire.seed,
        stop=stop,
    )
    handoff = wire.handoff or (handoff_header or "auto").strip().lower()
    preference = _PREFERENCE.get(handoff)
    if preference is None:
        raise InvalidRequest(
            f"handoff {handoff!r} is unknown: use auto, local or cloud", field="handoff"
        )
    labels = list(wire.labels or ())
    if labels_header:
        labels.extend(x.strip() for x in labels_header.split(",") if x.strip())
    request = ChatRequest(
        messages=messages,
        params=params,
        preference=preference,
        labels=frozenset(labels),
        client_request_id=request_id,
        app=app,
        priority=Priority(wire.priority) if wire.priority else Priority.INTERACTIVE,
    )
    return wire, request


def handoffd_extra(result: ChatResult) -> dict[str, Any]:
    """The ``handoffd`` field added to responses: where and why it was answered."""
    return {
        "route": result.route.value,
        "strategy": result.decision.strategy,
        "reasons": [{"rule_id": r.rule_id, "message": r.message} for r in result.decision.reasons],
        "ledger_id": result.ledger_id,
        "cost_usd": result.cost_usd,
        "policy_hash": result.policy_hash,
        "timing": {
            "ttft_ms": result.timing.ttft_ms,
            "total_ms": result.timing.total_ms,
            "decode_tokens_per_s": result.timing.decode_tokens_per_s,
        },
    }


def _usage(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "total_tokens": result.usage.total_tokens,
    }


def completion_body(completion_id: str, created: int, result: ChatResult) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "logprobs": None,
                "finish_reason": _FINISH[result.finish_reason],
            }
        ],
        "usage": _usage(result),
        "handoffd": handoffd_extra(result),
    }


def chunk_body(
    completion_id: str,
    created: int,
    model: str,
    *,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    if extra is not None:
        body["handoffd"] = extra
    return body


def final_chunks(
    completion_id: str, created: int, result: ChatResult, *, include_usage: bool
) -> list[dict[str, Any]]:
    chunks = [
        chunk_body(
            completion_id,
            created,
            result.model,
            delta={},
            finish_reason=_FINISH[result.finish_reason],
            extra=handoffd_extra(result),
        )
    ]
    if include_usage:
        chunks.append(chunk_body(completion_id, created, result.model, usage=_usage(result)))
    return chunks


def now() -> int:
    return int(time.time())
