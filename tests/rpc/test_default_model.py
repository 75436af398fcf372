"""The embedded default model, served over gRPC: the question a newcomer asks first."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from handoffd.server import Daemon
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

from tests.support import daemon_settings

pytestmark = pytest.mark.default_model


async def test_capital_of_france_is_paris(default_model: Path, short_tmp: Path) -> None:
    """The default model, loaded and verified by the daemon, answers the capital-of-France
    question locally with "Paris", streamed over the Unix socket."""
    d = await Daemon.start(daemon_settings(default_model, short_tmp))
    try:
        await d.load()
        async with grpc.aio.insecure_channel(f"unix://{d.socket_path}") as channel:
            stub = pb_grpc.HandoffdStub(channel)
            request = pb.ChatRequest(
                messages=[pb.Message(role=pb.ROLE_USER, content="What is the capital of France?")],
                params=pb.GenerationParams(max_tokens=48),
            )
            events = [e async for e in stub.ChatStream(request)]
    finally:
        await d.stop()
    final = events[-1].final
    assert final.route == pb.LOCAL
    assert "Paris" in final.text
    assert final.model == "smollm2-135m-instruct"
    assert final.timing.decode_tokens_per_s > 0
