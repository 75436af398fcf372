"""Fail closed: a detector that raises or a scan that overruns means nothing is sent."""

from __future__ import annotations

import time

import pytest
from handoffd.errors import PolicyDenied
from handoffd.privacy import (
    FAIL_CLOSED_RULE,
    TIMEOUT_RULE,
    Finding,
    PiiScanner,
    PrivacyConfig,
    PrivacyGuard,
    scan_or_fail_closed,
)
from handoffd.privacy.detectors import TextIndex
from structlog.testing import capture_logs

SECRET_TEXT = "my card is 4111 1111 1111 1111 and mail jane@example.com"


class ExplodingDetector:
    """A plug-in detector with a bug whose message quotes the text it was given."""

    name = "exploding"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        raise ValueError(f"cannot parse {text!r}")


class SlowDetector:
    """A plug-in detector that takes 20 ms (a hung regex stand-in)."""

    name = "slow"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        time.sleep(0.02)
        return []


def test_detector_exception_fails_closed_without_logging_values() -> None:
    """A raising detector becomes PolicyDenied(privacy.fail_closed); the log names the error
    class only, never the text or the exception message."""
    guard = PrivacyGuard(PrivacyConfig(), extra_detectors=[ExplodingDetector()])
    with capture_logs() as logs, pytest.raises(PolicyDenied) as err:
        guard.protect(["hello", SECRET_TEXT])
    assert err.value.rule_ids == (FAIL_CLOSED_RULE,)
    assert "4111" not in err.value.message
    assert [e["event"] for e in logs] == ["privacy.scan_failed"]
    assert logs[0]["error"] == "ValueError"
    assert "4111" not in repr(logs)
    assert "jane" not in repr(logs)


def test_scan_past_deadline_fails_closed() -> None:
    """A scan that runs past detector_timeout_ms becomes PolicyDenied(privacy.timeout)."""
    config = PrivacyConfig(detector_timeout_ms=1.0)
    guard = PrivacyGuard(config, extra_detectors=[SlowDetector()])
    with capture_logs() as logs, pytest.raises(PolicyDenied) as err:
        guard.protect([SECRET_TEXT])
    assert err.value.rule_ids == (TIMEOUT_RULE,)
    assert logs[0]["event"] == "privacy.scan_timeout"
    assert logs[0]["detector"] == "slow"


def test_scan_or_fail_closed_returns_findings_per_text() -> None:
    """On success the guard function returns one finding list per text, in order."""
    scanner = PiiScanner(PrivacyConfig())
    per_text = scan_or_fail_closed(scanner, ["nothing", SECRET_TEXT])
    assert per_text[0] == []
    assert [f.entity_type for f in per_text[1]] == ["CREDIT_CARD", "EMAIL"]


def test_guard_exposes_on_block() -> None:
    """The guard tells the pipeline what a block means for this policy."""
    assert PrivacyGuard(PrivacyConfig(on_block="deny")).on_block == "deny"
