"""One request inside the engine, and what comes back out of it.

An :class:`EngineRequest` is created on the event loop, handed to the worker thread, and read by
both: the event loop only ever sets ``cancelled``; everything else after submission belongs to the
worker. The worker sends results back through the request's :class:`Outbox`, which hops onto the
event loop with ``loop.call_soon_threadsafe`` (one hop per decode step for all rows of a loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from handoffd.domain import FinishReason, GenerationParams, Priority, Timing, TokenChunk, Usage
from handoffd.engine.sampling import TokenSampler
from handoffd.engine.stops import StopSequenceFilter
from handoffd.engine.text import IncrementalDecoder


class RequestKind(Enum):
    GENERATE = "generate"
    #: prefill only; log-probabilities of candidate first tokens
    SCORE = "score"


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """How a generation ended; available on the stream once it is exhausted.

    ``usage.completion_tokens`` counts every sampled token, the EOS token included (each sampled
    token is one :class:`TokenChunk`). ``timing.queue_ms`` is the wait for a slot,
    ``timing.ttft_ms`` runs from submission to the first token.
    """

    finish_reason: FinishReason
    usage: Usage
    timing: Timing


Item = TokenChunk | GenerationResult | dict[str, float] | BaseException


class Outbox:
    """Delivers worker output to the consumer's asyncio queue on its event loop."""

    __slots__ = ("loop", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Item] = asyncio.Queue()


def deliver_all(batch: Sequence[tuple[Outbox, Item]]) -> None:
    """Put every item into its queue (runs on the event loop)."""
    for outbox, item in batch:
        outbox.queue.put_nowait(item)


def post(batch: Sequence[tuple[Outbox, Item]]) -> None:
    """From the worker thread: deliver ``batch``, one loop hop per event loop involved."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Outbox, Item]]] = {}
    for outbox, item in batch:
        by_loop.setdefault(outbox.loop, []).append((outbox, item))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: its consumer is gone
            loop.call_soon_threadsafe(deliver_all, items)


@dataclass(eq=False, slots=True)
class EngineRequest:
    kind: RequestKind
    prompt_ids: list[int]
    params: GenerationParams
    outbox: Outbox
    sampler: TokenSampler
    decoder: IncrementalDecoder
    stops: StopSequenceFilter
    app: str = "default"
    priority: Priority = Priority.INTERACTIVE
    #: SCORE: token id of each candidate's first token
    candidate_ids: dict[str, int] = field(default_factory=dict)
    #: set by the consumer (event loop); the worker drops the request at its next step
    cancelled: bool = False
    submitted_at: float = field(default_factory=time.perf_counter)
    # -- owned by the worker from here on (so are sampler, decoder and stops) --
    slot: int = -1
    reserved_tokens: int = 0
    prefilled: int = 0
    generated: int = 0
    output_ids: list[int] = field(default_factory=list)
    next_token: int = 0
    admitted_at: float = 0.0
    first_token_at: float = 0.0
    finished: bool = False

    def result(self, reason: FinishReason) -> GenerationResult:
        now = time.perf_counter()
        admitted = self.admitted_at or now
        first = self.first_token_at
        decode_s = now - first if first else 0.0
        return GenerationResult(
            finish_reason=reason,
            usage=Usage(prompt_tokens=len(self.prompt_ids), completion_tokens=self.generated),
            timing=Timing(
                queue_ms=(admitted - self.submitted_at) * 1000.0,
                ttft_ms=(first - self.submitted_at) * 1000.0 if first else 0.0,
                total_ms=(now - self.submitted_at) * 1000.0,
                decode_tokens_per_s=(self.generated - 1) / decode_s
                if decode_s > 0 and self.generated > 1 else 0.0,
            ),
        )


def describe(request: EngineRequest) -> dict[str, Any]:
    """Loggable facts about a request (no text)."""
    return {
        "kind": request.kind.value,
        "app": request.app,
        "priority": request.priority.value,
        "prompt_tokens": len(request.prompt_ids),
        "max_tokens": request.params.max_tokens,
    }
