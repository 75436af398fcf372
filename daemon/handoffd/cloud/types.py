"""Values the cloud client hands back: streamed deltas and whole completions."""

from __future__ import annotations

from dataclasses import dataclass

from handoffd.domain import FinishReason, Usage


@dataclass(frozen=True, slots=True)
class CloudUsage:
    """Token counts as the provider reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: the part of ``prompt_tokens`` served from the provider's prompt cache
    cached_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_usage(self) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens)


@dataclass(frozen=True, slots=True)
class CloudDelta:
    """One piece of a streamed answer.

    Every item but the last carries ``text``; the last (``final`` is True) carries no text and
    has ``usage`` (``None`` when the server did not report it), ``finish_reason`` and ``model``.
    """

    text: str = ""
    final: bool = False
    usage: CloudUsage | None = None
    finish_reason: FinishReason | None = None
    #: the model id the server says answered (may differ from the one asked for)
    model: str = ""
    #: the provider's own finish_reason (``content_filter``, ``tool_calls``, ...)
    provider_finish_reason: str = ""
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class CloudCompletion:
    """A whole answer from :meth:`CloudClient.chat`."""

    text: str
    finish_reason: FinishReason
    model: str
    target: str
    usage: CloudUsage | None = None
    latency_ms: float = 0.0
    #: HTTP attempts made (1 when the first one succeeded)
    attempts: int = 1
    #: the provider's own finish_reason (``content_filter``, ``tool_calls``, ...)
    provider_finish_reason: str = ""
