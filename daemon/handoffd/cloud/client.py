"""The cloud client: Chat Completions calls to the configured targets, with deadlines, retries
and a circuit breaker per target.

One call, in order::

    breaker open?  ──yes──▶ CloudUnavailable at once
    wait for one of the target's max_concurrent slots   (within the deadline)
    attempt 1..1+max_retries:
        send; streaming: the first chunk must come within first_byte_s
        fails before any text reached the caller and a retry may help?
            wait (Retry-After up to retry_after_cap_s, else backoff), then try again
        else raise: CloudUnavailable / CloudError / DeadlineExceeded

Deadlines: every call ends by ``min(deadline, start + timeouts.total_s)``. ``deadline`` is on the
``time.monotonic()`` clock (asyncio's ``loop.time()``). When the caller's deadline is the one
that runs out the call raises :class:`~handoffd.errors.DeadlineExceeded`; when the target's own
``total_s`` or ``first_byte_s`` runs out it raises :class:`~handoffd.errors.CloudUnavailable`
(the target is too slow; the pipeline may answer locally instead).

Retries never happen once streamed text has been yielded to the caller. The breaker counts one
verdict per call (not per attempt): a call that failed after its retries counts as a failure; an
HTTP 4xx other than 408/409/429 counts as the target being up.

Every streaming caller should close the iterator when it stops early
(``async with contextlib.aclosing(client.stream_chat(...)) as deltas``) so that the HTTP stream
is closed at once rather than by the garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import openai

from handoffd.cloud.breaker import BreakerState, CircuitBreaker, Permit
from handoffd.cloud.failures import AttemptFailure, FailureKind, to_error
from handoffd.cloud.keys import resolve_api_key
from handoffd.cloud.retry import RetryPolicy
from handoffd.cloud.sdk import call_options, failure_from, make_sdk_client
from handoffd.cloud.types import CloudCompletion, CloudDelta, CloudUsage
from handoffd.cloud.wire import finish_reason as map_finish
from handoffd.cloud.wire import read_chunk, read_completion, request_body
from handoffd.domain import GenerationParams, Message
from handoffd.errors import (
    CloudUnavailable,
    DeadlineExceeded,
    HandoffdError,
    NotFound,
)
from handoffd.logsetup import get_logger
from handoffd.schema.cloud import CloudSettings, CloudTargetSettings

log = get_logger(__name__)


class _Verdict(Enum):
    NONE = "none"  # no word on the target's health (deadline, cancelled)
    UP = "up"
    DOWN = "down"


@dataclass(slots=True)
class _Target:
    name: str
    settings: CloudTargetSettings
    sdk: openai.AsyncOpenAI
    breaker: CircuitBreaker
    slots: asyncio.Semaphore
    retry: RetryPolicy
    #: extra keyword arguments for every create() call (see sdk.call_options)
    call_options: dict[str, Any]


@dataclass(slots=True)
class _Call:
    target: _Target
    started: float
    #: when the call must be over (monotonic)
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


def _loop_time(monotonic_when: float) -> float:
    """Convert a ``time.monotonic()`` instant to the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_when - time.monotonic())


