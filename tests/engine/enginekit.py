"""Helpers for the engine tests: loading engines on the tiny models, collecting streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handoffd.domain import GenerationParams, Message, Priority, Role, TokenChunk
from handoffd.engine import EngineLimits, GenerationResult, LocalEngine
from handoffd.settings import ModelSettings

PROMPTS = (
    "Hello, what is the capital of France?",
    "the quick brown fox jumps over the lazy dog " * 6,
    "a",
)


def user(text: str) -> list[Message]:
    return [Message(Role.USER, text)]


@asynccontextmanager
async def loaded(
    path: Path, *, verify: bool = False, **limits: Any
) -> AsyncIterator[LocalEngine]:
    """An engine on ``path`` (CPU), closed afterwards; ``verify`` checks the manifest's hashes."""
    engine = await asyncio.to_thread(
        LocalEngine.load,
        ModelSettings(path=path, providers=("CPUExecutionProvider",), verify_manifest=verify),
        EngineLimits(**limits),
    )
    try:
        yield engine
    finally:
        await engine.aclose()


@dataclass
class Collected:
    chunks: list[TokenChunk] = field(default_factory=list)
    result: GenerationResult | None = None

    @property
    def ids(self) -> list[int]:
        return [c.token_id for c in self.chunks]

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)


async def collect(
    engine: LocalEngine,
    text: str,
    params: GenerationParams | None = None,
    *,
    app: str = "default",
    priority: Priority = Priority.INTERACTIVE,
    on_first: list[str] | None = None,
) -> Collected:
    """Run one generation to its end; append ``app`` to ``on_first`` at its first chunk."""
    out = Collected()
    stream = engine.generate(user(text), params or GenerationParams(max_tokens=40), app=app,
                             priority=priority)
    async for chunk in stream:
        if not out.chunks and on_first is not None:
            on_first.append(app)
        out.chunks.append(chunk)
    out.result = stream.result
    return out


async def wait_until(predicate: Any, *, attempts: int = 2000) -> None:
    """Yield to the loop until ``predicate()`` holds (bounded; fails the test otherwise)."""
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


async def wait_queued(engine: LocalEngine, count: int) -> None:
    """Wait until ``count`` requests wait in the engine's queue."""
    await wait_until(lambda: engine.stats.queued == count)
