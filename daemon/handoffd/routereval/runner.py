"""Run the local model over eval items and record the evidence every strategy needs.

Per item, three passes on the local model (greedy):

1. the plain answer (``max_tokens``), graded; the log-probability and entropy of its first
   ``RECORDED_TOKENS`` tokens are kept for the cascade sweeps;
2. the pre-generation self-assessment: one forward pass, ``score_next_token``;
3. the answer when the model is offered the handoff (marker instruction or ``handoff`` tool,
   as the router would offer it), parsed for a handoff call and graded.

Results go to a :class:`~handoffd.routereval.results.ResultCache`; items already there are
skipped, so a sweep or a second run is instant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from handoffd.domain import ChatRequest, GenerationParams, Message, ModelInfo, TokenChunk
from handoffd.errors import ContextOverflow
from handoffd.router.evidence import RouteInput
from handoffd.router.features import max_word_tokens
from handoffd.router.handoff_detect import Formats, parse_handoff_call
from handoffd.router.prescore import CANDIDATES, self_assessment_messages
from handoffd.router.router import Router
from handoffd.routereval.dataset import EvalItem, dataset_digest
from handoffd.routereval.grading import grade
from handoffd.routereval.results import LocalResult, ResultCache
from handoffd.schema.routing import ModelHandoffConfig, RoutingConfig

RECORDED_TOKENS = 32
HandoffMode = Literal["marker", "tool"]


class EvalModel(Protocol):
    """The part of ``handoffd.engine.LocalEngine`` the eval uses (a fake in tests)."""

    info: ModelInfo

    def count_prompt_tokens(
        self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int: ...

    def generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> AsyncIterator[TokenChunk]: ...

    async def score_next_token(
        self, messages: Sequence[Message], candidates: Sequence[str], *, suffix: str = ""
    ) -> dict[str, float]: ...


@dataclass(frozen=True, slots=True)
class RunSettings:
    max_tokens: int = 64
    handoff_mode: HandoffMode = "marker"

    def cache_key(self, model: ModelInfo, items: Sequence[EvalItem]) -> dict[str, Any]:
        return {
            "model": model.name,
            "model_path": model.path,
            "precision": model.precision,
            "dataset": dataset_digest(items),
            "max_tokens": self.max_tokens,
            "handoff_mode": self.handoff_mode,
        }


async def _generate(
    model: EvalModel,
    messages: Sequence[Message],
    max_tokens: int,
    tools: list[dict[str, Any]] | None,
) -> tuple[str, list[TokenChunk]]:
    chunks: list[TokenChunk] = []
    params = GenerationParams(max_tokens=max_tokens)
    async for chunk in model.generate(messages, params, tools=tools):
        chunks.append(chunk)
    return "".join(c.text for c in chunks), chunks


def _handoff_router(mode: HandoffMode) -> Router:
    config = RoutingConfig(
        strategies=("model_handoff",), model_handoff=ModelHandoffConfig(mode=mode)
    )
    return Router(config)


async def run_item(
    model: EvalModel, item: EvalItem, settings: RunSettings, router: Router | None = None
) -> LocalResult:
    """All three passes for one item."""
    router = router or _handoff_router(settings.handoff_mode)
    prompt_tokens = model.count_prompt_tokens(item.messages)
    encode = getattr(model, "encode", None)
    words = max_word_tokens(item.question, encode) if callable(encode) else None
    inp = RouteInput(
        request=ChatRequest(messages=item.messages),
        prompt_tokens=prompt_tokens,
        context_window=model.info.context_window,
    )
    try:
        answer, chunks = await _generate(model, item.messages, settings.max_tokens, None)
        pre = await model.score_next_token(self_assessment_messages(item.question), CANDIDATES)
        handoff_answer, _ = await _generate(
            model, router.local_messages(inp), settings.max_tokens, router.local_tools(inp)
        )
    except ContextOverflow:
        return LocalResult(
            id=item.id,
            answer="",
            correct=False,
            prompt_tokens=prompt_tokens,
            logprobs=(),
            entropies=(),
            completion_tokens=0,
            overflow=True,
            max_word_tokens=words,
        )
    formats: Formats = "tool" if settings.handoff_mode == "tool" else "marker"
    call = parse_handoff_call(handoff_answer, formats=formats)
    return LocalResult(
        id=item.id,
        answer=answer,
        correct=grade(item, answer),
        prompt_tokens=prompt_tokens,
        logprobs=tuple(c.logprob for c in chunks[:RECORDED_TOKENS]),
        entropies=tuple(c.entropy for c in chunks[:RECORDED_TOKENS]),
        completion_tokens=len(chunks),
        pre_score=dict(pre),
        handoff_answer=handoff_answer,
        handoff_format=call.format if call else None,
        handoff_reason=call.reason if call else "",
        handoff_answer_correct=call is None and grade(item, handoff_answer),
        max_word_tokens=words,
    )


async def run_items(
    model: EvalModel,
    items: Sequence[EvalItem],
    cache: ResultCache,
    settings: RunSettings,
    *,
    progress: Callable[[int, int, LocalResult], None] | None = None,
    save_every: int = 10,
    concurrency: int = 1,
) -> dict[str, LocalResult]:
    """Run every item not yet in ``cache``; returns the results of all ``items``.

    ``concurrency`` items are in flight at once (the engine batches their decode steps; greedy
    answers do not depend on it). The cache is written every ``save_every`` items and at the end,
    so an interrupted run resumes where it stopped.
    """
    router = _handoff_router(settings.handoff_mode)
    todo = [i for i in items if i.id not in cache.results]
    gate = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def one(item: EvalItem) -> None:
        nonlocal done
        async with gate:
            result = await run_item(model, item, settings, router)
        cache.results[item.id] = result
        done += 1
        if progress is not None:
            progress(done, len(todo), result)
        if done % save_every == 0:
            await asyncio.to_thread(cache.save, cache.snapshot())

    async with asyncio.TaskGroup() as group:
        for item in todo:
            group.create_task(one(item))
    if todo:
        await asyncio.to_thread(cache.save, cache.snapshot())
    return {i.id: cache.results[i.id] for i in items}
