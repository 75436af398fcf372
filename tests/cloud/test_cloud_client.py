"""CloudClient against the fake cloud over real HTTP: answers, retries, timeouts, failures."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from handoffd.cloud import CloudClient, CloudDelta
from handoffd.domain import FinishReason, GenerationParams, Message, Role
from handoffd.errors import (
    CloudError,
    CloudUnavailable,
    DeadlineExceeded,
    InvalidRequest,
    NotFound,
)

from tests.cloud.conftest import MESSAGES, PARAMS, MakeClient
from tests.fakecloud import (
    Disconnect,
    ErrorEvent,
    FakeCloud,
    Hang,
    HttpError,
    MalformedJson,
    RateLimited,
    SlowFirstByte,
)


async def collect(
    client: CloudClient, *, deadline: float | None = None, into: list[str] | None = None
) -> list[CloudDelta]:
    """Every item of one stream_chat call; texts also go to ``into`` as they arrive."""
    out = []
    stream = client.stream_chat("fake", MESSAGES, PARAMS, deadline=deadline)
    async with contextlib.aclosing(stream) as it:
        async for delta in it:
            out.append(delta)
            if into is not None:
                into.append(delta.text)
    return out


# -- happy paths ------------------------------------------------------------------------------


async def test_chat_returns_text_usage_and_model(cloud: FakeCloud, make_client: MakeClient) -> None:
    """A non-streaming call returns the answer, token usage, finish reason and model, and sends
    the configured model, the messages and the token limit."""
    client = make_client()
    result = await client.chat("fake", MESSAGES, PARAMS)
    assert result.text == "Paris is the capital of France."
    assert result.finish_reason is FinishReason.STOP
    assert result.model == "fake-model"
    assert result.target == "fake"
    assert result.attempts == 1
    assert result.usage is not None
    assert result.usage.completion_tokens == 6
    assert result.usage.prompt_tokens > 0
    (body,) = cloud.chat_bodies()
    assert body["model"] == "fake-model"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert body["max_tokens"] == 64
    assert "stream" not in body or body["stream"] is False


async def test_stream_yields_deltas_then_final_with_usage(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A streaming call yields the text in pieces, then one final item with usage (asked for
    with stream_options.include_usage), finish reason and model."""
    deltas = await collect(make_client())
    *texts, final = deltas
    assert "".join(d.text for d in texts) == "Paris is the capital of France."
    assert len(texts) > 1
    assert all(not d.final for d in texts)
    assert final.final
    assert final.text == ""
    assert final.usage is not None
    assert final.usage.completion_tokens == len(texts)
    assert final.finish_reason is FinishReason.STOP
    assert final.model == "fake-model"
    (body,) = cloud.chat_bodies()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_length_limit_and_cached_tokens_are_reported(make_client: MakeClient) -> None:
    """max_tokens cuts the answer with finish_reason LENGTH; cached prompt tokens come back."""
    async with FakeCloud(reply="one two three four five", cached_tokens=4) as fake:
        client = make_client(base_url=fake.url)
        result = await client.chat("fake", MESSAGES, GenerationParams(max_tokens=2))
    assert result.text == "one two"
    assert result.finish_reason is FinishReason.LENGTH
    assert result.usage is not None
    assert result.usage.cached_prompt_tokens == 4


