"""The OpenAI-compatible HTTP facade, driven by the real ``openai`` SDK and by curl, against a
real daemon (tiny ONNX model) on loopback: same pipeline, OpenAI's shapes and errors."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
from handoffd.auth import TokenStore, default_token_file
from handoffd.domain import CallerRole
from handoffd.server import Daemon
from handoffd.settings import HttpSettings, state_dir

from tests.support import daemon_settings


@pytest.fixture
def token() -> str:
    """An app token, created the way ``handoffctl apps add notes`` does."""
    return TokenStore(default_token_file(state_dir())).add("notes", CallerRole.APP)


@pytest.fixture
async def daemon(tiny_genai_model: Path, short_tmp: Path, token: str) -> AsyncIterator[Daemon]:
    settings = daemon_settings(tiny_genai_model, short_tmp).model_copy(
        update={"http": HttpSettings(listen="127.0.0.1:0")}
    )
    d = await Daemon.start(settings)
    await d.load()
    try:
        yield d
    finally:
        await d.stop()


@pytest.fixture
def base_url(daemon: Daemon) -> str:
    assert daemon.http is not None
    return f"http://127.0.0.1:{daemon.http.port}/v1"


MESSAGES = [{"role": "user", "content": "Say something."}]


async def test_async_sdk_non_streaming(base_url: str, token: str) -> None:
    """AsyncOpenAI gets a ChatCompletion with usage and the handoffd extra field."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=token, max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="local",
        messages=MESSAGES,
        max_tokens=12,
        temperature=0,  # type: ignore[arg-type]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert raw.headers["x-handoffd-route"] == "local"
    extra = completion.model_extra or {}
    assert extra["handoffd"]["route"] == "local"
    await client.close()


async def test_async_sdk_streaming_with_usage(base_url: str, token: str) -> None:
    """Streaming through the SDK: role, content deltas, finish_reason, then a usage chunk; the
    streamed text equals the non-streamed answer (greedy)."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=token, max_retries=0)
    stream = await client.chat.completions.create(
        model="local",
        messages=MESSAGES,
        max_tokens=12,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    parts, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    whole = await client.chat.completions.create(
        model="local",
        messages=MESSAGES,
        max_tokens=12,
        temperature=0,  # type: ignore[arg-type]
    )
    assert "".join(parts) == whole.choices[0].message.content
    assert finish in ("stop", "length")
    assert usage is not None
    assert usage.completion_tokens > 0
    await client.close()


async def test_sync_sdk_and_models(base_url: str, token: str) -> None:
    """The sync SDK works too (from a thread, as a sync app would), and /v1/models lists the
    local model."""

    def use_sync_sdk() -> tuple[list[str], str]:
        with openai.OpenAI(base_url=base_url, api_key=token, max_retries=0) as client:
            ids = [m.id for m in client.models.list().data]
            completion = client.chat.completions.create(
                model="local",
                messages=MESSAGES,
                max_tokens=4,  # type: ignore[arg-type]
            )
            return ids, completion.object

    ids, kind = await asyncio.to_thread(use_sync_sdk)
    assert ids == ["tiny-random-llama-genai"]
    assert kind == "chat.completion"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_sees_sse_framing(base_url: str, token: str) -> None:
    """Raw SSE framing: `data: {json}` events separated by blank lines, ending in [DONE]."""
    body = json.dumps({"messages": MESSAGES, "max_tokens": 6, "stream": True, "temperature": 0})
    curl = await asyncio.create_subprocess_exec(
        "curl",
        "-sN",
        "--max-time",
        "60",
        f"{base_url}/chat/completions",
        "-H",
        f"Authorization: Bearer {token}",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        stdout=asyncio.subprocess.PIPE,
    )
    raw, _ = await curl.communicate()
    assert curl.returncode == 0
    out = raw.decode()
    events = [e for e in out.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    first = json.loads(events[0][len("data: ") :])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"


@pytest.fixture
async def http(base_url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({}, 400, "messages"),
        ({"messages": []}, 400, "messages"),
        ({"messages": "hello"}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role"),
        ({"messages": MESSAGES, "max_tokens": "ten"}, 400, "max_tokens"),
        ({"messages": MESSAGES, "max_tokens": -3}, 400, "params.max_tokens"),
        ({"messages": MESSAGES, "temperature": 7}, 400, "params.temperature"),
        ({"messages": MESSAGES, "n": 3}, 400, "n"),
        ({"messages": MESSAGES, "bogus": True}, 400, "bogus"),
        (
            {"messages": [{"role": "user", "content": "x" * 3000}], "max_tokens": 16},
            400,
            "messages",
        ),
    ],
)
async def test_bad_bodies_get_openai_errors(
    http: httpx.AsyncClient, body: dict[str, object], status: int, param: str
) -> None:
    """Bad bodies get 4xx in OpenAI's error shape naming the parameter, never a 500."""
    response = await http.post("/chat/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


async def test_body_too_large_and_not_json(http: httpx.AsyncClient) -> None:
    """A 5 MB body is refused with 413; a body that is not JSON with 400."""
    big = await http.post(
        "/chat/completions",
        content=b"{" + b" " * (5 << 20) + b"}",
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413
    assert big.json()["error"]["param"] == "body"
    garbage = await http.post("/chat/completions", content=b"not json")
    assert garbage.status_code == 400


async def test_no_or_bad_token_is_401(base_url: str) -> None:
    """Without a valid app token the facade answers 401 in OpenAI's shape."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as anonymous:
        r = await anonymous.post("/chat/completions", json={"messages": MESSAGES})
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
        r = await anonymous.post(
            "/chat/completions",
            json={"messages": MESSAGES},
            headers={"authorization": "Bearer hfd_wrong"},
        )
        assert r.status_code == 401


async def test_health(base_url: str) -> None:
    """/health answers without a token once the model is loaded."""
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(base_url.removesuffix("/v1") + "/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
