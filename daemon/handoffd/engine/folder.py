"""Reading a model folder: which layout it is, where its files are, and the shapes the engine needs.

Two layouts are supported, told apart by their files:

``genai``
    onnxruntime-genai builder output: ``genai_config.json`` names the decoder file, the input and
    output names (``past_key_values.%d.key`` ...), layer count, KV heads, head size (symbolic in the
    graph), context length and EOS ids. GroupQueryAttention graphs share one max-length KV buffer
    between past and present (``search.past_present_share_buffer``).
``optimum``
    ``optimum-cli export onnx --task text-generation-with-past``: ``config.json`` (HF config) and
    ``model.onnx`` (or the older ``decoder_model_merged.onnx``); the graph concatenates past and
    new KV itself and returns a longer ``present``.

Everything else (tokenizer, chat template, EOS ids) comes from the HF files both layouts carry.
Nothing here touches onnxruntime: the session is opened by :mod:`handoffd.engine.session`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from handoffd.errors import ModelError

Layout = Literal["genai", "optimum"]

OPTIMUM_MODEL_FILES = ("model.onnx", "decoder_model_merged.onnx", "decoder_with_past_model.onnx")

_BUILD_HINT = (
    "build the default model with `handoffctl model build-default`, or export your own with "
    "`optimum-cli export onnx --model <hf-id> --task text-generation-with-past <folder>`"
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the engine needs to know about a model folder before opening a session."""

    path: Path
    layout: Layout
    onnx_path: Path
    num_layers: int
    num_kv_heads: int
    head_size: int
    context_window: int
    vocab_size: int
    eos_token_ids: frozenset[int]
    #: input/output name templates, with ``%d`` for the layer index
    past_key_name: str = "past_key_values.%d.key"
    past_value_name: str = "past_key_values.%d.value"
    present_key_name: str = "present.%d.key"
    present_value_name: str = "present.%d.value"
    #: the genai config asks for past and present to share one max-length buffer
    share_buffer: bool = False
    #: model family from the config (llama, qwen2, phi3, mistral, gpt2, ...)
    model_type: str = ""
    #: precision the folder declares, if any (genai builds record it; else read from the graph)
    declared_precision: str = ""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror}); {_BUILD_HINT}") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); rebuild or re-export the model"
        ) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object; rebuild or re-export the model")
    return data


