"""Concurrency: continuous batching equals solo, fair and prioritised queueing, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from handoffd.domain import FinishReason, GenerationParams, Priority
from handoffd.errors import ResourceExhausted, Unavailable

from tests.engine.enginekit import collect, loaded, user, wait_queued, wait_until

QUESTIONS = [f"question number {i} " * (1 + 3 * i) for i in range(8)]


def _lengths(i: int) -> GenerationParams:
    return GenerationParams(max_tokens=32 + 5 * i)


@pytest.mark.parametrize("layout", ["genai", "optimum"])
async def test_eight_concurrent_streams_equal_solo_greedy(
    layout: str, tiny_genai_model: Path, tiny_optimum_model: Path
) -> None:
    """8 concurrent generations of different prompt and output lengths, batched, produce
    exactly the ids each produces alone (rows join and leave the batch at different steps)."""
    model_dir = tiny_genai_model if layout == "genai" else tiny_optimum_model
    async with loaded(model_dir, max_batch_size=1) as solo:
        expected = [(await collect(solo, q, _lengths(i))).ids for i, q in enumerate(QUESTIONS)]
    async with loaded(model_dir, prefill_chunk_tokens=16) as batched:
        got = await asyncio.gather(
            *(collect(batched, q, _lengths(i)) for i, q in enumerate(QUESTIONS))
        )
        assert [g.ids for g in got] == expected
        assert batched.stats.active == 0


async def test_newcomer_joins_a_running_batch(tiny_genai_model: Path) -> None:
    """A request started while another is decoding joins it and both stay correct."""
    async with loaded(tiny_genai_model, max_batch_size=1) as solo:
        long_alone = (await collect(solo, QUESTIONS[0], GenerationParams(max_tokens=120))).ids
        short_alone = (await collect(solo, QUESTIONS[3], _lengths(3))).ids
    async with loaded(tiny_genai_model) as engine:
        long_task = asyncio.create_task(
            collect(engine, QUESTIONS[0], GenerationParams(max_tokens=120))
        )
        await wait_until(lambda: engine.stats.tokens_generated_total >= 10)
        short = await collect(engine, QUESTIONS[3], _lengths(3))
        assert short.ids == short_alone
        assert (await long_task).ids == long_alone


async def test_apps_take_turns_when_the_engine_is_full(tiny_genai_model: Path) -> None:
    """With one slot busy, queued requests are served round-robin by app, each app in order."""
    async with loaded(tiny_genai_model, max_batch_size=1) as engine:
        blocker = engine.generate(user("block"), GenerationParams(max_tokens=400))
        await anext(blocker)
        order: list[str] = []
        plan = ["a", "a", "a", "b", "c"]
        tasks = []
        for app in plan:
            tasks.append(asyncio.create_task(collect(
                engine, f"from {app}", GenerationParams(max_tokens=4), app=app, on_first=order
            )))
            await wait_queued(engine, len(tasks))
        await blocker.aclose()
        results = await asyncio.gather(*tasks)
        assert order == ["a", "b", "c", "a", "a"]
        assert all(r.result and r.result.timing.queue_ms > 0 for r in results)


async def test_interactive_requests_go_before_background(tiny_genai_model: Path) -> None:
    """A later INTERACTIVE request is admitted before earlier BACKGROUND ones."""
    async with loaded(tiny_genai_model, max_batch_size=1) as engine:
        blocker = engine.generate(user("block"), GenerationParams(max_tokens=400))
        await anext(blocker)
        order: list[str] = []
        tasks = []
        for app, priority in [("bg1", Priority.BACKGROUND), ("bg2", Priority.BACKGROUND),
                              ("fg", Priority.INTERACTIVE)]:
            tasks.append(asyncio.create_task(collect(
                engine, app, GenerationParams(max_tokens=4), app=app, priority=priority,
                on_first=order,
            )))
            await wait_queued(engine, len(tasks))
        await blocker.aclose()
        await asyncio.gather(*tasks)
        assert order == ["fg", "bg1", "bg2"]


async def test_full_queue_refuses_with_resource_exhausted(tiny_genai_model: Path) -> None:
    """Past max_queued waiting requests, a new one is refused with ResourceExhausted."""
    async with loaded(tiny_genai_model, max_batch_size=1, max_queued=1) as engine:
        blocker = engine.generate(user("block"), GenerationParams(max_tokens=400))
        await anext(blocker)
        waiting = asyncio.create_task(collect(engine, "wait", GenerationParams(max_tokens=2)))
        await wait_until(lambda: engine.stats.queued == 1)
        with pytest.raises(ResourceExhausted):
            await anext(engine.generate(user("one too many"), GenerationParams(max_tokens=2)))
        await blocker.aclose()
        assert len((await waiting).chunks) == 2


async def test_aclose_frees_the_engine_for_the_next_request(tiny_genai_model: Path) -> None:
    """Closing a stream mid-generation frees its slot: the next request runs and is correct."""
    async with loaded(tiny_genai_model, max_batch_size=1) as engine:
        expected = (await collect(engine, QUESTIONS[1])).ids
        stream = engine.generate(user("long one"), GenerationParams(max_tokens=400))
        for _ in range(3):
            await anext(stream)
        await stream.aclose()
        assert stream.finish_reason is FinishReason.CANCELLED
        await wait_until(lambda: engine.stats.active == 0)
        assert (await collect(engine, QUESTIONS[1])).ids == expected
        assert engine.stats.tokens_generated_total < 400 + 2 * len(expected)


async def test_cancelling_the_consumer_task_frees_the_engine(tiny_optimum_model: Path) -> None:
    """Cancelling the task that consumes a stream aborts the generation."""
    async with loaded(tiny_optimum_model) as engine:
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in engine.generate(user("x"), GenerationParams(max_tokens=400)):
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: engine.stats.active == 0)
        assert engine.stats.tokens_generated_total < 400
        after = await collect(engine, "next", GenerationParams(max_tokens=5))
        assert len(after.chunks) == 5


async def test_abandoned_stream_is_dropped_by_the_worker(tiny_genai_model: Path) -> None:
    """A stream dropped without aclose (garbage-collected) stops generating."""
    async with loaded(tiny_genai_model) as engine:
        stream = engine.generate(user("x"), GenerationParams(max_tokens=400))
        await anext(stream)
        del stream
        await wait_until(lambda: engine.stats.active == 0)
        assert engine.stats.tokens_generated_total < 400


async def test_kv_budget_serialises_requests_but_all_finish(tiny_genai_model: Path) -> None:
    """With KV room for about one request at a time, concurrent requests wait and all finish
    with their solo output."""
    async with loaded(tiny_genai_model, max_batch_size=1) as solo:
        expected = [(await collect(solo, q, _lengths(i))).ids for i, q in enumerate(QUESTIONS[:3])]
    async with loaded(tiny_genai_model, kv_cache_mb=1) as engine:
        got = await asyncio.gather(
            *(collect(engine, q, _lengths(i)) for i, q in enumerate(QUESTIONS[:3]))
        )
        assert [g.ids for g in got] == expected


async def test_engine_shutdown_fails_running_streams_with_unavailable(
    tiny_genai_model: Path,
) -> None:
    """aclose() on the engine ends running and queued streams with Unavailable."""
    async with loaded(tiny_genai_model, max_batch_size=1) as engine:
        running = engine.generate(user("x"), GenerationParams(max_tokens=400))
        await anext(running)
        queued = asyncio.create_task(collect(engine, "y", GenerationParams(max_tokens=4)))
        await wait_until(lambda: engine.stats.queued == 1)
        await engine.aclose()
        with pytest.raises(Unavailable):
            async for _ in running:
                pass
        with pytest.raises(Unavailable):
            await queued
        with pytest.raises(Unavailable):
            await anext(engine.generate(user("z"), GenerationParams(max_tokens=4)))


class _Recorder:
    """Wraps the worker's runner: records prefill sizes and decode steps, and can hold the
    worker inside its next ``hold`` call ("prefill" or "decode") until the test opens ``gate``."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self.calls: list[tuple[str, int]] = []
        self.hold = ""
        self.gate = threading.Event()
        self.held = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def _wait(self, kind: str) -> None:
        if self.hold == kind:
            self.hold = ""
            self.held.set()
            self.gate.wait(10)

    def prefill(self, slot: int, token_ids: Any, start: int) -> Any:
        self._wait("prefill")
        self.calls.append(("prefill", len(token_ids)))
        return self._runner.prefill(slot, token_ids, start)

    def decode(self, slots: Any, tokens: Any) -> Any:
        self._wait("decode")
        self.calls.append(("decode", len(slots)))
        return self._runner.decode(slots, tokens)


