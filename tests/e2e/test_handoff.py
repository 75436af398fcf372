"""Cloud handoff end to end: a real daemon (tiny ONNX model, Unix socket, SQLite ledger and
budgets) handing off to a real HTTP server speaking the OpenAI wire format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from handoffd.ledger import LedgerReader, verify_ledger
from handoffd.schema.cloud import CloudSettings, CloudTargetSettings
from handoffd.schema.policy import PolicySettings
from handoffd.server import Daemon
from handoffd.settings import state_dir
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

from tests.fakecloud import ECHO, FakeCloud, Hang, HttpError
from tests.support import daemon_settings

POLICY = Path(__file__).parents[2] / "policies" / "default.yaml"


def cloud_settings(url: str, *, output_price: float = 2.0, **target: Any) -> CloudSettings:
    return CloudSettings(
        targets={
            "cloud": CloudTargetSettings(
                base_url=url,
                model="fake-model",
                no_api_key=True,
                price_usd_per_mtok={"input": 1.0, "output": output_price},
                max_retries=0,
                **target,
            )
        }
    )


def ask(
    text: str, *, prefer: int = pb.PREFER_CLOUD, labels: tuple[str, ...] = (), max_tokens: int = 24
) -> pb.ChatRequest:
    return pb.ChatRequest(
        messages=[pb.Message(role=pb.ROLE_USER, content=text)],
        params=pb.GenerationParams(max_tokens=max_tokens),
        handoff=prefer,
        labels=list(labels),
        client_request_id="e2e",
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeCloud]:
    async with FakeCloud(reply="The cloud says hello.") as cloud:
        yield cloud


async def start_daemon(
    model: Path, sock_dir: Path, cloud: CloudSettings, policy: Path = POLICY
) -> Daemon:
    settings = daemon_settings(model, sock_dir).model_copy(
        update={"cloud": cloud, "policy": PolicySettings(files=(policy,))}
    )
    d = await Daemon.start(settings)
    await d.load()
    return d


@pytest.fixture
async def daemon_with_cloud(
    tiny_genai_model: Path, short_tmp: Path, fake: FakeCloud
) -> AsyncIterator[Daemon]:
    d = await start_daemon(tiny_genai_model, short_tmp, cloud_settings(fake.url))
    try:
        yield d
    finally:
        await d.stop()


@pytest.fixture
async def stub(daemon_with_cloud: Daemon) -> AsyncIterator[pb_grpc.HandoffdStub]:
    async with grpc.aio.insecure_channel(f"unix://{daemon_with_cloud.socket_path}") as ch:
        yield pb_grpc.HandoffdStub(ch)


def ledger_entries() -> list[Any]:
    with LedgerReader(state_dir() / "ledger.sqlite3") as reader:
        return reader.entries(limit=0, newest_first=False)


async def test_prefer_cloud_is_answered_by_the_cloud_and_ledgered(
    stub: pb_grpc.HandoffdStub, fake: FakeCloud
) -> None:
    """PREFER_CLOUD goes to the cloud: its text, a cost, a ledger id; the ledger has the intent
    (written first) and the outcome, and verifies."""
    response = await stub.Chat(ask("Explain TCP vs UDP."))
    assert response.route == pb.CLOUD
    assert response.text == "The cloud says hello."
    assert response.decision.cloud_target == "cloud"
    assert response.cost_usd > 0
    assert response.ledger_id
    assert len(fake.chat_bodies()) == 1
    entries = ledger_entries()
    assert [(e.kind, e.outcome) for e in entries][-2:] == [("intent", ""), ("outcome", "sent")]
    assert entries[-2].id == response.ledger_id
    assert entries[-1].settled_cost_usd == pytest.approx(response.cost_usd)
    assert "Explain TCP" not in str(entries)  # only a keyed hash of the prompt is stored
    assert verify_ledger(state_dir() / "ledger.sqlite3").ok
    status = await stub.Status(pb.StatusRequest())
    assert [(t.name, t.model, t.breaker) for t in status.cloud_targets] == [
        ("cloud", "fake-model", "closed")
    ]


async def test_stream_from_the_cloud(stub: pb_grpc.HandoffdStub) -> None:
    """ChatStream of a handoff: a CLOUD decision, the cloud's deltas, a CLOUD final."""
    events = [e async for e in stub.ChatStream(ask("Stream please."))]
    assert events[0].decision.route == pb.CLOUD
    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    assert text == events[-1].final.text == "The cloud says hello."
    assert events[-1].final.route == pb.CLOUD


