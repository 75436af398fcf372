"""A token-classification ONNX model (a BERT-style NER export) run with plain onnxruntime.

The folder holds ``model.onnx`` (inputs ``input_ids``, ``attention_mask`` and optionally
``token_type_ids``; output logits ``[batch, tokens, labels]``), ``tokenizer.json`` (a Hugging Face
``tokenizers`` file, which gives character offsets) and ``config.json`` with ``id2label``
(``B-PER``, ``I-LOC``, ``O``, ...). Labels are mapped to entity types (PER -> PERSON,
LOC -> LOCATION, ORG -> ORGANIZATION, others by their own name) and consecutive tokens of one
type are merged into one span; a span is kept when its mean probability reaches ``min_score``.

This is the second place that imports onnxruntime (the engine is the first): the NER session is
small, CPU-only and owned by this adapter.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from handoffd.errors import ConfigError
from handoffd.privacy.ner import EntitySpan
from handoffd.schema.privacy import NerConfig

LABEL_TO_TYPE = {"PER": "PERSON", "PERSON": "PERSON", "LOC": "LOCATION", "LOCATION": "LOCATION",
                 "GPE": "LOCATION", "ADDRESS": "LOCATION", "ORG": "ORGANIZATION"}  # fmt: skip


class OnnxTokenBackend:
    def __init__(self, config: NerConfig) -> None:
        folder = config.model
        missing = [
            n for n in ("model.onnx", "tokenizer.json", "config.json") if not (folder / n).is_file()
        ]
        if missing:
            raise ConfigError(
                f"privacy.ner.model {str(folder)!r} lacks {', '.join(missing)}: export a "
                "token-classification model (optimum-cli export onnx --task token-classification)"
            )
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigError(
                f"privacy.ner.kind 'onnx' needs onnxruntime and tokenizers: {exc}"
            ) from None
        try:
            meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            id2label = {int(k): str(v) for k, v in meta["id2label"].items()}
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self._session: Any = ort.InferenceSession(
                str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own classes; any of them means unusable
            raise ConfigError(
                f"privacy.ner.model {str(folder)!r} cannot be loaded: {type(exc).__name__}: {exc}"
            ) from None
        max_len = int(meta.get("max_position_embeddings", 512))
        self._tokenizer.enable_truncation(max_length=min(max_len, 512))
        self._inputs = {i.name for i in self._session.get_inputs()}
        wanted = set(config.entities)
        self._types: list[str | None] = [None] * (max(id2label) + 1)
        self._begins: list[bool] = [False] * (max(id2label) + 1)
        for idx, label in id2label.items():
            prefix, _, name = label.partition("-") if "-" in label else ("", "", label)
            entity = LABEL_TO_TYPE.get(name.upper(), name.upper())
            self._types[idx] = entity if entity in wanted else None
            self._begins[idx] = prefix.upper() == "B"
        self._min_score = config.min_score

    def entities(self, text: str) -> list[EntitySpan]:
        if not text.strip():
            return []
        first = self._tokenizer.encode(text)
        out: list[EntitySpan] = []
        for enc in [first, *first.overflowing]:
            out.extend(self._spans(enc))
        return out

    def _spans(self, enc: Any) -> list[EntitySpan]:
        ids = np.asarray([enc.ids], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
        }
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        logits = np.asarray(self._session.run(None, feed)[0])[0]
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = shifted / shifted.sum(axis=-1, keepdims=True)
        labels = probs.argmax(axis=-1)
        spans: list[EntitySpan] = []
        current: tuple[str, int, int, list[float]] | None = None
        for i, label in enumerate(labels.tolist()):
            start, end = enc.offsets[i]
            entity = self._types[label] if label < len(self._types) else None
            special = start == end
            if current and (special or entity != current[0] or self._begins[label]):
                spans.append(self._close(current))
                current = None
            if special or entity is None:
                continue
            if current is None:
                current = (entity, start, end, [float(probs[i, label])])
            else:
                current = (entity, current[1], end, [*current[3], float(probs[i, label])])
        if current:
            spans.append(self._close(current))
        return [s for s in spans if s.score >= self._min_score]

    @staticmethod
    def _close(current: tuple[str, int, int, list[float]]) -> EntitySpan:
        entity, start, end, scores = current
        return EntitySpan(entity, start, end, sum(scores) / len(scores))
