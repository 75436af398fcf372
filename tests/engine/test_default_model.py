"""The real default model (SmolLM2-135M-Instruct, genai int8): answers, parity, batching."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from handoffd.domain import GenerationParams

from tests.engine.enginekit import collect, loaded, user

pytestmark = pytest.mark.default_model

QUESTIONS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain photosynthesis briefly.",
    "Who wrote Hamlet?",
)


@pytest.fixture(scope="module")
def default_model() -> Path:
    """The daemon's default model folder, built on first use (minutes)."""
    from handoffd.modelbuild.default_model import build_default_model, is_built
    from handoffd.settings import default_model_dir

    folder = default_model_dir()
    if not is_built(folder):
        build_default_model(folder)
    return folder


async def test_golden_answer(default_model: Path) -> None:
    """Greedy answer to the capital of France names Paris, loaded with manifest checks on."""
    async with loaded(default_model, verify=True) as engine:
        assert engine.info.name == "smollm2-135m-instruct"
        assert engine.info.precision == "int8"
        assert engine.info.layout == "genai"
        answer = await collect(engine, QUESTIONS[0], GenerationParams(max_tokens=32))
        assert "Paris" in answer.text


async def test_greedy_ids_equal_genai_generator(default_model: Path) -> None:
    """32 greedy tokens equal onnxruntime-genai's own generator on the same folder."""
    from handoffd.modelbuild.tiny import reference_generate

    async with loaded(default_model) as engine:
        for question in QUESTIONS[:2]:
            ids = engine.encode(engine.render_prompt(user(question)))
            reference = await asyncio.to_thread(reference_generate, "genai", default_model, ids, 32)
            got = await collect(engine, question, GenerationParams(max_tokens=32))
            assert got.ids == reference[: len(got.ids)], question


async def test_batched_equals_solo_on_int8(default_model: Path) -> None:
    """Four concurrent streams (batched MatMulNBits, M=4) give the solo greedy ids."""
    async with loaded(default_model, max_batch_size=1) as solo:
        expected = [(await collect(solo, q, GenerationParams(max_tokens=24))).ids
                    for q in QUESTIONS]
    async with loaded(default_model) as batched:
        got = await asyncio.gather(
            *(collect(batched, q, GenerationParams(max_tokens=24)) for q in QUESTIONS)
        )
    assert [g.ids for g in got] == expected


async def test_prefix_cache_reuse_keeps_the_answer(default_model: Path) -> None:
    """The same question twice: the second reuses the first's KV and answers token for token
    the same (a 1-row final prefill flipped the near-tie first token to French)."""
    async with loaded(default_model) as engine:
        first = await collect(engine, QUESTIONS[0], GenerationParams(max_tokens=16))
        second = await collect(engine, QUESTIONS[0], GenerationParams(max_tokens=16))
        assert engine.stats.prompt_tokens_reused_total > 0
        assert second.ids == first.ids
        assert [c.logprob for c in second.chunks] == [c.logprob for c in first.chunks]