async def test_no_detected_entity_reaches_the_cloud(
    stub: pb_grpc.HandoffdStub, fake: FakeCloud
) -> None:
    """E-mail is pseudonymized (restored in the answer), card and SSN redacted: the cloud
    receives none of the values, and the client gets its e-mail back."""
    fake.set_reply(ECHO)
    secret_bits = ["anna.schmidt@example.org", "4111 1111 1111 1111", "123-45-6789"]
    prompt = (
        f"Write to {secret_bits[0]} that card {secret_bits[1]} and SSN {secret_bits[2]} "
        "are on file."
    )
    response = await stub.Chat(ask(prompt, max_tokens=64))
    assert response.route == pb.CLOUD
    sent = fake.all_text_sent()
    for value in secret_bits:
        assert value not in sent
    assert "<EMAIL_1>" in sent
    assert secret_bits[0] in response.text  # pseudonym restored in the answer
    assert secret_bits[1] not in response.text  # redacted stays redacted
    rule_ids = {r.rule_id for r in response.decision.reasons}
    assert {"privacy.email", "privacy.credit_card"} <= rule_ids


async def test_labels_and_secrets_stay_on_the_device(
    stub: pb_grpc.HandoffdStub, fake: FakeCloud
) -> None:
    """A never-send label and a secret keep the request local; each refusal is ledgered."""
    health = await stub.Chat(ask("Summarize my blood test.", labels=("health",)))
    assert health.route == pb.LOCAL
    assert "labels.health" in {r.rule_id for r in health.decision.reasons}
    secret = await stub.Chat(ask("Why does sk-abcdefghijklmnopqrstuvwx1234 fail?"))
    assert secret.route == pb.LOCAL
    assert fake.chat_bodies() == []
    refusals = [e for e in ledger_entries() if e.outcome == "refused"]
    assert [e.id for e in refusals] == [health.ledger_id, secret.ledger_id]
    assert "labels.health" in refusals[0].rule_ids


async def test_local_only_never_scans_or_sends(stub: pb_grpc.HandoffdStub, fake: FakeCloud) -> None:
    """LOCAL_ONLY is answered locally and leaves no trace in the cloud or the ledger."""
    response = await stub.Chat(ask("hi", prefer=pb.LOCAL_ONLY))
    assert response.route == pb.LOCAL
    assert fake.chat_bodies() == []
    assert ledger_entries() == []


async def test_cloud_down_falls_back_locally(stub: pb_grpc.HandoffdStub, fake: FakeCloud) -> None:
    """Every request meant for a failing cloud completes locally as LOCAL_FALLBACK with the
    reason, and the ledger records the fallback."""
    fake.inject(HttpError(503), times=None)
    responses = await asyncio.gather(*(stub.Chat(ask(f"q{i}")) for i in range(4)))
    for r in responses:
        assert r.route == pb.LOCAL_FALLBACK
        assert r.decision.reasons[0].rule_id == "cloud.unavailable"
        assert r.usage.completion_tokens > 0
        assert r.ledger_id
    outcomes = [e.outcome for e in ledger_entries() if e.kind == "outcome"]
    assert outcomes == ["fallback"] * 4