def read_json_if_exists(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file does not exist."""
    return _read_json(path) if path.is_file() else {}


def _ids(value: Any) -> set[int]:
    if isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        return {v for v in value if isinstance(v, int) and not isinstance(v, bool)}
    return set()


def _positive_int(config: Mapping[str, Any], keys: Iterable[str], where: Path) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    names = " or ".join(keys)
    raise ModelError(f"{where}: no positive {names}; the export is incomplete, re-export it")


def _check_tokenizer(folder: Path) -> None:
    if not (folder / "tokenizer.json").is_file():
        raise ModelError(
            f"{folder}: tokenizer.json is missing (the engine needs the fast tokenizer file); "
            f"{_BUILD_HINT}"
        )


def _genai_spec(folder: Path) -> ModelSpec:
    genai = _read_json(folder / "genai_config.json")
    model = genai.get("model")
    decoder = model.get("decoder") if isinstance(model, dict) else None
    if not isinstance(model, dict) or not isinstance(decoder, dict):
        raise ModelError(
            f"{folder / 'genai_config.json'}: no model.decoder section; rebuild with the "
            "onnxruntime-genai builder"
        )
    filename = decoder.get("filename", "model.onnx")
    onnx_path = folder / str(filename)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: the decoder named in genai_config.json is missing; "
                         f"{_BUILD_HINT}")
    where = folder / "genai_config.json"
    num_heads = _positive_int(decoder, ("num_attention_heads",), where)
    hidden = decoder.get("hidden_size")
    head_size = decoder.get("head_size")
    if not isinstance(head_size, int) or head_size <= 0:
        if not isinstance(hidden, int) or hidden <= 0:
            raise ModelError(f"{where}: model.decoder has neither head_size nor hidden_size")
        head_size = hidden // num_heads
    inputs = decoder.get("inputs", {}) if isinstance(decoder.get("inputs"), dict) else {}
    outputs = decoder.get("outputs", {}) if isinstance(decoder.get("outputs"), dict) else {}
    search = genai.get("search", {}) if isinstance(genai.get("search"), dict) else {}
    eos = _ids(model.get("eos_token_id"))
    hf = read_json_if_exists(folder / "config.json")
    return ModelSpec(
        path=folder,
        layout="genai",
        onnx_path=onnx_path,
        num_layers=_positive_int(decoder, ("num_hidden_layers",), where),
        num_kv_heads=_positive_int(decoder, ("num_key_value_heads", "num_attention_heads"), where),
        head_size=head_size,
        context_window=_positive_int(model, ("context_length",), where),
        vocab_size=_positive_int(model, ("vocab_size",), where),
        eos_token_ids=frozenset(eos | _hf_eos_ids(folder)),
        past_key_name=str(inputs.get("past_key_names", "past_key_values.%d.key")),
        past_value_name=str(inputs.get("past_value_names", "past_key_values.%d.value")),
        present_key_name=str(outputs.get("present_key_names", "present.%d.key")),
        present_value_name=str(outputs.get("present_value_names", "present.%d.value")),
        share_buffer=bool(search.get("past_present_share_buffer", False)),
        model_type=str(model.get("type", hf.get("model_type", ""))),
        declared_precision="",
    )


def _optimum_spec(folder: Path) -> ModelSpec:
    where = folder / "config.json"
    hf = _read_json(where)
    onnx_path = next((folder / n for n in OPTIMUM_MODEL_FILES if (folder / n).is_file()), None)
    if onnx_path is None:
        raise ModelError(
            f"{folder}: config.json is there but no model.onnx (or decoder_model_merged.onnx); "
            f"{_BUILD_HINT}"
        )
    num_heads = _positive_int(hf, ("num_attention_heads", "n_head"), where)
    kv_heads = hf.get("num_key_value_heads")
    if not isinstance(kv_heads, int) or kv_heads <= 0:
        kv_heads = num_heads
    head_size = hf.get("head_dim")
    if not isinstance(head_size, int) or head_size <= 0:
        head_size = _positive_int(hf, ("hidden_size", "n_embd"), where) // num_heads
    return ModelSpec(
        path=folder,
        layout="optimum",
        onnx_path=onnx_path,
        num_layers=_positive_int(hf, ("num_hidden_layers", "n_layer"), where),
        num_kv_heads=kv_heads,
        head_size=head_size,
        context_window=_positive_int(
            hf, ("max_position_embeddings", "n_positions", "n_ctx"), where
        ),
        vocab_size=_positive_int(hf, ("vocab_size",), where),
        eos_token_ids=frozenset(_hf_eos_ids(folder)),
        model_type=str(hf.get("model_type", "")),
    )


def _hf_eos_ids(folder: Path) -> set[int]:
    """EOS ids declared by the HF files (generation_config.json, config.json)."""
    ids: set[int] = set()
    for name in ("generation_config.json", "config.json"):
        ids |= _ids(read_json_if_exists(folder / name).get("eos_token_id"))
    return ids


def read_model_folder(folder: Path) -> ModelSpec:
    """Detect the layout of ``folder`` and read its shapes; :class:`ModelError` says what to run."""
    if not folder.exists():
        raise ModelError(f"model folder {folder} does not exist; {_BUILD_HINT}")
    if not folder.is_dir():
        raise ModelError(f"model path {folder} is a file; point model.path at the folder")
    if (folder / "genai_config.json").is_file():
        spec = _genai_spec(folder)
    elif (folder / "config.json").is_file():
        spec = _optimum_spec(folder)
    else:
        raise ModelError(
            f"{folder}: unknown model layout (neither genai_config.json nor config.json found); "
            f"{_BUILD_HINT}"
        )
    _check_tokenizer(folder)
    return spec
