"""One generation end to end on a tiny real model: ends, limits, evidence, errors, scoring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from handoffd.domain import FinishReason, GenerationParams
from handoffd.engine import LocalEngine
from handoffd.errors import ContextOverflow, InvalidRequest, ModelError
from handoffd.settings import ModelSettings

from tests.engine.enginekit import PROMPTS, collect, loaded, user


async def test_max_tokens_ends_with_length_and_reports_usage(tiny_genai_model: Path) -> None:
    """max_tokens chunks come out, finish_reason is LENGTH, usage and timing are filled in."""
    async with loaded(tiny_genai_model) as engine:
        got = await collect(engine, PROMPTS[0], GenerationParams(max_tokens=12))
        assert len(got.chunks) == 12
        assert got.result is not None
        assert got.result.finish_reason is FinishReason.LENGTH
        assert got.result.usage.prompt_tokens == engine.count_prompt_tokens(user(PROMPTS[0]))
        assert got.result.usage.completion_tokens == 12
        assert got.result.timing.total_ms >= got.result.timing.ttft_ms > 0
        assert all(c.logprob <= 0 and c.entropy >= 0 for c in got.chunks)
        assert engine.stats.tokens_generated_total >= 12


async def test_info_describes_the_loaded_model(tiny_genai_model: Path) -> None:
    """ModelInfo names the layout, precision, context window, provider and folder."""
    async with loaded(tiny_genai_model) as engine:
        info = engine.info
        assert info.layout == "genai"
        assert info.execution_provider == "CPUExecutionProvider"
        assert info.context_window == engine.spec.context_window
        assert info.precision in ("fp32", "fp16", "int8", "int4")
        assert info.path == str(tiny_genai_model)


async def test_stop_sequence_split_across_tokens_is_never_shown(tiny_genai_model: Path) -> None:
    """Text ends right before the first occurrence of the stop string, finish STOP."""
    async with loaded(tiny_genai_model) as engine:
        free = await collect(engine, PROMPTS[0], GenerationParams(max_tokens=40))
        text = free.text
        # a stop string that straddles two tokens' text
        boundary = len(free.chunks[0].text) + len(free.chunks[1].text)
        stop = text[boundary - 1 : boundary + 2]
        assert len(stop) == 3
        cut = await collect(engine, PROMPTS[0], GenerationParams(max_tokens=40, stop=(stop,)))
        assert cut.text == text[: text.index(stop)]
        assert cut.result is not None
        assert cut.result.finish_reason is FinishReason.STOP
        assert len(cut.chunks) < len(free.chunks)


async def test_seeded_sampling_is_reproducible(tiny_optimum_model: Path) -> None:
    """The same seed gives the same tokens; another seed other tokens."""
    async with loaded(tiny_optimum_model) as engine:
        params = GenerationParams(max_tokens=32, temperature=1.0, top_p=0.95, seed=7)
        first = await collect(engine, PROMPTS[0], params)
        again = await collect(engine, PROMPTS[0], params)
        other = await collect(
            engine, PROMPTS[0], GenerationParams(max_tokens=32, temperature=1.0, seed=8)
        )
        assert first.ids == again.ids
        assert first.ids != other.ids


@pytest.mark.parametrize("layout", ["genai", "optimum"])
async def test_eos_ends_generation_without_its_text(
    layout: str, tiny_genai_model: Path, tiny_optimum_model: Path, tmp_path: Path
) -> None:
    """Declaring the 6th greedy token as EOS ends generation there, finish STOP."""
    source = tiny_genai_model if layout == "genai" else tiny_optimum_model
    async with loaded(source) as engine:
        free = await collect(engine, PROMPTS[0], GenerationParams(max_tokens=20))
    eos = free.ids[5]
    first_at = free.ids.index(eos)
    folder = shutil.copytree(source, tmp_path / "model")
    if layout == "genai":
        config = json.loads((folder / "genai_config.json").read_text())
        config["model"]["eos_token_id"] = eos
        (folder / "genai_config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
    async with loaded(folder) as engine:
        got = await collect(engine, PROMPTS[0], GenerationParams(max_tokens=20))
    assert got.ids == free.ids[: first_at + 1]
    assert got.result is not None
    assert got.result.finish_reason is FinishReason.STOP
    assert got.chunks[-1].text == ""


async def test_context_overflow_is_raised_before_generating(tiny_genai_model: Path) -> None:
    """prompt + max_tokens past the window raises ContextOverflow naming the numbers."""
    async with loaded(tiny_genai_model) as engine:
        window = engine.info.context_window
        stream = engine.generate(user(PROMPTS[1]), GenerationParams(max_tokens=window))
        with pytest.raises(ContextOverflow) as caught:
            await anext(stream)
        assert str(window) in caught.value.message
        assert "max_tokens" in caught.value.message
        assert engine.stats.tokens_generated_total == 0
        assert stream.finish_reason is None


async def test_max_tokens_over_the_limit_is_invalid(tiny_genai_model: Path) -> None:
    """max_tokens above model.max_new_tokens_limit is an InvalidRequest on max_tokens."""
    settings = ModelSettings(
        path=tiny_genai_model, providers=("CPUExecutionProvider",), max_new_tokens_limit=8
    )
    engine = LocalEngine.load(settings)
    try:
        with pytest.raises(InvalidRequest) as caught:
            await anext(engine.generate(user("hi"), GenerationParams(max_tokens=9)))
        assert caught.value.field == "params.max_tokens"
    finally:
        await engine.aclose()


async def test_score_next_token_matches_generation_evidence(tiny_genai_model: Path) -> None:
    """The score of the greedy first token's text equals that token's logprob, and is the best."""
    async with loaded(tiny_genai_model) as engine:
        first = (await collect(engine, PROMPTS[0], GenerationParams(max_tokens=1))).chunks[0]
        assert first.text
        scores = await engine.score_next_token(user(PROMPTS[0]), [first.text, "zzqx", "Paris"])
        assert scores[first.text] == pytest.approx(first.logprob, abs=1e-4)
        assert max(scores, key=lambda k: scores[k]) == first.text
        assert all(v <= 0 for v in scores.values())


async def test_score_with_suffix_scores_after_the_suffix(tiny_genai_model: Path) -> None:
    """A suffix is appended to the rendered prompt before scoring."""
    async with loaded(tiny_genai_model) as engine:
        plain = await engine.score_next_token(user("hello"), ["yes", "no"])
        suffixed = await engine.score_next_token(user("hello"), ["yes", "no"], suffix="Answer:")
        assert set(plain) == set(suffixed) == {"yes", "no"}
        assert plain != suffixed


def test_missing_model_folder_is_a_model_error(tmp_path: Path) -> None:
    """Loading a folder that is not there says what to run."""
    with pytest.raises(ModelError, match="handoffctl model build-default"):
        LocalEngine.load(ModelSettings(path=tmp_path / "missing"))


async def test_prompt_alone_over_the_window_says_so(tiny_genai_model: Path) -> None:
    """A prompt longer than the whole window is refused without suggesting max_tokens <= 0."""
    async with loaded(tiny_genai_model) as engine:
        huge = "word " * (engine.info.context_window * 2)
        with pytest.raises(ContextOverflow) as caught:
            await anext(engine.generate(user(huge), GenerationParams(max_tokens=4)))
        assert "the prompt alone" in caught.value.message
        assert "at most 0" not in caught.value.message


async def test_unavailable_provider_falls_back_to_cpu_with_a_warning(
    tiny_genai_model: Path,
) -> None:
    """Asking for a provider this onnxruntime lacks logs a warning and runs on CPU."""
    from structlog.testing import capture_logs

    settings = ModelSettings(
        path=tiny_genai_model, providers=("OpenVINOExecutionProvider",), verify_manifest=False
    )
    with capture_logs() as logs:
        engine = LocalEngine.load(settings)
    try:
        assert engine.info.execution_provider == "CPUExecutionProvider"
        warned = [e for e in logs if e["event"] == "engine.provider_unavailable"]
        assert warned
        assert warned[0]["provider"] == "OpenVINOExecutionProvider"
        assert warned[0]["log_level"] == "warning"
    finally:
        await engine.aclose()


async def test_tampered_model_file_fails_the_manifest_check(
    tiny_genai_model: Path, tmp_path: Path
) -> None:
    """With verify_manifest on, a changed file refuses to load; with it off, the model loads."""
    folder = shutil.copytree(tiny_genai_model, tmp_path / "model")
    with (folder / "tokenizer_config.json").open("a") as fh:
        fh.write(" ")
    with pytest.raises(ModelError):
        LocalEngine.load(ModelSettings(path=folder, providers=("CPUExecutionProvider",)))
    unchecked = LocalEngine.load(
        ModelSettings(path=folder, providers=("CPUExecutionProvider",), verify_manifest=False)
    )
    await unchecked.aclose()