async def test_hanging_cloud_falls_back_within_the_deadline(
    tiny_genai_model: Path, short_tmp: Path, fake: FakeCloud
) -> None:
    """A cloud that never answers costs at most its total deadline (+1 s) before the local
    answer arrives."""
    fake.inject(Hang(), times=None)
    cloud = cloud_settings(fake.url, timeouts={"connect_s": 1, "first_byte_s": 1, "total_s": 2})
    d = await start_daemon(tiny_genai_model, short_tmp, cloud)
    try:
        async with grpc.aio.insecure_channel(f"unix://{d.socket_path}") as ch:
            started = time.monotonic()
            r = await pb_grpc.HandoffdStub(ch).Chat(ask("anyone there?"))
            elapsed = time.monotonic() - started
    finally:
        await d.stop()
    assert r.route == pb.LOCAL_FALLBACK
    assert elapsed < 2 + 1


async def test_budget_exhausted_falls_back(
    tiny_genai_model: Path, short_tmp: Path, fake: FakeCloud, tmp_path: Path
) -> None:
    """Once the daily budget is spent, handoffs are refused (ledgered) and answered locally."""
    policy = tmp_path / "tiny-budget.yaml"
    policy.write_text(
        "version: 1\ncloud: {allow: [cloud]}\n"
        "budgets:\n  limits:\n    - {id: budget.tiny, scope: global, period: day, usd: 0.02}\n"
    )
    # $2,000 per million output tokens: a worst case of 8 tokens is $0.016, so one call fits
    # the $0.02 budget, and after it is settled the next worst case no longer does
    cloud = cloud_settings(fake.url, output_price=2000.0)
    d = await start_daemon(tiny_genai_model, short_tmp, cloud, policy)
    try:
        async with grpc.aio.insecure_channel(f"unix://{d.socket_path}") as ch:
            stub = pb_grpc.HandoffdStub(ch)
            routes = [(await stub.Chat(ask(f"question {i}", max_tokens=8))) for i in range(4)]
    finally:
        await d.stop()
    assert routes[0].route == pb.CLOUD
    assert routes[-1].route == pb.LOCAL_FALLBACK
    assert routes[-1].decision.reasons[0].rule_id == "budget.tiny"
    assert sum(r.cost_usd for r in routes) <= 0.02
    refused = [e for e in ledger_entries() if e.outcome == "refused"]
    assert refused
    assert "budget.tiny" in refused[-1].rule_ids


async def test_rate_limit_applies_to_local_answers(
    tiny_genai_model: Path, short_tmp: Path, tmp_path: Path
) -> None:
    """A rule with applies_to: all limits local answers: past the limit the client gets
    RESOURCE_EXHAUSTED naming the rule, with a retry-after in the trailing metadata."""
    policy = tmp_path / "local-rate.yaml"
    policy.write_text(
        "version: 1\nrate_limits:\n"
        "  - {id: rate.local, applies_to: all, requests_per_minute: 2}\n"
    )
    settings = daemon_settings(tiny_genai_model, short_tmp).model_copy(
        update={"policy": PolicySettings(files=(policy,))}
    )
    d = await Daemon.start(settings)
    await d.load()
    try:
        async with grpc.aio.insecure_channel(f"unix://{d.socket_path}") as ch:
            stub = pb_grpc.HandoffdStub(ch)
            for _ in range(2):
                assert (await stub.Chat(ask("hi", prefer=pb.AUTO, max_tokens=2))).route == pb.LOCAL
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Chat(ask("hi", prefer=pb.AUTO, max_tokens=2))
    finally:
        await d.stop()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate.local" in (info.value.details() or "")
    retry = dict(info.value.trailing_metadata() or ())
    assert float(retry["retry-after"]) > 0


async def test_long_prompt_goes_to_the_cloud_scanned(
    stub: pb_grpc.HandoffdStub, fake: FakeCloud
) -> None:
    """A prompt beyond the local context window is handed off (rule rules.context_overflow)
    instead of failing, and, scanned off the event loop because it is large, it still reaches
    the cloud without the e-mail address buried at its end."""
    prompt = "lorem ipsum " * 2000 + " reply to zed.q@example.net"
    response = await stub.Chat(ask(prompt, prefer=pb.AUTO))
    assert response.route == pb.CLOUD
    assert response.decision.reasons[0].rule_id == "rules.context_overflow"
    sent = fake.all_text_sent()
    assert "zed.q@example.net" not in sent
    assert "<EMAIL_1>" in sent
