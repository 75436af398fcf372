"""Per-item local results and their JSON cache, so that threshold sweeps never re-run the model.

One cache file holds the results of one model on one dataset with one set of generation
settings (the key). Items already in a cache with the same key are not run again; a cache with
another key is refused with a message that says which part differs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from handoffd.errors import ConfigError

FORMAT = "handoffd.routereval.cache/1"


@dataclass(frozen=True, slots=True)
class LocalResult:
    """What the local model did with one eval item (the evidence every strategy is scored on)."""

    id: str
    answer: str
    correct: bool
    prompt_tokens: int
    #: log-probability and entropy of the first generated tokens (at most ``RECORDED_TOKENS``)
    logprobs: tuple[float, ...]
    entropies: tuple[float, ...]
    completion_tokens: int
    #: the self-assessment log-probabilities (candidate -> log-prob of its first token)
    pre_score: dict[str, float] = field(default_factory=dict)
    #: the answer when the model was offered the handoff (marker or tool), and what it did
    handoff_answer: str = ""
    handoff_format: str | None = None
    handoff_reason: str = ""
    handoff_answer_correct: bool = False
    #: the prompt did not fit the local context window
    overflow: bool = False
    #: ``req.max_word_tokens`` of the question (None: the model gave no tokenizer)
    max_word_tokens: int | None = None

    @property
    def handoff_called(self) -> bool:
        return self.handoff_format is not None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["logprobs"] = [round(v, 5) for v in self.logprobs]
        data["entropies"] = [round(v, 5) for v in self.entropies]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocalResult:
        return cls(
            id=str(data["id"]),
            answer=str(data["answer"]),
            correct=bool(data["correct"]),
            prompt_tokens=int(data["prompt_tokens"]),
            logprobs=tuple(float(v) for v in data["logprobs"]),
            entropies=tuple(float(v) for v in data["entropies"]),
            completion_tokens=int(data["completion_tokens"]),
            pre_score={str(k): float(v) for k, v in data.get("pre_score", {}).items()},
            handoff_answer=str(data.get("handoff_answer", "")),
            handoff_format=data.get("handoff_format"),
            handoff_reason=str(data.get("handoff_reason", "")),
            handoff_answer_correct=bool(data.get("handoff_answer_correct", False)),
            overflow=bool(data.get("overflow", False)),
            max_word_tokens=(
                int(data["max_word_tokens"]) if data.get("max_word_tokens") is not None else None
            ),
        )


@dataclass
class ResultCache:
    """Results keyed by item id, valid for one ``key`` (model, dataset digest, settings)."""

    path: Path | None
    key: dict[str, Any]
    results: dict[str, LocalResult] = field(default_factory=dict)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: unreadable result cache ({exc}); delete it") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a router-eval cache ({FORMAT}); delete it")
        return data

    @classmethod
    def peek(cls, path: Path) -> ResultCache | None:
        """The cache at ``path`` with the key it was written with (None if there is none)."""
        if not path.exists():
            return None
        data = cls._read(path)
        results = {r["id"]: LocalResult.from_json(r) for r in data.get("results", [])}
        return cls(path=path, key=dict(data.get("key", {})), results=results)

    @classmethod
    def open(cls, path: Path | None, key: dict[str, Any]) -> ResultCache:
        """Open (or start) the cache at ``path``; None keeps results in memory only."""
        if path is None or not path.exists():
            return cls(path=path, key=key)
        data = cls._read(path)
        old = data.get("key", {})
        differs = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        if differs:
            raise ConfigError(
                f"{path}: the cache was made with other {', '.join(differs)} "
                f"({', '.join(f'{k}={old.get(k)!r}' for k in differs)}); "
                "pass another --cache file or delete this one"
            )
        results = {r["id"]: LocalResult.from_json(r) for r in data.get("results", [])}
        return cls(path=path, key=key, results=results)

    def snapshot(self) -> dict[str, Any]:
        """The file's content now (take it on the thread that owns the cache)."""
        return {
            "format": FORMAT,
            "key": self.key,
            "results": [self.results[k].to_json() for k in sorted(self.results)],
        }

    def save(self, data: dict[str, Any] | None = None) -> None:
        """Write ``data`` (default: a snapshot now) atomically: temp file, then rename."""
        if self.path is None:
            return
        data = self.snapshot() if data is None else data
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".cache-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
