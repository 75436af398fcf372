"""Where the build tooling keeps its virtualenvs, downloads and tiny models."""

from __future__ import annotations

import os
from pathlib import Path

BUILD_CACHE_ENV = "HANDOFFD_BUILD_CACHE"


def build_cache_root() -> Path:
    """``$HANDOFFD_BUILD_CACHE``, else ``$XDG_CACHE_HOME/handoffd``, else ``~/.cache/handoffd``."""
    explicit = os.environ.get(BUILD_CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "handoffd"


def cache_dir(*parts: str) -> Path:
    """A folder under the build cache, created if needed."""
    path = build_cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
