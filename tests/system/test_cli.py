"""``handoffctl`` as a user runs it (the console script, in a subprocess) against one real daemon
subprocess with a cloud target (a fake cloud that demands its API key) and the default policy."""

from __future__ import annotations

import json
import secrets
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from handoffd.auth import TokenStore
from handoffd.auth.tokens import default_token_file
from handoffd.domain import CallerRole

from tests.fakecloud import ECHO, FakeCloud
from tests.system.daemonproc import POLICY, DaemonFleet, cloud_target, run_ctl

MODEL_NAME = "tiny-random-llama-genai"
KEY_ENV = "HFD_SYSTEST_CLOUD_KEY"
CLOUD_PROMPT = "Explain the difference between TCP and UDP for the handoff test."
LOCAL_PROMPT = "Say something locally for the streaming test."
EMAIL = "anna.schmidt@example.org"
EXPLAIN_PROMPT = f"Draft a reply to {EMAIL} about the overdue invoice."


@dataclass
class CliDaemon:
    config: Path
    state: Path
    socket: Path
    fake: FakeCloud
    token: str
    api_key: str

    def ctl(self, *args: str) -> Any:
        """Run handoffctl against this daemon; the completed process."""
        return run_ctl(
            *args, env={"STATE_DIRECTORY": str(self.state), "HANDOFFD_SOCKET": str(self.socket)}
        )

    def ctl_json(self, *args: str) -> Any:
        """Run handoffctl, expect exit 0 and ONE JSON document on stdout; return it."""
        done = self.ctl(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def cli_daemon(tiny_genai_model: Path) -> Iterator[CliDaemon]:
    """One daemon for the module (each handoffctl run costs seconds of imports)."""
    api_key = "sk-systest-" + secrets.token_hex(16)
    with (
        tempfile.TemporaryDirectory(prefix="hfd-cli-", dir="/tmp") as tmp,
        FakeCloud.start_in_thread(reply=ECHO, api_key=api_key) as fake,
    ):
        workdir = Path(tmp)
        state = workdir / "state"
        state.mkdir()
        token = TokenStore(default_token_file(state)).add("cliapp", CallerRole.APP)
        fleet = DaemonFleet(workdir, tiny_genai_model)
        fleet.forbid(api_key, token, CLOUD_PROMPT, LOCAL_PROMPT, EMAIL, EXPLAIN_PROMPT)
        config = fleet.config(
            cloud=cloud_target(fake.url, api_key_env=KEY_ENV), policy_files=[POLICY]
        )
        try:
            daemon = fleet.spawn(config, env={"STATE_DIRECTORY": str(state), KEY_ENV: api_key})
            daemon.wait_ready()
            yield CliDaemon(config, state, daemon.socket, fake, token, api_key)
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(20) == 0, daemon.describe()
        finally:
            findings = fleet.close()
        assert not findings, "\n".join(str(f) for f in findings)


@pytest.fixture(scope="module")
def cloud_answer(cli_daemon: CliDaemon) -> dict[str, Any]:
    """``handoffctl chat --json --prefer cloud`` once: what it printed."""
    result: dict[str, Any] = cli_daemon.ctl_json(
        "chat", "--json", "--prefer", "cloud", "--max-tokens", "32", CLOUD_PROMPT
    )
    return result


def test_chat_json_prints_one_object_with_the_whole_result(
    cli_daemon: CliDaemon, cloud_answer: dict[str, Any]
) -> None:
    """``chat --json`` prints ONE JSON object: text, route, reasons, usage, timing, cost,
    ledger id and model of a cloud handoff (the fake cloud echoes the prompt it got)."""
    a = cloud_answer
    assert a["route"] == "CLOUD"
    assert a["text"] == CLOUD_PROMPT
    assert a["model"] == "fake-model"
    assert a["reasons"]
    assert all(set(r) == {"rule_id", "message"} for r in a["reasons"])
    assert a["usage"]["prompt_tokens"] > 0
    assert a["usage"]["completion_tokens"] > 0
    assert a["timing"]["ttft_ms"] > 0
    assert a["timing"]["decode_tokens_per_s"] >= 0
    assert a["cost_usd"] > 0
    assert a["ledger_id"]
    sent = cli_daemon.fake.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {cli_daemon.api_key}"


def test_chat_streams_text_and_prints_the_summary_on_stderr(cli_daemon: CliDaemon) -> None:
    """``chat`` without --json (with an app token) streams the answer on stdout and prints
    the route, tokens and decode speed on stderr."""
    done = cli_daemon.ctl(
        "chat",
        "--prefer",
        "local",
        "--max-tokens",
        "12",
        "--token",
        cli_daemon.token,
        LOCAL_PROMPT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n")
    assert len(done.stdout) > 1
    summary = " ".join(done.stderr.split())
    assert f"route=LOCAL model={MODEL_NAME}" in summary
    assert "tokens=" in summary
    assert "+12 " in summary
    assert "tok/s" in summary
    assert "why: preference.local_only" in summary


def test_status_and_models_json(cli_daemon: CliDaemon) -> None:
    """``status --json`` says ready with the model and policy; ``models --json`` lists the
    model with its layout and context window."""
    status = cli_daemon.ctl_json("status", "--json")
    assert status["ready"] is True
    assert status["model"] == MODEL_NAME
    assert status["execution_provider"] == "CPUExecutionProvider"
    assert len(status["policy_hash"]) == 64
    models = cli_daemon.ctl_json("models", "--json")
    assert [m["name"] for m in models] == [MODEL_NAME]
    assert models[0]["layout"] == "genai"
    assert models[0]["context_window"] == 512


def test_explain_json_shows_the_redacted_preview_and_sends_nothing(
    cli_daemon: CliDaemon,
) -> None:
    """``explain --json --prefer cloud`` on a prompt with an e-mail address shows the route,
    the entity counts and the preview with a placeholder instead of the address, and sends
    nothing to the cloud."""
    before = len(cli_daemon.fake.requests)
    result = cli_daemon.ctl_json("explain", "--json", "--prefer", "cloud", EXPLAIN_PROMPT)
    assert result["decision"]["route"] == "CLOUD"
    assert result["decision"]["cloud_target"] == "cloud"
    assert result["entities"] == {"EMAIL": 1}
    assert "<EMAIL_1>" in result["redacted_preview"]
    assert EMAIL not in result["redacted_preview"]
    assert "privacy.email" in {r["rule_id"] for r in result["decision"]["reasons"]}
    assert len(cli_daemon.fake.requests) == before


def test_audit_list_json_shows_the_handoff(
    cli_daemon: CliDaemon, cloud_answer: dict[str, Any]
) -> None:
    """``audit list --json`` (read-only, while the daemon runs) shows the handoff's intent
    and its ``sent`` outcome, keyed by the ledger id the chat returned."""
    entries = cli_daemon.ctl_json("audit", "list", "--json", "--limit", "0")
    intent = next(e for e in entries if e["id"] == cloud_answer["ledger_id"])
    assert intent["kind"] == "intent"
    assert intent["cloud_target"] == "cloud"
    outcome = next(e for e in entries if e["intent_id"] == cloud_answer["ledger_id"])
    assert outcome["outcome"] == "sent"
    assert outcome["settled_cost_usd"] == pytest.approx(cloud_answer["cost_usd"])


def test_budget_json_shows_the_spend(cli_daemon: CliDaemon, cloud_answer: dict[str, Any]) -> None:
    """``budget --json`` shows the default app's settled spend (at least the handoff's cost)
    against the default policy's budgets, and no reservation left open."""
    snapshot = cli_daemon.ctl_json("budget", "--json", "--config", str(cli_daemon.config))
    spend = {s["app"]: s for s in snapshot["spend"]}
    assert spend["default"]["day_usd"] >= cloud_answer["cost_usd"] > 0
    budgets = {b["rule_id"]: b for b in snapshot["budgets"]}
    assert budgets["budget.all.day"]["settled_usd"] >= cloud_answer["cost_usd"]
    assert budgets["budget.all.day"]["limit_usd"] == 2.0
    assert snapshot["open_reservations"] == []


def test_status_without_a_daemon_says_how_to_start_one(short_tmp: Path) -> None:
    """``status`` with nothing listening exits 1 with one message that says how to start the
    daemon (or where to point HANDOFFD_SOCKET), and no traceback."""
    done = run_ctl("status", env={"HANDOFFD_SOCKET": str(short_tmp / "nobody.sock")})
    assert done.returncode == 1
    assert "cannot reach handoffd" in done.stderr
    assert "start it with" in done.stderr
    assert "HANDOFFD_SOCKET" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
