"""Greedy ids equal the reference generators' (onnxruntime-genai's own, Optimum's generate)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from handoffd.domain import GenerationParams

from tests.engine.enginekit import PROMPTS, collect, loaded, user

NEW_TOKENS = 40


def _reference(layout: str, model_dir: Path, ids: list[int]) -> list[int]:
    from handoffd.modelbuild.tiny import reference_generate

    return list(reference_generate(layout, model_dir, ids, NEW_TOKENS))


@pytest.mark.parametrize("layout", ["genai", "optimum"])
async def test_greedy_ids_equal_reference_generator(
    layout: str, tiny_genai_model: Path, tiny_optimum_model: Path
) -> None:
    """For several prompts, 40 greedy tokens are the ids the layout's own generator makes."""
    model_dir = tiny_genai_model if layout == "genai" else tiny_optimum_model
    async with loaded(model_dir) as engine:
        assert engine.info.layout == layout
        for prompt in PROMPTS:
            ids = engine.encode(engine.render_prompt(user(prompt)))
            reference = await asyncio.to_thread(_reference, layout, model_dir, ids)
            got = await collect(engine, prompt, GenerationParams(max_tokens=NEW_TOKENS))
            eos = engine.spec.eos_token_ids
            # both stop at EOS; a reference that ignores EOS may run on past it
            assert got.ids == reference[: len(got.ids)], prompt
            assert len(got.ids) == len(reference) or got.ids[-1] in eos


@pytest.mark.parametrize("layout", ["genai", "optimum"])
async def test_chunked_prefill_gives_the_same_tokens(
    layout: str, tiny_genai_model: Path, tiny_optimum_model: Path
) -> None:
    """A prompt prefilled 7 tokens at a time generates what a one-run prefill generates."""
    model_dir = tiny_genai_model if layout == "genai" else tiny_optimum_model
    prompt = PROMPTS[1]
    async with loaded(model_dir) as whole:
        expected = (await collect(whole, prompt)).ids
    async with loaded(model_dir, prefill_chunk_tokens=7) as chunked:
        assert (await collect(chunked, prompt)).ids == expected
