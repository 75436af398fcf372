"""A tiny, real token-classification ONNX model written byte by byte (no ``onnx`` package).

The graph is one ``Gather``: each token id picks its row of a ``[vocab, labels]`` logits table,
so the "model" tags known words with fixed labels. The tokenizer is a real ``tokenizers``
word-level tokenizer saved as tokenizer.json, so character offsets are the library's own.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
# word -> label index
TAGS = {"alice": 1, "smith": 2, "paris": 3, "new": 3, "york": 4}
VOCAB = ["[UNK]", "flew", "to", "and", "met", "in", *TAGS]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d)) for d in dims)
    tensor_type = _field(1, elem_type) + _field(2, shape)
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _model_bytes() -> bytes:
    rows: list[float] = []
    for word in VOCAB:
        label = TAGS.get(word, 0)
        rows.extend(8.0 if i == label else 0.0 for i in range(len(LABELS)))
    table = (
        _field(1, len(VOCAB))
        + _field(1, len(LABELS))
        + _field(2, 1)  # FLOAT
        + _field(8, "table")
        + _field(9, struct.pack(f"<{len(rows)}f", *rows))
    )
    node = _field(1, "table") + _field(1, "input_ids") + _field(2, "logits") + _field(4, "Gather")
    graph = (
        _field(1, node)
        + _field(2, "tiny_ner")
        + _field(5, table)
        + _field(11, _value_info("input_ids", 7, [1, "seq"]))  # INT64
        + _field(11, _value_info("attention_mask", 7, [1, "seq"]))
        + _field(12, _value_info("logits", 1, [1, "seq", len(LABELS)]))
    )
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 8) + _field(2, "handoffd-tests") + _field(7, graph) + _field(8, opset)


def write_tiny_ner(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(_model_bytes())
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"id2label": {str(i): label for i, label in enumerate(LABELS)}}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder
