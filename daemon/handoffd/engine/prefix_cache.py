"""Prompt prefix cache: the KV of an app's finished requests, reused by that app's next prompts.

An app on a device sends the same system prompt with every request, and a chat sends the whole
conversation again at each turn. When a request ends, the KV its slot holds (prompt and answer
tokens) is copied here, keyed by the app and the token ids. A new prompt from the same app that
starts with some of those tokens gets their KV copied into its slot and prefills only the rest.

Entries are per app: a cache shared between apps would let one app learn, from its own TTFT,
whether another app sent a given text. When the memory budget is full, the least recently used
entry of an app holding more than its fair share (the budget split evenly between the apps with
entries) goes first, so one busy app cannot push the others' system prompts out; an entry that
would take more than half the budget is not kept.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: prompt tokens always prefilled, never taken from the cache (see :meth:`PrefixCache.lookup`)
MIN_PREFILL = 2
#: KV of one sequence: per layer keys and values, each ``[kv_heads, tokens, head_size]``
KvArrays = list[npt.NDArray[Any]]


@dataclass(frozen=True, slots=True)
class _Entry:
    app: str
    ids: npt.NDArray[np.int64]
    kv: KvArrays


class PrefixCache:
    """LRU store of (app, token ids) -> KV arrays within ``budget_bytes``."""

    def __init__(self, budget_bytes: int, bytes_per_token: int, *, min_tokens: int = 16) -> None:
        self._budget = budget_bytes
        self._per_token = bytes_per_token
        self._min_tokens = min_tokens
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next_key = 0
        self.bytes = 0
        self.hits = 0
        self.tokens_reused = 0

    def lookup(self, app: str, prompt: Sequence[int]) -> tuple[int, KvArrays]:
        """The longest cached prefix of ``prompt`` for ``app`` and its KV (views of ``count``
        tokens); ``(0, [])`` when nothing of ``min_tokens`` or more is cached.

        At least :data:`MIN_PREFILL` prompt tokens are left to run: onnxruntime's int8
        MatMulNBits (accuracy level 4) computes a 1-row input with another kernel than a
        many-row one, and the last token's logits then differ (measured on the default model:
        max |diff| 1.16, the golden answer flips to French; with 2 or more rows they are
        bit-identical to a whole-prompt prefill)."""
        wanted = np.asarray(prompt, dtype=np.int64)[:-MIN_PREFILL]
        best_key, best = -1, 0
        for key, entry in self._entries.items():
            if entry.app != app:
                continue
            shared = _common_prefix(entry.ids, wanted)
            if shared > best:
                best_key, best = key, shared
        if best < self._min_tokens:
            return 0, []
        self._entries.move_to_end(best_key)
        self.hits += 1
        self.tokens_reused += best
        return best, [layer[:, :best, :] for layer in self._entries[best_key].kv]

    def wants(self, count: int) -> bool:
        """Whether a sequence of ``count`` tokens is worth copying in (before the copy is made)."""
        return self._min_tokens <= count and count * self._per_token * 2 <= self._budget

    def store(self, app: str, ids: Sequence[int], kv: KvArrays) -> None:
        """Keep ``kv`` (owned copies) for ``ids``; entries of ``app`` that are a prefix of
        ``ids`` are dropped (the new one serves them), then, while over budget, the least recent
        entry of an app over its fair share."""
        new_ids = np.asarray(ids, dtype=np.int64)
        if not self.wants(len(new_ids)):
            return
        for key, entry in list(self._entries.items()):
            if entry.app == app and _common_prefix(entry.ids, new_ids) == len(entry.ids):
                self._drop(key)
        self._entries[self._next_key] = _Entry(app, new_ids, kv)
        self._next_key += 1
        self.bytes += len(new_ids) * self._per_token
        while self.bytes > self._budget:
            self._drop(self._victim())

    def _victim(self) -> int:
        """The least recently used entry among the apps over their fair share (when the cache
        is over budget, at least one app is)."""
        held: Counter[str] = Counter()
        for entry in self._entries.values():
            held[entry.app] += len(entry.ids) * self._per_token
        share = self._budget // len(held)
        return next(key for key, entry in self._entries.items() if held[entry.app] > share)

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.bytes -= len(entry.ids) * self._per_token


def _common_prefix(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n
