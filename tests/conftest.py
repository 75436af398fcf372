"""Fixtures shared by the whole suite: tiny real ONNX models and a real daemon on a Unix socket."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import daemon_settings


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


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temp dir: Unix socket paths must stay under ~100 bytes."""
    with tempfile.TemporaryDirectory(prefix="hfd-", dir="/tmp") as d:  # noqa: S108
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
def _no_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's own config or talk to their daemon."""
    monkeypatch.delenv("HANDOFFD_CONFIG", raising=False)
    monkeypatch.delenv("HANDOFFD_SOCKET", raising=False)
    os.environ.setdefault("HANDOFFD_TESTING", "1")
