"""The v1 gRPC API over a real Unix socket, served by a real daemon on a tiny real ONNX model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoffd.server import Daemon
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

from tests.support import daemon_settings


def user(text: str, max_tokens: int = 16, **params: Any) -> pb.ChatRequest:
    return pb.ChatRequest(
        messages=[pb.Message(role=pb.ROLE_USER, content=text)],
        params=pb.GenerationParams(max_tokens=max_tokens, **params),
        client_request_id="test-1",
    )


@pytest.fixture
async def stub(daemon: Daemon) -> AsyncIterator[pb_grpc.HandoffdStub]:
    async with grpc.aio.insecure_channel(f"unix://{daemon.socket_path}") as channel:
        yield pb_grpc.HandoffdStub(channel)


async def collect(stub: pb_grpc.HandoffdStub, request: pb.ChatRequest) -> list[pb.ChatEvent]:
    return [event async for event in stub.ChatStream(request)]


async def test_unary_chat_answers_locally(stub: pb_grpc.HandoffdStub) -> None:
    """Chat returns text, route LOCAL with a reason, usage, timing, model name and the echo id."""
    response = await stub.Chat(user("hello there", max_tokens=12))
    assert response.route == pb.LOCAL
    assert response.decision.reasons[0].rule_id
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 12
    assert response.model
    assert response.timing.total_ms >= response.timing.ttft_ms > 0
    assert response.client_request_id == "test-1"
    assert response.finish_reason in (pb.STOP, pb.LENGTH)


async def test_stream_is_decision_deltas_final(stub: pb_grpc.HandoffdStub) -> None:
    """ChatStream sends one decision first, then deltas, then one final whose text is theirs."""
    events = await collect(stub, user("tell me a story", max_tokens=20))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "decision"
    assert kinds[-1] == "final"
    assert set(kinds[1:-1]) <= {"delta"}
    streamed = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    assert streamed == events[-1].final.text
    assert events[0].decision.route == events[-1].final.route == pb.LOCAL


async def test_unary_and_stream_agree(stub: pb_grpc.HandoffdStub) -> None:
    """Greedy decoding gives the same answer through Chat and ChatStream."""
    request = user("the same question", max_tokens=24)
    unary = await stub.Chat(request)
    events = await collect(stub, request)
    assert unary.text == events[-1].final.text


async def test_parallel_streams_are_all_correct(stub: pb_grpc.HandoffdStub) -> None:
    """8 concurrent streams each get exactly the answer they get alone."""
    prompts = [f"question number {i}" for i in range(8)]
    alone = [(await stub.Chat(user(p, max_tokens=24))).text for p in prompts]
    together = await asyncio.gather(*(collect(stub, user(p, max_tokens=24)) for p in prompts))
    assert [events[-1].final.text for events in together] == alone


async def test_cancel_mid_stream_frees_the_engine(
    daemon: Daemon, stub: pb_grpc.HandoffdStub
) -> None:
    """A client that cancels mid-stream frees the engine; the next request is served."""
    call = stub.ChatStream(user("a long answer please", max_tokens=400))
    seen = 0
    async for event in call:
        if event.WhichOneof("event") == "delta":
            seen += 1
            if seen == 3:
                call.cancel()
                break
    assert daemon.engine is not None
    for _ in range(200):
        if daemon.engine.stats.active == 0 and daemon.state.active_requests == 0:
            break
        await asyncio.sleep(0.01)
    assert daemon.engine.stats.active == 0
    assert daemon.state.active_requests == 0
    response = await stub.Chat(user("still there?", max_tokens=4))
    assert response.usage.completion_tokens > 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ChatRequest(), "messages"),
        (pb.ChatRequest(messages=[pb.Message(content="no role")]), "messages[0].role"),
        (user("x", max_tokens=-1), "params.max_tokens"),
        (user("x", max_tokens=10_000_000), "params.max_tokens"),
        (user("x", temperature=-1.0), "params.temperature"),
        (user("x", top_p=1.5), "params.top_p"),
        (user("word " * 5000, max_tokens=16), "messages"),
        (user("y" * (1 << 20) + "y"), "messages[0].content"),
    ],
    ids=["no-messages", "unset-role", "max-tokens-negative", "max-tokens-huge",
         "temperature-negative", "top-p-high", "beyond-context", "1MB-message"],
)
async def test_hostile_requests_are_invalid_argument(
    stub: pb_grpc.HandoffdStub, request_: pb.ChatRequest, field: str
) -> None:
    """Each hostile request gets INVALID_ARGUMENT naming the field, on both RPCs."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Chat(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (info.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(stub, request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_explain_does_not_generate(daemon: Daemon, stub: pb_grpc.HandoffdStub) -> None:
    """Explain returns the decision and the prompt's token count, and generates nothing."""
    assert daemon.engine is not None
    before = daemon.engine.stats.tokens_generated_total
    result = await stub.Explain(user("where would this go?"))
    assert result.decision.route == pb.LOCAL
    assert result.prompt_tokens > 0
    assert daemon.engine.stats.tokens_generated_total == before


async def test_status_and_models(stub: pb_grpc.HandoffdStub, tiny_genai_model: Path) -> None:
    """Status reports ready with the model and provider; ListModels describes the model."""
    status = await stub.Status(pb.StatusRequest())
    assert status.ready
    assert status.execution_provider == "CPUExecutionProvider"
    models = (await stub.ListModels(pb.ListModelsRequest())).models
    assert len(models) == 1
    assert models[0].kind == "local"
    assert models[0].layout == "genai"
    assert models[0].context_window > 0
    assert Path(models[0].path) == tiny_genai_model


async def test_health_not_serving_until_loaded(tiny_genai_model: Path, short_tmp: Path) -> None:
    """Health is NOT_SERVING while the model loads and SERVING after; Chat is UNAVAILABLE."""
    d = await Daemon.start(daemon_settings(tiny_genai_model, short_tmp))
    try:
        async with grpc.aio.insecure_channel(f"unix://{d.socket_path}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest(service="handoffd.v1.Handoffd")
            assert (await health.Check(check)).status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.HandoffdStub(channel).Chat(user("early"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            await d.load()
            assert (await health.Check(check)).status == health_pb2.HealthCheckResponse.SERVING
            overall = health_pb2.HealthCheckRequest(service="")
            assert (await health.Check(overall)).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await d.stop()
    assert not d.socket_path.exists()


async def test_socket_mode_and_stale_socket(tiny_genai_model: Path, short_tmp: Path) -> None:
    """The socket gets the configured mode, and a stale socket file is replaced."""
    import socket as socketlib

    stale = short_tmp / "handoffd.sock"
    s = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # a socket file nobody listens on, as a crashed daemon leaves behind
    d = await Daemon.start(daemon_settings(tiny_genai_model, short_tmp, socket_mode="0600"))
    try:
        assert stale.stat().st_mode & 0o777 == 0o600
    finally:
        await d.stop()