async def test_max_completion_tokens_field_and_optional_params(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A target set to max_completion_tokens sends that field instead of max_tokens; seed and
    stop go through, local-only knobs (top_k, repetition_penalty) do not."""
    client = make_client(max_tokens_field="max_completion_tokens")
    params = GenerationParams(max_tokens=9, seed=7, stop=("END",), top_k=40, repetition_penalty=1.2)
    await client.chat("fake", MESSAGES, params)
    (body,) = cloud.chat_bodies()
    assert body["max_completion_tokens"] == 9
    assert "max_tokens" not in body
    assert body["seed"] == 7
    assert body["stop"] == ["END"]
    assert "top_k" not in body
    assert "repetition_penalty" not in body


async def test_unknown_target_and_tool_messages_are_refused(make_client: MakeClient) -> None:
    """An unknown target name is NotFound listing the known ones; a tool message is an
    InvalidRequest (the wire needs a tool_call_id we do not have)."""
    client = make_client()
    with pytest.raises(NotFound, match=r"'nope'.*fake"):
        await client.chat("nope", MESSAGES, PARAMS)
    with pytest.raises(InvalidRequest, match="tool"):
        await client.chat("fake", (Message(Role.TOOL, "42"),), PARAMS)


# -- retries ----------------------------------------------------------------------------------


async def test_429_retry_after_2s_is_waited_then_succeeds(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """With HTTP 429 and Retry-After: 2 the client waits at least 2 s, then retries and gets
    the answer."""
    cloud.inject(RateLimited(retry_after_s=2))
    client = make_client()
    started = time.monotonic()
    result = await client.chat("fake", MESSAGES, PARAMS)
    elapsed = time.monotonic() - started
    assert elapsed >= 2.0
    assert result.text.startswith("Paris")
    assert result.attempts == 2
    assert len(cloud.chat_bodies()) == 2


async def test_retry_after_ms_is_honoured(cloud: FakeCloud, make_client: MakeClient) -> None:
    """retry-after-ms wins over Retry-After (as in openai-python): 300 ms, not 30 s."""
    cloud.inject(RateLimited(retry_after_s=30, retry_after_ms=300))
    client = make_client()
    started = time.monotonic()
    deltas = await collect(client)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.3
    assert deltas[-1].attempts == 2


async def test_retry_after_above_cap_fails_at_once(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A Retry-After beyond retry_after_cap_s is not waited: CloudUnavailable naming 429 and the
    wait asked for, after one request."""
    cloud.inject(RateLimited(retry_after_s=60))
    client = make_client(retry_after_cap_s=5)
    with pytest.raises(CloudUnavailable, match=r"429.*60 s"):
        await client.chat("fake", MESSAGES, PARAMS)
    assert len(cloud.chat_bodies()) == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retried_then_cloud_unavailable(
    cloud: FakeCloud, make_client: MakeClient, status: int
) -> None:
    """A 5xx is retried max_retries times; when every attempt fails the caller gets
    CloudUnavailable naming the status and the attempts."""
    cloud.inject(HttpError(status), times=None)
    client = make_client(max_retries=2)
    with pytest.raises(CloudUnavailable, match=rf"HTTP {status}.*3 attempts"):
        await client.chat("fake", MESSAGES, PARAMS)
    assert len(cloud.chat_bodies()) == 3


async def test_5xx_then_success_recovers(cloud: FakeCloud, make_client: MakeClient) -> None:
    """Two 503s then a good answer: the stream succeeds on the third attempt."""
    cloud.inject(HttpError(503), times=2)
    deltas = await collect(make_client(max_retries=2))
    assert "".join(d.text for d in deltas).startswith("Paris")
    assert deltas[-1].attempts == 3


@pytest.mark.parametrize(
    ("status", "hint"), [(400, "refused"), (401, "FAKE_CLOUD_KEY"), (404, "model")]
)
async def test_4xx_is_not_retried_and_is_cloud_error(
    cloud: FakeCloud, make_client: MakeClient, status: int, hint: str
) -> None:
    """A 4xx other than 408/409/429 is a CloudError at once, naming the target, the status and
    what to check (for 401: where the key comes from)."""
    cloud.inject(HttpError(status, type="invalid_request_error", code="bad_thing"))
    client = make_client()
    with pytest.raises(CloudError, match=rf"'fake'.*HTTP {status}.*{hint}") as info:
        await client.chat("fake", MESSAGES, PARAMS)
    assert "invalid_request_error/bad_thing" in str(info.value)
    assert len(cloud.chat_bodies()) == 1


# -- timeouts and deadlines -------------------------------------------------------------------


async def test_slow_first_byte_beyond_first_byte_s_is_cloud_unavailable(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A server slower than first_byte_s makes each attempt time out; the call ends with
    CloudUnavailable long before the server would have answered."""
    cloud.inject(SlowFirstByte(30), times=None)
    client = make_client(
        max_retries=1, timeouts={"connect_s": 2, "first_byte_s": 0.3, "total_s": 20}
    )
    started = time.monotonic()
    with pytest.raises(CloudUnavailable, match=r"first_byte_s=0\.3.*2 attempts"):
        await collect(client)
    assert time.monotonic() - started < 30
    assert len(cloud.chat_bodies()) == 2


async def test_slow_first_byte_within_first_byte_s_is_fine(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A first byte that comes before first_byte_s is not a failure."""
    cloud.inject(SlowFirstByte(0.2))
    deltas = await collect(make_client())
    assert deltas[-1].final
    assert deltas[-1].attempts == 1


async def test_hang_ends_at_the_callers_deadline(cloud: FakeCloud, make_client: MakeClient) -> None:
    """A server that never answers cannot hold a call past the caller's deadline:
    DeadlineExceeded, for both call kinds."""
    cloud.inject(Hang(), times=None)
    client = make_client()
    with pytest.raises(DeadlineExceeded):
        await client.chat("fake", MESSAGES, PARAMS, deadline=time.monotonic() + 0.4)
    with pytest.raises(DeadlineExceeded):
        await collect(client, deadline=time.monotonic() + 0.4)


async def test_hang_mid_stream_ends_at_total_s(cloud: FakeCloud, make_client: MakeClient) -> None:
    """A stream that stalls after some text ends at the target's total_s with CloudUnavailable
    (no caller deadline given), after the text already yielded."""
    client = make_client(timeouts={"connect_s": 1, "first_byte_s": 1, "total_s": 1.2})
    await client.chat("fake", MESSAGES, PARAMS)  # warm up: connection pooled, code loaded
    cloud.inject(Hang(after_chunks=2))
    got: list[str] = []
    with pytest.raises(CloudUnavailable, match=r"total_s=1\.2"):
        await collect(client, into=got)
    assert "".join(got) == "Paris is"
    assert len(cloud.chat_bodies()) == 2


async def test_deadline_already_past_fails_without_a_request(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A deadline in the past is DeadlineExceeded before anything is sent."""
    with pytest.raises(DeadlineExceeded):
        await make_client().chat("fake", MESSAGES, PARAMS, deadline=time.monotonic() - 1)
    assert cloud.chat_bodies() == []


# -- broken answers ---------------------------------------------------------------------------


async def test_disconnect_mid_stream_is_an_error_and_never_retried(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """When the connection drops after text was yielded, the caller gets CloudUnavailable and
    the request is not sent again (retries never follow delivered content)."""
    cloud.inject(Disconnect(after_chunks=2))
    client = make_client(max_retries=3)
    got: list[str] = []
    with pytest.raises(CloudUnavailable, match="part way"):
        await collect(client, into=got)
    assert "".join(got) == "Paris is"
    assert len(cloud.chat_bodies()) == 1


async def test_disconnect_before_any_text_is_retried(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A connection dropped before any text reached the caller is retried like any failure."""
    cloud.inject(Disconnect(after_chunks=0))
    deltas = await collect(make_client())
    assert "".join(d.text for d in deltas).startswith("Paris")
    assert len(cloud.chat_bodies()) == 2


async def test_disconnect_in_non_streaming_body_is_retried(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A non-streaming body cut in half is a connection failure, retried."""
    cloud.inject(Disconnect())
    result = await make_client().chat("fake", MESSAGES, PARAMS)
    assert result.attempts == 2


async def test_malformed_json_is_cloud_error_with_a_clear_message(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """A 200 whose JSON does not parse is a CloudError saying so (not retried: a server that
    writes broken JSON will write it again)."""
    cloud.inject(MalformedJson(), times=None)
    client = make_client()
    with pytest.raises(CloudError, match=r"not Chat Completions.*invalid JSON"):
        await client.chat("fake", MESSAGES, PARAMS)
    with pytest.raises(CloudError, match="invalid JSON"):
        await collect(client)
    assert len(cloud.chat_bodies()) == 2


async def test_error_event_in_stream_before_text_is_retried(
    cloud: FakeCloud, make_client: MakeClient
) -> None:
    """An {"error": ...} SSE event before any text is a failed attempt that is retried."""
    cloud.inject(ErrorEvent(after_chunks=0))
    deltas = await collect(make_client())
    assert deltas[-1].attempts == 2


async def test_connection_refused_is_cloud_unavailable(make_client: MakeClient) -> None:
    """A target nobody listens on is CloudUnavailable after its retries."""
    async with FakeCloud() as gone:
        url = gone.url
    client = make_client(base_url=url, max_retries=1)
    with pytest.raises(CloudUnavailable, match=r"connection failed.*2 attempts"):
        await client.chat("fake", MESSAGES, PARAMS)


async def test_concurrency_is_limited_per_target(cloud: FakeCloud, make_client: MakeClient) -> None:
    """With max_concurrent=1 a second call waits for the first; if the first holds the slot
    past the second's deadline, the second gets DeadlineExceeded without sending anything."""
    cloud.inject(Hang(after_chunks=1))
    client = make_client(max_concurrent=1)
    first = client.stream_chat("fake", MESSAGES, PARAMS, deadline=time.monotonic() + 5)
    try:
        got = await anext(first)
        assert got.text == "Paris"
        with pytest.raises(DeadlineExceeded):
            await client.chat("fake", MESSAGES, PARAMS, deadline=time.monotonic() + 0.3)
        assert len(cloud.chat_bodies()) == 1
    finally:
        await first.aclose()
    result = await client.chat("fake", MESSAGES, PARAMS)
    assert result.text.startswith("Paris")


async def test_cancelled_consumer_frees_the_slot(cloud: FakeCloud, make_client: MakeClient) -> None:
    """A consumer cancelled mid-stream closes the HTTP stream and gives back its concurrency
    slot and breaker permit: the next call on a max_concurrent=1 target goes through."""
    cloud.inject(Hang(after_chunks=1))
    client = make_client(max_concurrent=1, breaker={"failures_to_open": 1, "open_for_s": 60})
    first_text = asyncio.Event()

    async def consume() -> None:
        async for delta in client.stream_chat("fake", MESSAGES, PARAMS):
            if delta.text:
                first_text.set()

    task = asyncio.create_task(consume())
    await first_text.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await client.chat("fake", MESSAGES, PARAMS, deadline=time.monotonic() + 10)
    assert result.text.startswith("Paris")
    assert client.breaker_state("fake") == "closed"
