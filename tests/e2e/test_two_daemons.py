"""Two daemons: a small device hands off to a bigger box whose OpenAI-compatible facade is its
"cloud" (the README's LAN setup, here on loopback)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from handoffd.auth import TokenStore, default_token_file
from handoffd.domain import CallerRole
from handoffd.ledger import LedgerReader
from handoffd.schema.cloud import CloudSettings, CloudTargetSettings
from handoffd.schema.policy import PolicySettings
from handoffd.server import Daemon
from handoffd.settings import HttpSettings, state_dir
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

from tests.support import daemon_settings

QUESTION = "Name a colour."


async def ask(socket: Path, prefer: int) -> pb.ChatResponse:
    async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
        return await pb_grpc.HandoffdStub(channel).Chat(
            pb.ChatRequest(
                messages=[pb.Message(role=pb.ROLE_USER, content=QUESTION)],
                params=pb.GenerationParams(max_tokens=12, temperature=0.0),
                handoff=prefer,
            )
        )


async def test_small_device_hands_off_to_a_bigger_handoffd(
    tiny_genai_model: Path, tmp_path: Path, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The small daemon's handoff is answered by the big daemon's local model through the HTTP
    facade, authenticated by an app token; the small device's ledger records the handoff."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "big"))
    token = TokenStore(default_token_file(state_dir())).add("kiosk-1", CallerRole.APP)
    big = await Daemon.start(
        daemon_settings(tiny_genai_model, short_tmp / "big").model_copy(
            update={"http": HttpSettings(listen="127.0.0.1:0")}
        )
    )
    small: Daemon | None = None
    try:
        await big.load()
        assert big.http is not None
        monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "small"))
        monkeypatch.setenv("BIGBOX_TOKEN", token)
        policy = tmp_path / "policy.yaml"
        policy.write_text("version: 1\ncloud: {allow: [bigbox]}\n")
        cloud = CloudSettings(
            targets={
                "bigbox": CloudTargetSettings(
                    base_url=f"http://127.0.0.1:{big.http.port}/v1",
                    model="tiny-random-llama-genai",
                    api_key_env="BIGBOX_TOKEN",
                    price_usd_per_mtok={"input": 0.0, "output": 0.0},
                )
            }
        )
        small = await Daemon.start(
            daemon_settings(tiny_genai_model, short_tmp / "small").model_copy(
                update={"cloud": cloud, "policy": PolicySettings(files=(policy,))}
            )
        )
        await small.load()
        handed_off = await ask(small.socket_path, pb.PREFER_CLOUD)
        direct = await ask(big.socket_path, pb.LOCAL_ONLY)
    finally:
        if small is not None:
            await small.stop()
        await big.stop()
    assert handed_off.route == pb.CLOUD
    assert handed_off.decision.cloud_target == "bigbox"
    assert handed_off.model == "tiny-random-llama-genai"
    assert handed_off.text == direct.text  # greedy on both sides: the big box's own answer
    with LedgerReader(tmp_path / "small" / "ledger.sqlite3") as reader:
        outcomes = [e.outcome for e in reader.entries(limit=0) if e.kind == "outcome"]
    assert outcomes == ["sent"]
