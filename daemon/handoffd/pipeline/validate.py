"""Validation of client requests, shared by every transport.

Transports turn their wire format into a :class:`~handoffd.domain.ChatRequest` (rejecting what
cannot be represented, such as an unknown role); this module then checks every value against the
daemon's limits. Each error names the field, the bad value and the allowed range.
"""

from __future__ import annotations

import math

from handoffd.domain import ChatRequest, GenerationParams
from handoffd.errors import InvalidRequest

MAX_MESSAGES = 1024
MAX_STOP_SEQUENCES = 8
MAX_STOP_CHARS = 256
MAX_LABELS = 32
MAX_LABEL_CHARS = 64
MAX_REQUEST_ID_CHARS = 128


def _check_float(
    name: str, value: float, low: float, high: float, *, low_open: bool = False
) -> None:
    if not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number, got {value}", field=name)
    bad_low = value <= low if low_open else value < low
    if bad_low or value > high:
        lo = f"({low}" if low_open else f"[{low}"
        raise InvalidRequest(f"{name} must be in {lo}, {high}], got {value:g}", field=name)


def validate_params(params: GenerationParams, *, max_tokens_limit: int) -> None:
    if params.max_tokens <= 0:
        raise InvalidRequest(
            f"params.max_tokens must be at least 1, got {params.max_tokens}",
            field="params.max_tokens",
        )
    if params.max_tokens > max_tokens_limit:
        raise InvalidRequest(
            f"params.max_tokens is {params.max_tokens}; this daemon allows at most "
            f"{max_tokens_limit} (model.max_new_tokens_limit)",
            field="params.max_tokens",
        )
    _check_float("params.temperature", params.temperature, 0.0, 2.0)
    _check_float("params.top_p", params.top_p, 0.0, 1.0, low_open=True)
    _check_float("params.repetition_penalty", params.repetition_penalty, 0.0, 10.0, low_open=True)
    if params.top_k < 0:
        raise InvalidRequest(
            f"params.top_k must be 0 (off) or more, got {params.top_k}", field="params.top_k"
        )
    if len(params.stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(
            f"params.stop has {len(params.stop)} entries; at most {MAX_STOP_SEQUENCES} allowed",
            field="params.stop",
        )
    for i, stop in enumerate(params.stop):
        if not stop or len(stop) > MAX_STOP_CHARS:
            raise InvalidRequest(
                f"params.stop[{i}] must be 1 to {MAX_STOP_CHARS} characters, got {len(stop)}",
                field=f"params.stop[{i}]",
            )


def validate_request(
    request: ChatRequest, *, max_message_chars: int, max_tokens_limit: int
) -> None:
    """Raise :class:`InvalidRequest` naming the first bad field of ``request``."""
    if not request.messages:
        raise InvalidRequest(
            "messages is empty: send at least one message, e.g. {role: user, content: 'Hi'}",
            field="messages",
        )
    if len(request.messages) > MAX_MESSAGES:
        raise InvalidRequest(
            f"messages has {len(request.messages)} entries; at most {MAX_MESSAGES} allowed",
            field="messages",
        )
    for i, message in enumerate(request.messages):
        if len(message.content) > max_message_chars:
            raise InvalidRequest(
                f"messages[{i}].content has {len(message.content)} characters; the limit is "
                f"{max_message_chars} (server.max_message_chars)",
                field=f"messages[{i}].content",
            )
    validate_params(request.params, max_tokens_limit=max_tokens_limit)
    if len(request.labels) > MAX_LABELS:
        raise InvalidRequest(
            f"labels has {len(request.labels)} entries; at most {MAX_LABELS}", field="labels"
        )
    for label in request.labels:
        if not label or len(label) > MAX_LABEL_CHARS or not label.isprintable():
            raise InvalidRequest(
                f"labels: {label[:MAX_LABEL_CHARS]!r} must be 1 to {MAX_LABEL_CHARS} printable "
                "characters",
                field="labels",
            )
    if len(request.client_request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidRequest(
            f"client_request_id has {len(request.client_request_id)} characters; at most "
            f"{MAX_REQUEST_ID_CHARS}",
            field="client_request_id",
        )
