"""The Chat Completions wire format as the OpenAI API writes it, for the fake cloud.

Token counts are a deterministic stand-in: one token per whitespace-separated word of the
messages plus 3 per message (prompt), one token per streamed piece (completion).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

_PIECE = re.compile(r"\s*\S+")
SYSTEM_FINGERPRINT = "fp_fakecloud"


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sse(obj: object) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def message_text(content: object) -> str:
    """Text of a message's content: a string, or a list of ``{"type": "text", "text": ...}``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m.get("content"))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    return sum(len(message_text(m.get("content")).split()) + 3 for m in messages)


def pieces(text: str) -> list[str]:
    """Split an answer into streamed pieces (each a word with the space before it)."""
    return _PIECE.findall(text)


def shape_answer(text: str, body: dict[str, Any]) -> tuple[list[str], str]:
    """Apply ``stop`` and ``max_tokens``/``max_completion_tokens``: (pieces, finish_reason)."""
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    for s in stops:
        if s and s in text:
            text = text[: text.index(s)]
    parts = pieces(text)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and limit < len(parts):
        return parts[:limit], "length"
    return parts, "stop"


def usage(body: dict[str, Any], completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    prompt = prompt_tokens(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": min(cached_tokens, prompt), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(
    cid: str, model: str, parts: list[str], finish: str, usage_: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(parts),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage_,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def chunk(
    cid: str,
    model: str,
    created: int,
    *,
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    with_usage_field: bool = False,
    usage_: dict[str, Any] | None = None,
    no_choices: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": []
        if no_choices
        else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage_field:
        out["usage"] = usage_
    return out


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})
