"""Fixtures shared by the whole suite: tiny real ONNX models and a real daemon on a Unix socket."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import daemon_settings

# every test's log lines are scanned for tokens, keys and declared secrets (tests/log_scan.py)
pytest_plugins = ["tests.log_scan"]


@pytest.fixture(scope="session")
def tiny_genai_model() -> Path:
    """A tiny random Llama built by the onnxruntime-genai builder (cached across runs)."""
    from handoffd.modelbuild.tiny import build_tiny_model

    return build_tiny_model("genai")


@pytest.fixture(scope="session")
def tiny_optimum_model() -> Path:
    """A tiny random Llama exported by Optimum (cached across runs)."""
    from handoffd.modelbuild.tiny import build_tiny_model

    return build_tiny_model("optimum")


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The daemon's embedded default model (SmolLM2-135M-Instruct int8), built on first use
    (a few minutes, once per machine) in the same folder ``make run`` uses."""
    from handoffd.modelbuild.default_model import build_default_model, is_built
    from handoffd.settings import default_model_dir

    folder = default_model_dir()
    if not is_built(folder):
        build_default_model(folder)
    return folder


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temp dir: Unix socket paths must stay under ~100 bytes."""
    with tempfile.TemporaryDirectory(prefix="hfd-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
async def daemon(tiny_genai_model: Path, short_tmp: Path) -> AsyncIterator[object]:
    """A real daemon serving the tiny genai model on a temp Unix socket, model loaded."""
    from handoffd.server import Daemon

    d = await Daemon.start(daemon_settings(tiny_genai_model, short_tmp))
    try:
        await d.load()
        yield d
    finally:
        await d.stop()


@pytest.fixture(autouse=True)
def _isolated_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's config, talk to their daemon or touch their state:
    the state directory (ledger, keys, budgets, tokens) is a fresh temp dir per test."""
    monkeypatch.delenv("HANDOFFD_CONFIG", raising=False)
    monkeypatch.delenv("HANDOFFD_SOCKET", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
