"""Model folders: layout detection, shapes from the configs, errors that say what to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from handoffd.engine.folder import read_model_folder
from handoffd.errors import ModelError

GENAI = {
    "model": {
        "context_length": 2048,
        "eos_token_id": [2, 7],
        "type": "llama",
        "vocab_size": 1000,
        "decoder": {
            "filename": "model.onnx",
            "head_size": 64,
            "hidden_size": 576,
            "num_attention_heads": 9,
            "num_hidden_layers": 30,
            "num_key_value_heads": 3,
            "inputs": {"past_key_names": "past_key_values.%d.key"},
        },
    },
    "search": {"past_present_share_buffer": True},
}

HF = {
    "model_type": "gpt2",
    "n_head": 12,
    "n_embd": 768,
    "n_layer": 12,
    "n_positions": 1024,
    "vocab_size": 50257,
    "eos_token_id": 50256,
}


def _folder(root: Path, files: dict[str, object]) -> Path:
    root.mkdir(exist_ok=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (root / name).write_text(text)
    return root


def test_genai_folder_shapes_and_eos(tmp_path: Path) -> None:
    """genai_config.json gives layers, KV heads, head size, context and every EOS id."""
    folder = _folder(tmp_path / "m", {
        "genai_config.json": GENAI, "model.onnx": "x", "tokenizer.json": "{}",
        "generation_config.json": {"eos_token_id": 9},
    })
    spec = read_model_folder(folder)
    assert spec.layout == "genai"
    assert (spec.num_layers, spec.num_kv_heads, spec.head_size) == (30, 3, 64)
    assert spec.context_window == 2048
    assert spec.vocab_size == 1000
    assert spec.eos_token_ids == {2, 7, 9}
    assert spec.share_buffer
    assert spec.past_key_name == "past_key_values.%d.key"


def test_optimum_gpt2_folder_uses_gpt2_config_names(tmp_path: Path) -> None:
    """An Optimum GPT-2 export: n_head/n_embd/n_layer/n_positions, MHA (kv heads = heads)."""
    folder = _folder(tmp_path / "g", {"config.json": HF, "model.onnx": "x", "tokenizer.json": "{}"})
    spec = read_model_folder(folder)
    assert spec.layout == "optimum"
    assert (spec.num_layers, spec.num_kv_heads, spec.head_size) == (12, 12, 64)
    assert spec.context_window == 1024
    assert spec.eos_token_ids == {50256}


def test_missing_folder_says_how_to_build(tmp_path: Path) -> None:
    """A folder that does not exist names the commands that make one."""
    with pytest.raises(ModelError, match="handoffctl model build-default") as caught:
        read_model_folder(tmp_path / "nope")
    assert "optimum-cli export onnx" in caught.value.message


def test_unknown_layout(tmp_path: Path) -> None:
    """A folder with neither genai_config.json nor config.json is an unknown layout."""
    with pytest.raises(ModelError, match="unknown model layout"):
        read_model_folder(_folder(tmp_path / "u", {"weights.bin": "x"}))


def test_missing_onnx_file(tmp_path: Path) -> None:
    """config.json without model.onnx is reported with the export command."""
    folder = _folder(tmp_path / "o", {"config.json": HF, "tokenizer.json": "{}"})
    with pytest.raises(ModelError, match=r"no model\.onnx"):
        read_model_folder(folder)


def test_missing_tokenizer(tmp_path: Path) -> None:
    """tokenizer.json is required (the fast tokenizer)."""
    folder = _folder(tmp_path / "t", {"genai_config.json": GENAI, "model.onnx": "x"})
    with pytest.raises(ModelError, match=r"tokenizer\.json is missing"):
        read_model_folder(folder)


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    """Invalid JSON in a config names the file and line."""
    folder = _folder(tmp_path / "b", {"config.json": "{\n  'bad': 1\n}", "model.onnx": "x"})
    with pytest.raises(ModelError, match=r"config\.json:2: not valid JSON"):
        read_model_folder(folder)


def test_incomplete_config_names_the_missing_key(tmp_path: Path) -> None:
    """A config without the layer count says which key is missing."""
    broken = {k: v for k, v in HF.items() if k != "n_layer"}
    folder = _folder(tmp_path / "c", {"config.json": broken, "model.onnx": "x",
                                      "tokenizer.json": "{}"})
    with pytest.raises(ModelError, match="num_hidden_layers or n_layer"):
        read_model_folder(folder)
