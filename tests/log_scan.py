"""Log hygiene for the whole suite: no secret, token or prompt text may reach a log line.

Two layers:

- plain functions, usable anywhere: :func:`scan_lines` (text lines: a daemon's stdout, a
  journald export) and :func:`scan_events` (structlog event dicts, e.g. from ``capture_logs``)
  return the findings for a list of forbidden strings plus the built-in secret patterns
  (handoffd tokens, OpenAI-style keys, bearer headers with a real token);
- a pytest plugin: an autouse fixture that records, during every test, what structlog renders
  (a processor inserted just before the renderer, i.e. after the redaction of secret keys) and
  every stdlib log record, and fails the test if any of it contains a forbidden string. Tests
  declare their own secrets and prompt texts with :func:`forbid_in_logs`.

Hook it into the whole suite with one line in ``tests/conftest.py``::

    pytest_plugins = ["tests.log_scan"]

A test that must log something that looks like a secret (e.g. it tests the scanner itself) opts
out with ``@pytest.mark.log_secrets_ok``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

#: patterns that are secrets wherever they appear
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "handoffd token": re.compile(r"hfd_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
    "OpenAI-style API key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"),
    "bearer credential": re.compile(r"(?i)\bbearer\s+(?!hfd_\.\.\.)[A-Za-z0-9._~+/-]{20,}=*"),
}

#: shortest forbidden literal: shorter strings (e.g. "hi") would match everywhere
MIN_FORBIDDEN_CHARS = 8

_registered: list[str] = []


def forbid_in_logs(*texts: str) -> None:
    """Declare strings (secrets, prompt or answer texts) the current test must never log."""
    for text in texts:
        if len(text) < MIN_FORBIDDEN_CHARS:
            raise ValueError(
                f"forbidden log text must have at least {MIN_FORBIDDEN_CHARS} characters, "
                f"got {len(text)}: use a more distinctive string"
            )
        _registered.append(text)


@dataclass(frozen=True)
class Finding:
    """One forbidden string in one log line. ``excerpt`` masks the secret itself."""

    line: int
    what: str
    excerpt: str

    def __str__(self) -> str:
        return f"log line {self.line}: {self.what}: {self.excerpt}"


def _mask(line: str, start: int, end: int) -> str:
    lo, hi = max(0, start - 40), min(len(line), end + 40)
    shown = line[start : min(end, start + 4)]
    return f"{line[lo:start]}{shown}[...{end - start} chars]{line[end:hi]}"


def scan_lines(
    lines: Iterable[str], forbidden: Iterable[str] = (), *, patterns: bool = True
) -> list[Finding]:
    """Findings of forbidden literals and (unless ``patterns=False``) secret patterns."""
    literals = [f for f in forbidden if f]
    findings: list[Finding] = []
    for number, line in enumerate(lines, start=1):
        for text in literals:
            at = line.find(text)
            if at >= 0:
                findings.append(Finding(number, "forbidden text", _mask(line, at, at + len(text))))
        if patterns:
            for what, pattern in SECRET_PATTERNS.items():
                for match in pattern.finditer(line):
                    findings.append(Finding(number, what, _mask(line, *match.span())))
    return findings


def _flatten(value: Any) -> str:
    if isinstance(value, Mapping):
        return " ".join(f"{k}={_flatten(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(_flatten(v) for v in value)
    return str(value)


def scan_events(
    events: Iterable[Mapping[str, Any]], forbidden: Iterable[str] = (), *, patterns: bool = True
) -> list[Finding]:
    """:func:`scan_lines` over structlog event dicts (every key and value, nested)."""
    return scan_lines((_flatten(e) for e in events), forbidden, patterns=patterns)


class LogRecorder(logging.Handler):
    """Records every stdlib log line and every structlog event while installed."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._saved_processors: list[Any] | None = None
        self._saved_level: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not our business here
            message = str(record.msg)
        self.lines.append(f"{record.name}: {message}")

    def _structlog_processor(self, _: Any, __: str, event_dict: Any) -> Any:
        self.lines.append(_flatten(event_dict))
        return event_dict

    def install(self) -> None:
        root = logging.getLogger()
        root.addHandler(self)
        self._saved_level = root.level
        if root.level > logging.DEBUG:
            root.setLevel(logging.DEBUG)
        processors = list(structlog.get_config()["processors"])
        self._saved_processors = processors
        # just before the renderer: after every redaction processor, like the real output
        structlog.configure(
            processors=[*processors[:-1], self._structlog_processor, *processors[-1:]]
        )

    def uninstall(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        if self._saved_level is not None:
            root.setLevel(self._saved_level)
        if self._saved_processors is not None:
            current = structlog.get_config()["processors"]
            if self._structlog_processor in current:  # the test did not reconfigure structlog
                structlog.configure(processors=self._saved_processors)


@pytest.fixture(autouse=True)
def _log_hygiene(request: pytest.FixtureRequest) -> Iterator[LogRecorder]:
    """Fail the test if anything it logged contains a secret or a forbidden text."""
    _registered.clear()
    recorder = LogRecorder()
    recorder.install()
    try:
        yield recorder
    finally:
        recorder.uninstall()
    findings = scan_lines(recorder.lines, _registered)
    _registered.clear()
    if findings and request.node.get_closest_marker("log_secrets_ok") is None:
        listed = "\n".join(f"  {f}" for f in findings[:20])
        pytest.fail(f"secrets or forbidden text reached the logs:\n{listed}", pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "log_secrets_ok: this test may log secret-looking strings (log_scan)"
    )
