"""The async iterator one ``LocalEngine.generate`` call returns.

``async for chunk in engine.generate(...)`` yields one :class:`TokenChunk` per sampled token. The
prompt is rendered, tokenized and checked against the context window on the first ``__anext__``
(so :class:`ContextOverflow` is raised before anything is generated), then the request is queued
for the worker. When the iterator is exhausted, ``stream.result`` (a
:class:`GenerationResult`: finish reason, usage, timing) and ``stream.finish_reason`` are set.

Leaving early frees the engine at once: ``await stream.aclose()``, a cancelled consuming task
(``CancelledError`` while waiting) or the stream being garbage-collected all mark the request
cancelled, and the worker drops it at its next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from handoffd.domain import FinishReason, TokenChunk
from handoffd.engine.request import EngineRequest, GenerationResult, Outbox
from handoffd.engine.worker import EngineWorker


class GenerationStream:
    """Chunks of one generation; ``result``/``finish_reason`` once it ends."""

    def __init__(
        self, worker: EngineWorker, prepare: Callable[[Outbox], EngineRequest], *, inline: bool
    ) -> None:
        self._worker = worker
        self._prepare = prepare
        self._inline = inline
        self._request: EngineRequest | None = None
        self._outbox: Outbox | None = None
        self._done = False
        self.result: GenerationResult | None = None
        self.finish_reason: FinishReason | None = None

    def __aiter__(self) -> GenerationStream:
        return self

    async def _start(self) -> Outbox:
        outbox = Outbox(asyncio.get_running_loop())
        if self._inline:
            request = self._prepare(outbox)
        else:
            request = await asyncio.to_thread(self._prepare, outbox)
        self._worker.submit(request)
        self._request, self._outbox = request, outbox
        return outbox

    async def __anext__(self) -> TokenChunk:
        if self._done:
            raise StopAsyncIteration
        outbox = self._outbox
        if outbox is None:
            try:
                outbox = await self._start()
            except BaseException:
                self._done = True
                raise
        try:
            item = await outbox.queue.get()
        except asyncio.CancelledError:
            self._abandon()
            raise
        if isinstance(item, TokenChunk):
            return item
        self._done = True
        if isinstance(item, GenerationResult):
            self.result = item
            self.finish_reason = item.finish_reason
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self.finish_reason = FinishReason.ERROR
            raise item
        raise TypeError(f"unexpected engine output {type(item).__name__}")

    def _abandon(self) -> None:
        if self._done:
            return
        self._done = True
        self.finish_reason = FinishReason.CANCELLED
        if self._request is not None and not self._request.finished:
            self._worker.cancel(self._request)

    async def aclose(self) -> None:
        """Stop generating now (no-op once the stream has ended)."""
        self._abandon()

    async def __aenter__(self) -> GenerationStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._abandon()

    def __del__(self) -> None:
        request: Any = getattr(self, "_request", None)
        if request is not None and not getattr(self, "_done", True):
            request.cancelled = True  # no locks here: the worker notices at its next step
