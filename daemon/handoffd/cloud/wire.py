"""Translation between handoffd's values and the Chat Completions wire format.

Requests are built from :class:`~handoffd.domain.Message` and
:class:`~handoffd.domain.GenerationParams`; only parameters every OpenAI-compatible server knows
are sent (``top_k`` and ``repetition_penalty`` are local sampling knobs and stay on the device).
Answers are read leniently (the SDK builds its models without validation, and compatible servers
leave fields out): anything that is not there where it must be becomes a
:class:`~handoffd.cloud.failures.AttemptFailure` of kind ``MALFORMED``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoffd.cloud.failures import AttemptFailure, FailureKind
from handoffd.cloud.types import CloudUsage
from handoffd.domain import FinishReason, GenerationParams, Message, Role
from handoffd.errors import InvalidRequest
from handoffd.schema.cloud import CloudTargetSettings

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


def request_body(
    settings: CloudTargetSettings, messages: tuple[Message, ...], params: GenerationParams
) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create`` (without ``stream``)."""
    if not messages:
        raise InvalidRequest("a cloud handoff needs at least one message", field="messages")
    wire_messages = []
    for m in messages:
        if m.role is Role.TOOL:
            raise InvalidRequest(
                "tool messages cannot be handed off to the cloud (they need a tool_call_id); "
                "send the tool result as a user message",
                field="messages",
            )
        wire_messages.append({"role": m.role.value, "content": m.content})
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": wire_messages,
        settings.max_tokens_field: params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    return body


def finish_reason(raw: str | None) -> FinishReason:
    """Map a provider's finish_reason; ``content_filter``, ``tool_calls``, ... count as STOP
    (the provider's own word is kept beside it)."""
    return _FINISH.get(raw or "stop", FinishReason.STOP)


def _malformed(what: str) -> AttemptFailure:
    return AttemptFailure(FailureKind.MALFORMED, what)


def usage_from(raw: Any) -> CloudUsage | None:
    """Token counts of an SDK ``CompletionUsage`` (``None`` when absent)."""
    if raw is None:
        return None
    prompt = getattr(raw, "prompt_tokens", None)
    completion = getattr(raw, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise _malformed("usage without integer prompt_tokens/completion_tokens")
    details = getattr(raw, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return CloudUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_prompt_tokens=cached if isinstance(cached, int) else 0,
    )


@dataclass(slots=True)
class ChunkFields:
    """What one streamed chunk says."""

    text: str
    finish_reason: str | None
    usage: CloudUsage | None
    model: str


def read_chunk(chunk: Any) -> ChunkFields:
    """Fields of an SDK ``ChatCompletionChunk``; the first choice only (we ask for n=1)."""
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, list):
        raise _malformed("stream chunk without a choices list")
    text = ""
    finish: str | None = None
    if choices:
        choice = choices[0]
        delta = getattr(choice, "delta", None)
        content = getattr(delta, "content", None) if delta is not None else None
        if content is not None and not isinstance(content, str):
            raise _malformed("stream chunk whose delta.content is not a string")
        text = content or ""
        raw_finish = getattr(choice, "finish_reason", None)
        finish = raw_finish if isinstance(raw_finish, str) else None
    model = getattr(chunk, "model", "")
    return ChunkFields(
        text=text,
        finish_reason=finish,
        usage=usage_from(getattr(chunk, "usage", None)),
        model=model if isinstance(model, str) else "",
    )


@dataclass(slots=True)
class CompletionFields:
    text: str
    finish_reason: str
    usage: CloudUsage | None
    model: str


def read_completion(completion: Any) -> CompletionFields:
    """Fields of an SDK ``ChatCompletion``."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise _malformed("completion without choices")
    choice = choices[0]
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None) if message is not None else None
    if content is not None and not isinstance(content, str):
        raise _malformed("completion whose message.content is not a string")
    raw_finish = getattr(choice, "finish_reason", None)
    model = getattr(completion, "model", "")
    return CompletionFields(
        text=content or "",
        finish_reason=raw_finish if isinstance(raw_finish, str) else "stop",
        usage=usage_from(getattr(completion, "usage", None)),
        model=model if isinstance(model, str) else "",
    )
