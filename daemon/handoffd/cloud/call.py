"""State of one target and of one call to it, and the log events of a call.

Logs carry counts and timings only: never prompt or answer text, never keys.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import openai

from handoffd.cloud.breaker import CircuitBreaker
from handoffd.cloud.failures import AttemptFailure
from handoffd.cloud.retry import RetryPolicy
from handoffd.cloud.types import CloudUsage
from handoffd.errors import CloudUnavailable, DeadlineExceeded, HandoffdError
from handoffd.logsetup import get_logger
from handoffd.schema.cloud import CloudTargetSettings

log = get_logger("handoffd.cloud")


@dataclass(slots=True)
class TargetRuntime:
    """Everything kept per configured target."""

    name: str
    settings: CloudTargetSettings
    sdk: openai.AsyncOpenAI
    breaker: CircuitBreaker
    slots: asyncio.Semaphore
    retry: RetryPolicy
    #: extra keyword arguments for every create() call (see sdk.call_options)
    call_options: dict[str, Any]


@dataclass(slots=True)
class CallState:
    """One call (all its attempts) to one target."""

    target: TargetRuntime
    started: float
    #: when the call must be over (``time.monotonic()``)
    deadline: float
    #: the caller's deadline is the one that ends the call (else the target's total_s)
    caller_bound: bool
    attempts: int = 0
    #: the target's own total_s ran out (counts against the breaker)
    target_timed_out: bool = False

    def expired(self) -> HandoffdError:
        """The error for running out of time on the call deadline."""
        self.target_timed_out = not self.caller_bound
        if self.caller_bound:
            return DeadlineExceeded(
                f"the request's deadline ran out while waiting for cloud target "
                f"{self.target.name!r}"
            )
        total = self.target.settings.timeouts.total_s
        return CloudUnavailable(
            f"cloud target {self.target.name!r} did not finish within total_s={total:g}; "
            "raise timeouts.total_s or ask for fewer tokens"
        )

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0


def loop_time(monotonic_when: float) -> float:
    """Convert a ``time.monotonic()`` instant to the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_when - time.monotonic())


def log_request(call: CallState, body: dict[str, Any], *, stream: bool) -> None:
    messages = body["messages"]
    log.info(
        "cloud.request",
        target=call.target.name,
        model=body["model"],
        attempt=call.attempts,
        stream=stream,
        messages=len(messages),
        prompt_chars=sum(len(m["content"]) for m in messages),
    )


def log_response(
    call: CallState,
    latency_ms: float,
    usage: CloudUsage | None,
    finish: str,
    chars: int,
    *,
    ttft_ms: float | None = None,
    status: int = 200,
) -> None:
    log.info(
        "cloud.response",
        target=call.target.name,
        status=status,
        attempts=call.attempts,
        latency_ms=round(latency_ms, 1),
        ttft_ms=round(ttft_ms, 1) if ttft_ms is not None else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        cached_tokens=usage.cached_prompt_tokens if usage else None,
        finish_reason=finish,
        answer_chars=chars,
    )


def log_failed(call: CallState, failure: AttemptFailure) -> None:
    log.warning(
        "cloud.failed",
        target=call.target.name,
        attempts=call.attempts,
        failure=failure.kind.value,
        status=failure.status,
        error_code=failure.error_code or None,
        detail=failure.detail,
        latency_ms=round(call.elapsed_ms(), 1),
    )
