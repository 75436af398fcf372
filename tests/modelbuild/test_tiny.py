"""Tiny random models of both layouts, and the reference generators the parity tests trust.

The first run creates the two build venvs and the models (minutes); later runs use the cache.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from handoffd.engine.manifest import verify_manifest
from handoffd.modelbuild.errors import ModelBuildError
from handoffd.modelbuild.tiny import build_tiny_model, reference_generate

PROMPT = [1, 9, 20, 30, 40, 2, 1]  # <|im_start|> ... <|im_end|> <|im_start|>
EOS = 2
GENAI_FILES = {"genai_config.json", "model.onnx", "model.onnx.data"}
OPTIMUM_FILES = {"config.json", "generation_config.json", "model.onnx"}
COMMON_FILES = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}


@pytest.fixture(scope="module")
def genai_model() -> Path:
    return build_tiny_model("genai")


@pytest.fixture(scope="module")
def optimum_model() -> Path:
    return build_tiny_model("optimum")


def _tokenizer_config(model: Path) -> dict[str, object]:
    data = json.loads((model / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_genai_layout_files(genai_model: Path) -> None:
    """The genai build has its graph, genai_config (GQA shapes) and ChatML tokenizer files."""
    names = {p.name for p in genai_model.iterdir()}
    assert names >= GENAI_FILES | COMMON_FILES
    decoder = json.loads((genai_model / "genai_config.json").read_text("utf-8"))["model"]
    assert decoder["eos_token_id"] == EOS
    assert decoder["context_length"] == 512
    assert decoder["decoder"]["num_key_value_heads"] == 2
    assert decoder["decoder"]["num_attention_heads"] == 4
    assert decoder["decoder"]["head_size"] == 16


def test_optimum_layout_files(optimum_model: Path) -> None:
    """The Optimum export has model.onnx with past_key_values inputs and the HF configs."""
    names = {p.name for p in optimum_model.iterdir()}
    assert names >= OPTIMUM_FILES | COMMON_FILES
    config = json.loads((optimum_model / "config.json").read_text("utf-8"))
    assert config["num_key_value_heads"] == 2
    assert config["num_hidden_layers"] == 2
    graph = (optimum_model / "model.onnx").read_bytes()
    assert b"past_key_values.1.value" in graph
    assert b"position_ids" in graph


@pytest.mark.parametrize("layout", ["genai", "optimum"])
def test_tokenizer_and_manifest(layout: str) -> None:
    """Both layouts carry the ChatML template in tokenizer_config.json and verify their manifest."""
    model = build_tiny_model(layout)  # type: ignore[arg-type]
    config = _tokenizer_config(model)
    assert config["eos_token"] == "<|im_end|>"
    assert config["bos_token"] == "<|im_start|>"
    template = config["chat_template"]
    assert isinstance(template, str)
    assert "<|im_start|>assistant" in template
    assert (model / "chat_template.jinja").read_text(encoding="utf-8") == template
    vocab = json.loads((model / "tokenizer.json").read_text("utf-8"))["model"]["vocab"]
    assert vocab["<|endoftext|>"] == 0
    assert vocab["<|im_start|>"] == 1
    assert vocab["<|im_end|>"] == 2
    manifest = verify_manifest(model)
    assert manifest.layout == layout
    assert manifest.precision == "fp32"


def test_second_build_is_instant(genai_model: Path) -> None:
    """A built tiny model is reused from the cache."""
    started = time.monotonic()
    assert build_tiny_model("genai") == genai_model
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("layout", ["genai", "optimum"])
def test_reference_generate_is_greedy_and_deterministic(layout: str) -> None:
    """max_new_tokens ids (or fewer, ending at EOS), the same ids on every run."""
    model = build_tiny_model(layout)  # type: ignore[arg-type]
    first = reference_generate(layout, model, PROMPT, 12)  # type: ignore[arg-type]
    assert len(first) == 12 or (first and first[-1] == EOS and len(first) < 12)
    assert all(0 <= t < 512 for t in first)
    assert reference_generate(layout, model, PROMPT, 12) == first  # type: ignore[arg-type]


def test_both_layouts_agree_on_the_same_weights(genai_model: Path, optimum_model: Path) -> None:
    """Same seed, same random weights: og's generator and Optimum's generate give the same ids.

    This checks both export routes against each other (and that the seed fixes the weights).
    """
    assert reference_generate("genai", genai_model, PROMPT, 16) == reference_generate(
        "optimum", optimum_model, PROMPT, 16
    )


def test_bad_arguments_are_refused() -> None:
    """Unknown layouts, negative seeds and empty prompts are errors, not builds."""
    with pytest.raises(ModelBuildError, match="unknown model layout"):
        build_tiny_model("gguf")  # type: ignore[arg-type]
    with pytest.raises(ModelBuildError, match="seed"):
        build_tiny_model("genai", seed=-1)
    with pytest.raises(ModelBuildError, match="input_ids"):
        reference_generate("genai", Path("."), [], 4)