class CloudClient:
    """Calls the configured cloud targets. Build one per settings (at startup or reload)."""

    def __init__(
        self, settings: CloudSettings, *, environ: Mapping[str, str] | None = None
    ) -> None:
        """Reads every target's API key now (blocking file reads): a missing or unreadable key
        is a :class:`~handoffd.errors.ConfigError` naming the source, never the key."""
        self._settings = settings
        self._targets: dict[str, _Target] = {}
        for name, ts in settings.targets.items():
            key = resolve_api_key(name, ts, environ)
            self._targets[name] = _Target(
                name=name,
                settings=ts,
                sdk=make_sdk_client(ts, key),
                breaker=CircuitBreaker(ts.breaker.failures_to_open, ts.breaker.open_for_s),
                slots=asyncio.Semaphore(ts.max_concurrent),
                retry=RetryPolicy(ts.max_retries, ts.retry_after_cap_s, ts.retry_backoff_s),
                call_options=call_options(key),
            )

    def __repr__(self) -> str:
        return f"CloudClient(targets={self.targets()!r})"

    # -- what is configured ---------------------------------------------------------------

    def targets(self) -> list[str]:
        return sorted(self._targets)

    def target(self, name: str) -> CloudTargetSettings:
        return self._get(name).settings

    @property
    def default_target(self) -> str | None:
        return self._settings.resolved_default()

    def breaker_state(self, name: str) -> BreakerState:
        return self._get(name).breaker.state

    def _get(self, name: str) -> _Target:
        try:
            return self._targets[name]
        except KeyError:
            known = ", ".join(self.targets()) or "none are configured"
            raise NotFound(f"unknown cloud target {name!r} (targets: {known})") from None

    # -- calls ------------------------------------------------------------------------------

    async def stream_chat(
        self,
        target: str,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        deadline: float | None = None,
    ) -> AsyncGenerator[CloudDelta, None]:
        """Stream an answer: text deltas, then one ``final`` delta with usage, finish_reason
        and model. Raises CloudUnavailable, CloudError, DeadlineExceeded, InvalidRequest."""
        t = self._get(target)
        body = request_body(t.settings, tuple(messages), params)
        call = self._start(t, deadline)
        permit = self._admit(t)
        verdict = _Verdict.NONE
        try:
            async with self._slot(call):
                while True:
                    call.attempts += 1
                    delivered = False
                    try:
                        async with contextlib.aclosing(self._stream_attempt(call, body)) as it:
                            async for delta in it:
                                if delta.final:
                                    verdict = _Verdict.UP
                                delivered = delivered or bool(delta.text)
                                yield delta
                        return
                    except AttemptFailure as failure:
                        if delivered:
                            broken = AttemptFailure(FailureKind.BROKEN, failure.detail)
                            verdict = _Verdict.DOWN
                            self._log_failed(call, broken)
                            raise self._error(call, broken) from None
                        verdict = _Verdict.DOWN if failure.target_down else _Verdict.UP
                        await self._before_retry(call, failure)
                        verdict = _Verdict.NONE
        finally:
            self._settle(call, permit, verdict)

    async def chat(
        self,
        target: str,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        deadline: float | None = None,
    ) -> CloudCompletion:
        """One whole answer (a non-streaming request). Same errors as :meth:`stream_chat`;
        ``first_byte_s`` does not apply (a non-streaming server sends nothing until done)."""
        t = self._get(target)
        body = request_body(t.settings, tuple(messages), params)
        call = self._start(t, deadline)
        permit = self._admit(t)
        verdict = _Verdict.NONE
        try:
            async with self._slot(call):
                while True:
                    call.attempts += 1
                    try:
                        completion = await self._complete_attempt(call, body)
                    except AttemptFailure as failure:
                        verdict = _Verdict.DOWN if failure.target_down else _Verdict.UP
                        await self._before_retry(call, failure)
                        verdict = _Verdict.NONE
                        continue
                    verdict = _Verdict.UP
                    return completion
        finally:
            self._settle(call, permit, verdict)

    async def aclose(self) -> None:
        """Close every target's connection pool."""
        for t in self._targets.values():
            await t.sdk.close()

    # -- one attempt -------------------------------------------------------------------------

    async def _stream_attempt(
        self, call: _Call, body: dict[str, Any]
    ) -> AsyncGenerator[CloudDelta, None]:
        t = call.target
        first_byte_s = t.settings.timeouts.first_byte_s
        attempt_start = time.monotonic()
        first_by = min(call.deadline, attempt_start + first_byte_s)
        self._log_request(call, body, stream=True)
        stream: Any = None
        try:
            try:
                async with asyncio.timeout_at(_loop_time(first_by)):
                    stream = await t.sdk.chat.completions.create(
                        **body,
                        **t.call_options,
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    chunk = await anext(stream, None)
            except TimeoutError:
                if first_by >= call.deadline:
                    raise call.expired() from None
                raise AttemptFailure(
                    FailureKind.TIMEOUT, f"no first byte within first_byte_s={first_byte_s:g}"
                ) from None
            ttft_ms = (time.monotonic() - attempt_start) * 1000.0
            finish: str | None = None
            usage: CloudUsage | None = None
            model = ""
            chars = 0
            while chunk is not None:
                fields = read_chunk(chunk)
                model = fields.model or model
                usage = fields.usage or usage
                finish = fields.finish_reason or finish
                if fields.text:
                    chars += len(fields.text)
                    yield CloudDelta(text=fields.text)
                try:
                    async with asyncio.timeout_at(_loop_time(call.deadline)):
                        chunk = await anext(stream, None)
                except TimeoutError:
                    raise call.expired() from None
            if finish is None:
                raise AttemptFailure(
                    FailureKind.TRUNCATED, "the stream ended before a finish_reason"
                )
            latency_ms = call.elapsed_ms()
            self._log_response(call, 200, latency_ms, usage, finish, chars, ttft_ms=ttft_ms)
            yield CloudDelta(
                final=True,
                usage=usage,
                finish_reason=map_finish(finish),
                provider_finish_reason=finish,
                model=model,
                latency_ms=latency_ms,
                ttft_ms=ttft_ms,
                attempts=call.attempts,
            )
        except Exception as exc:
            if isinstance(exc, AttemptFailure | HandoffdError):
                raise
            failure = failure_from(exc)
            if failure is None:
                raise
            raise failure from None
        finally:
            if stream is not None:
                await stream.close()

    async def _complete_attempt(self, call: _Call, body: dict[str, Any]) -> CloudCompletion:
        t = call.target
        self._log_request(call, body, stream=False)
        try:
            async with asyncio.timeout_at(_loop_time(call.deadline)):
                completion = await t.sdk.chat.completions.create(**body, **t.call_options)
        except TimeoutError:
            raise call.expired() from None
        except Exception as exc:
            failure = failure_from(exc)
            if failure is None:
                raise
            raise failure from None
        fields = read_completion(completion)
        latency_ms = call.elapsed_ms()
        self._log_response(
            call, 200, latency_ms, fields.usage, fields.finish_reason, len(fields.text)
        )
        return CloudCompletion(
            text=fields.text,
            finish_reason=map_finish(fields.finish_reason),
            provider_finish_reason=fields.finish_reason,
            model=fields.model,
            target=t.name,
            usage=fields.usage,
            latency_ms=latency_ms,
            attempts=call.attempts,
        )

    # -- the parts around attempts ------------------------------------------------------------

    def _start(self, t: _Target, deadline: float | None) -> _Call:
        now = time.monotonic()
        own = now + t.settings.timeouts.total_s
        if deadline is not None and deadline <= now:
            raise DeadlineExceeded(
                f"the request's deadline had already passed before calling cloud target {t.name!r}"
            )
        caller_bound = deadline is not None and deadline <= own
        return _Call(
            target=t,
            started=now,
            deadline=deadline if deadline is not None and caller_bound else own,
            caller_bound=caller_bound,
        )

    def _admit(self, t: _Target) -> Permit:
        permit = t.breaker.try_acquire()
        if permit is None:
            log.info("cloud.breaker_rejected", target=t.name, retry_in_s=t.breaker.retry_in_s())
            raise CloudUnavailable(
                f"cloud target {t.name!r} is failing (circuit breaker open after "
                f"{t.breaker.consecutive_failures} failures); next try in "
                f"{t.breaker.retry_in_s():.1f} s"
            )
        return permit

    @contextlib.asynccontextmanager
    async def _slot(self, call: _Call) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout_at(_loop_time(call.deadline)):
                await call.target.slots.acquire()
        except TimeoutError:
            raise call.expired() from None
        try:
            yield
        finally:
            call.target.slots.release()

    async def _before_retry(self, call: _Call, failure: AttemptFailure) -> None:
        """Wait before the next attempt, or raise the call's final error."""
        t = call.target
        delay = t.retry.delay_s(call.attempts, failure.retry_after_s) if failure.retryable else None
        if delay is None:
            self._log_failed(call, failure)
            raise self._error(call, failure) from None
        if time.monotonic() + delay >= call.deadline:
            # no time left to wait for another attempt: report what the target did
            self._log_failed(call, failure)
            raise self._error(call, failure) from None
        log.info(
            "cloud.retry",
            target=t.name,
            attempt=call.attempts,
            failure=failure.kind.value,
            status=failure.status,
            delay_s=round(delay, 3),
            server_asked_s=failure.retry_after_s,
        )
        await asyncio.sleep(delay)

    def _settle(self, call: _Call, permit: Permit, verdict: _Verdict) -> None:
        t = call.target
        if verdict is _Verdict.NONE and call.target_timed_out:
            verdict = _Verdict.DOWN
        if verdict is _Verdict.UP:
            if t.breaker.record_success(permit):
                log.info("cloud.breaker_closed", target=t.name)
        elif verdict is _Verdict.DOWN:
            if t.breaker.record_failure(permit):
                log.warning(
                    "cloud.breaker_opened",
                    target=t.name,
                    failures=t.breaker.consecutive_failures,
                    open_for_s=t.settings.breaker.open_for_s,
                )
        else:
            t.breaker.release(permit)

    def _error(self, call: _Call, failure: AttemptFailure) -> HandoffdError:
        return to_error(failure, call.target.name, call.attempts, call.target.settings.key_source)

    # -- logs: counts and timings only, never text or keys -----------------------------------

    def _log_request(self, call: _Call, body: dict[str, Any], *, stream: bool) -> None:
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

    def _log_response(
        self,
        call: _Call,
        status: int,
        latency_ms: float,
        usage: CloudUsage | None,
        finish: str,
        chars: int,
        *,
        ttft_ms: float | None = None,
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

    def _log_failed(self, call: _Call, failure: AttemptFailure) -> None:
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
