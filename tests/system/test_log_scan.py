"""What the real daemon writes to stdout (JSON logs, as journald would get them) never holds
prompt text, the cloud API key or an app token, along every path a request can take.

Every other system test gets the same scan from the ``fleet`` fixture; this one drives all the
paths at once and first proves the log is not empty of the requests it should describe.
"""

from __future__ import annotations

import secrets
import signal

import grpc
import pytest
from handoffd.auth import TokenStore
from handoffd.auth.tokens import default_token_file
from handoffd.domain import CallerRole
from handoffd.settings import state_dir
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

from tests.fakecloud import ECHO, FakeCloud, HttpError
from tests.log_scan import scan_lines
from tests.system.daemonproc import POLICY, DaemonFleet, cloud_target

KEY_ENV = "HFD_SYSTEST_CLOUD_KEY"


def _ask(text: str, prefer: pb.HandoffPreference) -> pb.ChatRequest:
    return pb.ChatRequest(
        messages=[pb.Message(role=pb.ROLE_USER, content=text)],
        params=pb.GenerationParams(max_tokens=16),
        handoff=prefer,
    )


async def test_no_prompt_key_or_token_reaches_the_daemon_log(fleet: DaemonFleet) -> None:
    """Cloud handoff (with an e-mail and a phone number), local stream, explain, a prompt with
    a secret (kept local), a cloud failure (local fallback) and a wrong token: the daemon logs
    each request, and none of the prompts, entity values, the API key, the app token or the
    wrong token appear anywhere in its output."""
    api_key = "sk-systest-" + secrets.token_hex(16)
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    token = TokenStore(default_token_file(state)).add("scanapp", CallerRole.APP)
    wrong_token = "hfd_" + secrets.token_urlsafe(32)[:43]
    email, phone = "maria.rossi@example.com", "+44 20 7946 0958"
    leaked_secret = "sk-abcdefghijklmnop" + secrets.token_hex(8)
    prompts = {
        "cloud": f"Write to {email} or call {phone} about the lost parcel today.",
        "local": "Describe the garden shed locally, please.",
        "explain": f"Would this mail to {email} leave the device at all?",
        "secret": f"Why does {leaked_secret} fail with a 401 error?",
        "fallback": "Summarize the quarterly garden report for me.",
    }
    forbidden = [api_key, token, wrong_token, email, phone, leaked_secret, *prompts.values()]
    fleet.forbid(*forbidden)
    metadata = (("authorization", f"Bearer {token}"),)
    with FakeCloud.start_in_thread(reply=ECHO, api_key=api_key) as fake:
        config = fleet.config(
            cloud=cloud_target(fake.url, api_key_env=KEY_ENV), policy_files=[POLICY]
        )
        daemon = fleet.spawn(config, env={KEY_ENV: api_key})
        await daemon.wait_ready_async()
        async with grpc.aio.insecure_channel(f"unix://{daemon.socket}") as channel:
            stub = pb_grpc.HandoffdStub(channel)
            cloud = await stub.Chat(_ask(prompts["cloud"], pb.PREFER_CLOUD), metadata=metadata)
            local = [e async for e in stub.ChatStream(_ask(prompts["local"], pb.LOCAL_ONLY))]
            explained = await stub.Explain(_ask(prompts["explain"], pb.PREFER_CLOUD))
            kept = await stub.Chat(_ask(prompts["secret"], pb.PREFER_CLOUD))
            fake.inject(HttpError(500))
            fallback = await stub.Chat(_ask(prompts["fallback"], pb.PREFER_CLOUD))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Chat(
                    _ask(prompts["local"], pb.LOCAL_ONLY),
                    metadata=(("authorization", f"Bearer {wrong_token}"),),
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait_async(15) == 0, daemon.describe()
        sent = fake.requests

    assert cloud.route == pb.CLOUD
    assert email in cloud.text
    assert local[-1].final.route == pb.LOCAL
    assert "<EMAIL_1>" in explained.redacted_preview
    assert kept.route == pb.LOCAL
    assert fallback.route == pb.LOCAL_FALLBACK
    assert {r.headers.get("authorization") for r in sent} == {f"Bearer {api_key}"}

    events = daemon.events()
    done = [e for e in events if e.get("event") == "request.done"]
    assert len(done) == 4, "the daemon should log one summary line per answered chat"
    assert {e.get("app") for e in done} == {"scanapp", "default"}
    assert any(e.get("level") in ("warning", "error") for e in events)  # the cloud failure
    findings = scan_lines(daemon.stdout_lines() + daemon.stderr_text().splitlines(), forbidden)
    assert findings == [], "\n".join(str(f) for f in findings)
