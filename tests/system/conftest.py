"""Fixtures for whole-daemon system tests: real ``handoffd`` subprocesses on short temp sockets.

Every daemon a test starts through :func:`fleet` is killed when the test ends (pass or fail), and
its output is scanned for the strings the test declared secret (``fleet.forbid(...)``) plus the
built-in secret patterns of :mod:`tests.log_scan`: a finding fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.daemonproc import DaemonFleet


@pytest.fixture
def fleet(tiny_genai_model: Path, short_tmp: Path) -> Iterator[DaemonFleet]:
    """Daemons for this test, in a short temp dir (socket ``<dir>/h.sock``); never left behind."""
    daemons = DaemonFleet(short_tmp, tiny_genai_model)
    try:
        yield daemons
    finally:
        findings = daemons.close()
    if findings:
        listed = "\n".join(f"  {f}" for f in findings[:20])
        pytest.fail(f"a daemon logged secrets or prompt text:\n{listed}", pytrace=False)
