"""The log-hygiene scanner (tests/log_scan.py) finds secrets and forbidden texts in logs."""

from __future__ import annotations

import logging

import pytest
import structlog
from handoffd.auth.tokens import generate_token

from tests.log_scan import LogRecorder, forbid_in_logs, scan_events, scan_lines


def test_secret_patterns_are_found_and_masked() -> None:
    """Tokens, API keys and bearer credentials are found; the finding does not repeat them."""
    token = generate_token()
    key = "sk-proj-" + "A1b2C3d4" * 4
    lines = [
        "ok line: apps=3",
        f"auth header=Bearer {token}",
        f'{{"event": "cloud.call", "api_key": "{key}"}}',
        "authorization must be 'Bearer hfd_...'",  # the daemon's own help text: not a secret
    ]
    findings = scan_lines(lines)
    assert {(f.line, f.what) for f in findings} == {
        (2, "handoffd token"),
        (2, "bearer credential"),
        (3, "OpenAI-style API key"),
    }
    for f in findings:
        assert token not in str(f)
        assert key not in str(f)


def test_forbidden_literals_and_nested_events() -> None:
    """Registered texts are found anywhere in an event, including nested values."""
    prompt = "my diagnosis is confidential"
    events = [
        {"event": "request.done", "prompt_chars": 28},
        {"event": "oops", "extra": {"messages": [{"content": prompt}]}},
    ]
    findings = scan_events(events, forbidden=[prompt])
    assert [(f.line, f.what) for f in findings] == [(2, "forbidden text")]


def test_recorder_sees_structlog_and_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed, the recorder captures structlog events and stdlib records; uninstalled, not."""
    recorder = LogRecorder()
    recorder.install()
    try:
        structlog.get_logger("t").info("t.event", size=3, secret_hint="abc")
        logging.getLogger("grpc.t").warning("stdlib says %s", "hello")
    finally:
        recorder.uninstall()
    structlog.get_logger("t").info("after.uninstall")
    joined = "\n".join(recorder.lines)
    assert "event=t.event" in joined
    assert "grpc.t: stdlib says hello" in joined
    assert "after.uninstall" not in joined


def test_short_forbidden_strings_are_refused() -> None:
    """A forbidden text shorter than 8 characters would match everywhere: refused."""
    with pytest.raises(ValueError, match="at least 8"):
        forbid_in_logs("hi")


@pytest.mark.log_secrets_ok
def test_marked_tests_may_log_secret_looking_text() -> None:
    """The opt-out marker lets a test log a token-shaped string without failing."""
    structlog.get_logger("t").info("t.token_example", example=generate_token())
