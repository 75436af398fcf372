"""The API key never leaves through logs, errors or reprs; only the configured headers leave
the device."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable

import pytest
from handoffd.cloud import CloudClient
from handoffd.errors import HandoffdError
from handoffd.schema.cloud import CloudSettings
from structlog.testing import capture_logs

from tests.cloud.conftest import API_KEY, MESSAGES, PARAMS, MakeClient, target_settings
from tests.fakecloud import Disconnect, FakeCloud, HttpError, MalformedJson

Scenario = Callable[[FakeCloud, CloudClient], Awaitable[object]]


async def _ok(cloud: FakeCloud, client: CloudClient) -> object:
    return await client.chat("fake", MESSAGES, PARAMS)


async def _stream_broken(cloud: FakeCloud, client: CloudClient) -> object:
    cloud.inject(Disconnect(after_chunks=1))
    return [d async for d in client.stream_chat("fake", MESSAGES, PARAMS)]


async def _status(status: int) -> Callable[[FakeCloud, CloudClient], Awaitable[object]]:
    async def run(cloud: FakeCloud, client: CloudClient) -> object:
        cloud.inject(HttpError(status, message=f"echo {API_KEY}"), times=None)
        return await client.chat("fake", MESSAGES, PARAMS)

    return run


async def _malformed(cloud: FakeCloud, client: CloudClient) -> object:
    cloud.inject(MalformedJson())
    return await client.chat("fake", MESSAGES, PARAMS)


@pytest.mark.parametrize("scenario", ["ok", "401", "500", "broken", "malformed", "refused"])
async def test_key_never_in_logs_errors_or_reprs(
    cloud: FakeCloud,
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    scenario: str,
) -> None:
    """Whatever happens (success, 401 and 500 whose server message echoes the key, a broken
    stream, malformed JSON, nobody listening), the key is in no structlog event, no stdlib log
    record (openai, httpx at DEBUG), no error message, traceback or repr."""
    caplog.set_level(logging.DEBUG)
    client = make_client(max_retries=1)
    if scenario == "refused":
        async with FakeCloud() as gone:
            url = gone.url
        client = make_client(max_retries=0, base_url=url)
    runs = {
        "ok": _ok,
        "401": await _status(401),
        "500": await _status(500),
        "broken": _stream_broken,
        "malformed": _malformed,
        "refused": _ok,
    }
    error: BaseException | None = None
    with capture_logs() as events:
        try:
            await runs[scenario](cloud, client)
        except HandoffdError as exc:
            error = exc
    assert (error is None) == (scenario == "ok")
    assert events, "the call should have logged"
    assert API_KEY not in repr(events)
    assert all(API_KEY not in r.getMessage() for r in caplog.records)
    assert API_KEY not in repr(client)
    if error is not None:
        assert API_KEY not in str(error)
        assert API_KEY not in repr(error)
        assert API_KEY not in "".join(traceback.format_exception(error))


async def test_prompt_text_is_not_logged(cloud: FakeCloud, make_client: MakeClient) -> None:
    """cloud.request/cloud.response carry counts, not the prompt or the answer."""
    with capture_logs() as events:
        await make_client().chat("fake", MESSAGES, PARAMS)
    names = [e["event"] for e in events]
    assert names == ["cloud.request", "cloud.response"]
    assert "capital of France" not in repr(events)
    assert "Paris" not in repr(events)
    assert events[0]["prompt_chars"] == sum(len(m.content) for m in MESSAGES)
    assert events[1]["completion_tokens"] == 6


async def test_only_configured_headers_leave(
    cloud: FakeCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key goes only in the Authorization header; OPENAI_ORG_ID/OPENAI_PROJECT_ID/
    OPENAI_API_KEY in the environment are not sent; a keyless target sends no Authorization."""
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    async with FakeCloud() as keyless_cloud:
        settings = CloudSettings.model_validate(
            {
                "targets": {
                    "fake": target_settings(cloud.url),
                    "local": target_settings(keyless_cloud.url, api_key_env=None, no_api_key=True),
                }
            }
        )
        client = CloudClient(settings, environ={"FAKE_CLOUD_KEY": API_KEY})
        try:
            await client.chat("fake", MESSAGES, PARAMS)
            await client.chat("local", MESSAGES, PARAMS)
        finally:
            await client.aclose()
        (keyless,) = keyless_cloud.requests
    (keyed,) = cloud.requests
    assert keyed.headers["authorization"] == f"Bearer {API_KEY}"
    assert "authorization" not in keyless.headers
    for request in (keyed, keyless):
        assert "openai-organization" not in request.headers
        assert "openai-project" not in request.headers
        assert "sk-from-env" not in repr(request.headers)
        assert API_KEY not in request.raw_body.decode()
