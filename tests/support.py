"""Helpers shared by tests (importable as ``tests.support``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from handoffd.settings import ModelSettings, ServerSettings, Settings


def daemon_settings(model_dir: Path, socket_dir: Path, **server: Any) -> Settings:
    """Settings for a test daemon: the given model on CPU, a socket in ``socket_dir``."""
    return Settings(
        model=ModelSettings(path=model_dir, providers=("CPUExecutionProvider",)),
        server=ServerSettings(socket=socket_dir / "handoffd.sock", **server),
    )
