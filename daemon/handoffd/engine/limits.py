"""Capacity knobs of the engine worker.

They are read from :class:`handoffd.settings.ModelSettings` when it has fields of the same names
(``max_batch_size``, ``kv_cache_mb``, ``prefill_chunk_tokens``, ``max_queued``,
``max_context_tokens``, ``prefix_cache_mb``) and take the defaults below otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class EngineLimits:
    #: requests decoded together in one batched run (continuous batching); 1 turns batching off
    max_batch_size: int = 8
    #: KV cache memory the running requests may reserve, MiB (prompt + max_tokens each); a lone
    #: request is always admitted even if it alone needs more
    kv_cache_mb: int = 1024
    #: prompt tokens prefilled between two decode steps (all newcomers together): running
    #: streams stall at most this long; a longer prompt is prefilled in chunks of this size
    prefill_chunk_tokens: int = 256
    #: requests that may wait for a slot; more are refused with ResourceExhausted
    max_queued: int = 256
    #: cap on prompt + generated tokens per request (0: the model's context window)
    max_context_tokens: int = 0
    #: memory for the KV of finished requests, reused by the same app's prompts that start
    #: alike (system prompt, earlier chat turns), MiB; 0 turns the prefix cache off
    prefix_cache_mb: int = 128

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            minimum = 0 if f.name in ("max_context_tokens", "prefix_cache_mb") else 1
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"engine {f.name} must be an integer >= {minimum}, got {value!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> EngineLimits:
        """Take each knob from ``settings`` if it has it."""
        names = [f.name for f in fields(cls)]
        values = {name: getattr(settings, name) for name in names if hasattr(settings, name)}
        return cls(**values)
