"""Request validation names the bad field and the allowed range."""

from __future__ import annotations

import dataclasses

import pytest
from handoffd.domain import ChatRequest, GenerationParams, Message, Role
from handoffd.errors import InvalidRequest
from handoffd.pipeline.validate import validate_request

OK = ChatRequest(messages=(Message(Role.USER, "hi"),))


def check(request: ChatRequest) -> None:
    validate_request(request, max_message_chars=1000, max_tokens_limit=512)


def with_params(**changes: object) -> ChatRequest:
    return dataclasses.replace(OK, params=dataclasses.replace(GenerationParams(), **changes))


def test_valid_request_passes() -> None:
    """A plain request is accepted."""
    check(OK)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (ChatRequest(messages=()), "messages"),
        (with_params(max_tokens=0), "params.max_tokens"),
        (with_params(max_tokens=-5), "params.max_tokens"),
        (with_params(max_tokens=10_000), "params.max_tokens"),
        (with_params(temperature=-0.1), "params.temperature"),
        (with_params(temperature=float("nan")), "params.temperature"),
        (with_params(top_p=0.0), "params.top_p"),
        (with_params(top_k=-1), "params.top_k"),
        (with_params(repetition_penalty=0.0), "params.repetition_penalty"),
        (with_params(stop=("",)), "params.stop[0]"),
        (with_params(stop=tuple("abcdefghi")), "params.stop"),
        (ChatRequest(messages=(Message(Role.USER, "x" * 1001),)), "messages[0].content"),
        (dataclasses.replace(OK, labels=frozenset({"bad\nlabel"})), "labels"),
        (dataclasses.replace(OK, client_request_id="x" * 200), "client_request_id"),
    ],
)
def test_bad_values_name_their_field(request_: ChatRequest, field: str) -> None:
    """Each bad value is rejected with InvalidRequest naming exactly that field."""
    with pytest.raises(InvalidRequest) as info:
        check(request_)
    assert info.value.field == field
    assert field in info.value.message
