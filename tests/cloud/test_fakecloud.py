"""The fake cloud speaks the Chat Completions wire format exactly enough for the real SDK's own
types, records what it receives, and applies faults as told. Other tests rely on all of it."""

from __future__ import annotations

import asyncio
import json

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.fakecloud import ECHO, FakeCloud, Hang, HttpError, RateLimited

MESSAGES = [{"role": "user", "content": "hello out there"}]


def sse_events(raw: str) -> list[str]:
    """The data fields of an SSE body, in order; fails on anything but data events."""
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e.removeprefix("data: ") for e in events]


async def test_non_streaming_body_validates_as_chat_completion() -> None:
    """A non-streaming answer is JSON that ChatCompletion.model_validate accepts (strictly,
    with every required field), with usage."""
    async with FakeCloud(reply="Fine, thanks.") as cloud, httpx2.AsyncClient() as http:
        r = await http.post(
            f"{cloud.url}/chat/completions", json={"model": "m1", "messages": MESSAGES}
        )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    completion = ChatCompletion.model_validate(r.json())
    assert completion.choices[0].message.content == "Fine, thanks."
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "m1"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2


async def test_stream_wire_format_matches_openai() -> None:
    """A stream is SSE: a first chunk with delta.role=assistant, content chunks, a chunk with
    finish_reason, a usage chunk with empty choices (include_usage), then [DONE]; every chunk
    validates as ChatCompletionChunk."""
    body = {
        "model": "m1",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with FakeCloud(reply="One two three.") as cloud, httpx2.AsyncClient() as http:
        r = await http.post(f"{cloud.url}/chat/completions", json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(e)) for e in events[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert content == ["One", " two", " three."]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


async def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    """Without stream_options.include_usage no usage chunk is sent (as OpenAI does)."""
    body = {"model": "m1", "messages": MESSAGES, "stream": True}
    async with FakeCloud(reply="Hi.") as cloud, httpx2.AsyncClient() as http:
        r = await http.post(f"{cloud.url}/chat/completions", json=body)
    chunks = [json.loads(e) for e in sse_events(r.text)[:-1]]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


async def test_sdk_client_round_trip_and_models_list() -> None:
    """The official SDK talks to it unchanged: chat (both modes) and models.list; ECHO
    answers with the last user message."""
    async with FakeCloud(reply=ECHO, models=["m1", "m2"]) as cloud:
        client = openai.AsyncOpenAI(base_url=cloud.url, api_key="unused", max_retries=0)
        try:
            completion = await client.chat.completions.create(model="m1", messages=MESSAGES)
            stream = await client.chat.completions.create(
                model="m2",
                messages=MESSAGES,
                stream=True,
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            models = [m.id async for m in client.models.list()]
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model="m3", messages=MESSAGES)
        finally:
            await client.close()
    assert completion.choices[0].message.content == "hello out there"
    assert text == "hello out there"
    assert models == ["m1", "m2"]


async def test_auth_is_checked_when_a_key_is_set() -> None:
    """With api_key set, a request without the right bearer token gets 401 (and is recorded)."""
    async with FakeCloud(api_key="sk-right") as cloud:
        async with httpx2.AsyncClient() as http:
            wrong = await http.post(
                f"{cloud.url}/chat/completions",
                json={"model": "m", "messages": MESSAGES},
                headers={"Authorization": "Bearer sk-wrong"},
            )
            right = await http.get(
                f"{cloud.url}/models", headers={"Authorization": "Bearer sk-right"}
            )
        assert len(cloud.requests) == 2
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200


async def test_faults_apply_to_the_next_n_requests_or_matching_ones() -> None:
    """inject(times=N) hits the next N chat requests; inject(when=...) only matching bodies;
    requests are recorded in order with their bodies."""
    async with FakeCloud() as cloud:
        cloud.inject(HttpError(503), times=2)
        cloud.inject(RateLimited(retry_after_s=3), times=None, when=lambda b: b["model"] == "x")
        async with httpx2.AsyncClient() as http:

            async def post(model: str) -> httpx2.Response:
                return await http.post(
                    f"{cloud.url}/chat/completions", json={"model": model, "messages": MESSAGES}
                )

            statuses = [(await post("m")).status_code for _ in range(3)]
            limited = await post("x")
            assert (await post("m")).status_code == 200
        assert [b["model"] for b in cloud.chat_bodies()] == ["m", "m", "m", "x", "m"]
        assert "hello out there" in cloud.all_text_sent()
    assert statuses == [503, 503, 200]
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"


def test_runs_in_a_thread_for_sync_callers() -> None:
    """start_in_thread serves sync clients (and daemon subprocesses) from its own loop."""
    with FakeCloud.start_in_thread(reply="From a thread.") as cloud:
        client = openai.OpenAI(base_url=cloud.url, api_key="unused", max_retries=0)
        try:
            completion = client.chat.completions.create(model="m", messages=MESSAGES)
        finally:
            client.close()
        assert len(cloud.chat_bodies()) == 1
    assert completion.choices[0].message.content == "From a thread."


async def test_scripted_replies_and_answer_shaping() -> None:
    """Replies can be fixed, ECHO or a function of the request; stop cuts the answer and
    max_tokens limits it with finish_reason length."""
    async with (
        FakeCloud(reply=lambda body: f"model was {body['model']} END rest") as cloud,
        httpx2.AsyncClient() as http,
    ):

        async def ask(**extra: object) -> dict[str, object]:
            r = await http.post(
                f"{cloud.url}/chat/completions",
                json={"model": "m9", "messages": MESSAGES, **extra},
            )
            choice = r.json()["choices"][0]
            return {"text": choice["message"]["content"], "finish": choice["finish_reason"]}

        assert await ask() == {"text": "model was m9 END rest", "finish": "stop"}
        assert await ask(stop=[" END"]) == {"text": "model was m9", "finish": "stop"}
        assert await ask(max_tokens=2) == {"text": "model was", "finish": "length"}
        cloud.set_reply(ECHO)
        assert (await ask())["text"] == "hello out there"


async def test_stop_ends_a_hanging_request() -> None:
    """Stopping the server ends a request that hangs (the client gets an error or a 5xx)
    instead of leaving it waiting forever."""
    async with httpx2.AsyncClient(timeout=30) as http:
        cloud = FakeCloud()
        await cloud.start()
        cloud.inject(Hang())
        request = asyncio.create_task(
            http.post(f"{cloud.url}/chat/completions", json={"model": "m", "messages": MESSAGES})
        )
        await cloud.wait_for_chat_requests(1)
        await cloud.stop()
        (outcome,) = await asyncio.gather(request, return_exceptions=True)
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, httpx2.HTTPError)
    else:
        assert outcome.status_code >= 500
