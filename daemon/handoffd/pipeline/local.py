"""Answer a request with the on-device model, streaming text and measuring timing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from handoffd.domain import (
    Decision,
    FinishReason,
    GenerationParams,
    Message,
    ModelInfo,
    Priority,
    TokenChunk,
    Usage,
)


class LocalModel(Protocol):
    """What the pipeline needs from the local engine (``handoffd.engine.LocalEngine``)."""

    info: ModelInfo

    def encode(self, text: str) -> list[int]: ...

    def count_prompt_tokens(
        self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int: ...

    def generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        priority: Priority = Priority.INTERACTIVE,
        app: str = "default",
    ) -> AsyncIterator[TokenChunk]: ...

    async def score_next_token(
        self, messages: Sequence[Message], candidates: Sequence[str], *, suffix: str = "",
        app: str = "default",
    ) -> dict[str, float]: ...


@dataclass
class LocalRun:
    """The evidence of one local generation, filled in as it streams.

    ``chunks`` are what the model generated; ``text`` is what was sent to the client (the
    answer gate may hold back or drop text, e.g. a handoff call).
    """

    started: float = field(default_factory=time.perf_counter)
    chunks: list[TokenChunk] = field(default_factory=list)
    sent_parts: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    first_sent_at: float | None = None
    finished_at: float | None = None
    finish_reason: FinishReason = FinishReason.STOP
    prompt_tokens: int = 0
    queue_ms: float = 0.0
    #: the answer gate's verdict when it kept the answer local (confident or flagged)
    gate_decision: Decision | None = None

    @property
    def text(self) -> str:
        return "".join(self.sent_parts)

    def sent(self, text: str) -> None:
        if self.first_sent_at is None:
            self.first_sent_at = time.perf_counter()
        self.sent_parts.append(text)

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=len(self.chunks))

    def decode_tokens_per_s(self) -> float:
        if self.first_token_at is None or self.finished_at is None or len(self.chunks) < 2:
            return 0.0
        elapsed = self.finished_at - self.first_token_at
        return (len(self.chunks) - 1) / elapsed if elapsed > 0 else 0.0


async def stream_local(
    model: LocalModel,
    messages: Sequence[Message],
    params: GenerationParams,
    run: LocalRun,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    priority: Priority,
    app: str,
) -> AsyncIterator[TokenChunk]:
    """Generate locally, recording every chunk in ``run``; cancellation propagates to the engine."""
    generation = model.generate(messages, params, tools=tools, priority=priority, app=app)
    try:
        async for chunk in generation:
            now = time.perf_counter()
            if run.first_token_at is None:
                run.first_token_at = now
            run.chunks.append(chunk)
            yield chunk
        result = getattr(generation, "result", None)
        if result is not None:
            run.finish_reason = result.finish_reason
            run.queue_ms = result.timing.queue_ms
        else:
            run.finish_reason = _guess_finish(run, params)
    finally:
        run.finished_at = time.perf_counter()
        aclose = getattr(generation, "aclose", None)
        if aclose is not None:
            await aclose()


def _guess_finish(run: LocalRun, params: GenerationParams) -> FinishReason:
    return FinishReason.LENGTH if len(run.chunks) >= params.max_tokens else FinishReason.STOP
