"""Model-initiated handoff: the ``handoff`` tool, the marker instruction, and the call formats.

The local model is offered a way to ask for the cloud:

- ``mode: tool`` — :func:`handoff_tool_schema` is passed to the chat template as a tool (models
  trained for tool calls: Qwen2.5, Hermes, Llama 3.1+, gpt-oss);
- ``mode: marker`` — :func:`marker_instruction` is added to the system prompt (any model): the
  model answers with a line that starts with the marker, e.g. ``[[HANDOFF]]: needs exact math``.

Call formats understood (parsed by :mod:`handoffd.router.handoff_detect`):

==============  ==========================================================================
hermes          ``<tool_call>{"name": "handoff", "arguments": {"reason": "..."}}</tool_call>``
                (Qwen2.5, Hermes); ``arguments`` may also be a JSON-encoded string
llama_json      ``{"name": "handoff", "parameters": {"reason": "..."}}`` as the whole answer,
                optionally after ``<|python_tag|>`` (Llama 3.1/3.2/3.3)
harmony         ``<|start|>assistant<|channel|>commentary to=functions.handoff <|constrain|>json
                <|message|>{"reason": "..."}<|call|>`` (gpt-oss); the recipient may also sit in
                the role part (``<|start|>assistant to=functions.handoff<|channel|>...``)
marker          a line that starts with the marker, then an optional ``:`` and the reason
==============  ==========================================================================

The tool name must be exactly ``handoff``; calls of other tools are left alone as text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

HANDOFF_TOOL_NAME = "handoff"
MAX_REASON_CHARS = 300

CallFormat = Literal["hermes", "llama_json", "harmony", "marker"]


@dataclass(frozen=True, slots=True)
class HandoffCall:
    """The local model asked for the cloud, in ``format``, saying ``reason``."""

    format: CallFormat
    reason: str


def handoff_tool_schema() -> dict[str, Any]:
    """The ``handoff`` tool in the OpenAI / Hugging Face chat-template format."""
    return {
        "type": "function",
        "function": {
            "name": HANDOFF_TOOL_NAME,
            "description": (
                "Hand this request to a much stronger assistant in the cloud. Call it instead "
                "of answering when you are not sure you can answer correctly: facts you do not "
                "know well, exact arithmetic beyond small numbers, multi-step problems, long "
                "code, or anything you would have to guess."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {
                        "type": "string",
                        "description": "One short sentence: why the stronger assistant should "
                        "answer.",
                    }
                },
                "required": ["reason"],
            },
        },
    }


def marker_instruction(marker: str) -> str:
    """The system-prompt paragraph that teaches a model without tool support to hand off."""
    return (
        "A much stronger assistant is available. If you are not sure you can answer correctly "
        "(a fact you do not know well, exact arithmetic beyond small numbers, a multi-step "
        "problem, long code), do not guess: reply with exactly one line that starts with "
        f"{marker} followed by a short reason, for example:\n"
        f"{marker}: I do not know this fact.\n"
        "Otherwise answer normally."
    )


def clean_reason(value: Any) -> str:
    """The model's stated reason as plain text, at most :data:`MAX_REASON_CHARS` characters."""
    text = value if isinstance(value, str) else ""
    text = " ".join(text.split())
    return text[:MAX_REASON_CHARS]


def _arguments(value: Any) -> dict[str, Any] | None:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def call_from_object(obj: Any, fmt: CallFormat) -> HandoffCall | None:
    """A call from a decoded ``{"name": ..., "arguments"|"parameters": {...}}`` object."""
    if not isinstance(obj, dict) or obj.get("name") != HANDOFF_TOOL_NAME:
        return None
    if "arguments" in obj and "parameters" in obj:
        return None
    args = _arguments(obj.get("arguments", obj.get("parameters")))
    if args is None:
        return None
    return HandoffCall(format=fmt, reason=clean_reason(args.get("reason")))


def decode_json_object(text: str) -> tuple[Any, int] | None:
    """The first JSON value at the start of ``text`` (after whitespace) and where it ends."""
    stripped = text.lstrip()
    offset = len(text) - len(stripped)
    try:
        value, end = json.JSONDecoder().raw_decode(stripped)
    except json.JSONDecodeError:
        return None
    return value, offset + end


_HARMONY_RECIPIENT = re.compile(r"\bto=functions\.([A-Za-z0-9_\-]+)(?=[\s<]|$)")


def harmony_recipient(header: str) -> str | None:
    """The function a harmony message header addresses (``to=functions.NAME``), if any."""
    found = _HARMONY_RECIPIENT.search(header)
    return found.group(1) if found else None


def harmony_call(body: str) -> HandoffCall | None:
    """A call from the JSON body of a harmony message addressed to ``functions.handoff``."""
    decoded = decode_json_object(body)
    if decoded is None:
        return None
    value, end = decoded
    if body[end:].strip() or not isinstance(value, dict):
        return None
    return HandoffCall(format="harmony", reason=clean_reason(value.get("reason")))


def marker_reason(after_marker: str) -> str:
    """The reason written after the marker: ``[[HANDOFF]]: reason`` or ``[[HANDOFF]] reason``."""
    text = after_marker.split("\n", 1)[0].strip()
    if text[:1] in (":", "-", "—"):
        text = text[1:]
    return clean_reason(text)