@contextlib.asynccontextmanager
async def _recording_beside_a_stream(engine: Any, hold: str) -> AsyncIterator[_Recorder]:
    """A stream decoding in the background, then a recorder on the worker's runner that holds
    the worker in its next ``hold`` call; the stream is cancelled on the way out."""
    running = asyncio.create_task(
        collect(engine, "keep decoding", GenerationParams(max_tokens=200))
    )
    await wait_until(lambda: engine.stats.tokens_generated_total >= 3)
    recorder = _Recorder(engine._worker._runner)
    engine._worker._runner = recorder
    recorder.hold = hold
    try:
        yield recorder
    finally:
        recorder.gate.set()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_prefill_turns_stall_running_streams_by_one_chunk_at_most(
    tiny_genai_model: Path,
) -> None:
    """Newcomers arriving together: two short prompts share one prefill turn (no decode step
    between them); a long one is cut into chunks with decode steps between; no turn exceeds
    ``prefill_chunk_tokens``; all answers equal solo."""
    texts = ["short one", "short two", "a much longer prompt " * 10]
    async with loaded(tiny_genai_model, max_batch_size=1) as solo:
        expected = [(await collect(solo, t, GenerationParams(max_tokens=8))).ids for t in texts]
        sizes = [solo.count_prompt_tokens(user(t)) for t in texts]
    chunk = sizes[0] + sizes[1]
    assert sizes[2] > 2 * chunk + 1
    async with (
        loaded(tiny_genai_model, prefill_chunk_tokens=chunk, prefix_cache_mb=0) as engine,
        _recording_beside_a_stream(engine, "decode") as recorder,
    ):
        await wait_until(recorder.held.is_set)  # the worker is inside a decode step
        tasks = [asyncio.create_task(collect(engine, t, GenerationParams(max_tokens=8)))
                 for t in texts]
        await wait_queued(engine, 3)
        recorder.gate.set()
        got = await asyncio.gather(*tasks)
        assert [g.ids for g in got] == expected
        calls = recorder.calls
        # the held step, one turn for both short prompts, then the running stream and both
        # newcomers decode together
        assert calls[:4] == [("decode", 1), ("prefill", sizes[0]), ("prefill", sizes[1]),
                             ("decode", 3)]
        turns: list[int] = [0]
        for kind, count in calls:
            if kind == "decode":
                turns.append(0)
            else:
                turns[-1] += count
        assert max(turns) <= chunk + 1
        long_chunks = [c for k, c in calls[4:] if k == "prefill"]
        assert sum(long_chunks) == sizes[2]  # then the long prompt, chunk by chunk
        assert len(long_chunks) >= 3


async def test_a_newcomer_arriving_during_a_prefill_joins_the_turn(
    tiny_genai_model: Path,
) -> None:
    """A request that arrives while another newcomer is being prefilled is prefilled right
    after it, before the running streams' next decode step, when the turn has room."""
    async with (
        loaded(tiny_genai_model, prefix_cache_mb=0) as engine,
        _recording_beside_a_stream(engine, "prefill") as recorder,
    ):
        sizes = [engine.count_prompt_tokens(user(t)) for t in ("first", "second")]
        first = asyncio.create_task(collect(engine, "first", GenerationParams(max_tokens=4)))
        await wait_until(recorder.held.is_set)  # the worker is inside the first's prefill
        second = asyncio.create_task(collect(engine, "second", GenerationParams(max_tokens=4)))
        await wait_queued(engine, 1)
        recorder.gate.set()
        await asyncio.gather(first, second)
        at = recorder.calls.index(("prefill", sizes[0]))  # decode steps may come before
        assert recorder.calls[at : at + 3] == [("prefill", sizes[0]), ("prefill", sizes[1]),
                                               ("decode", 3)]
