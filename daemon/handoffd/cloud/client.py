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
from enum import Enum

from handoffd.cloud.attempt import complete_attempt, stream_attempt
from handoffd.cloud.breaker import BreakerState, CircuitBreaker, Permit
from handoffd.cloud.call import CallState, TargetRuntime, log, log_failed, loop_time
from handoffd.cloud.failures import AttemptFailure, FailureKind, to_error
from handoffd.cloud.keys import resolve_api_key
from handoffd.cloud.retry import RetryPolicy
from handoffd.cloud.sdk import call_options, make_sdk_client
from handoffd.cloud.types import CloudCompletion, CloudDelta
from handoffd.cloud.wire import request_body
from handoffd.domain import GenerationParams, Message
from handoffd.errors import (
    CloudUnavailable,
    DeadlineExceeded,
    HandoffdError,
    NotFound,
)
from handoffd.schema.cloud import CloudSettings, CloudTargetSettings


class _Verdict(Enum):
    NONE = "none"  # no word on the target's health (deadline, cancelled)
    UP = "up"
    DOWN = "down"


class CloudClient:
    """Calls the configured cloud targets. Build one per settings (at startup or reload) and
    use it from one event loop."""

    def __init__(
        self, settings: CloudSettings, *, environ: Mapping[str, str] | None = None
    ) -> None:
        """Reads every target's API key now (blocking file reads): a missing or unreadable key
        is a :class:`~handoffd.errors.ConfigError` naming the source, never the key."""
        self._settings = settings
        self._targets: dict[str, TargetRuntime] = {}
        for name, ts in settings.targets.items():
            key = resolve_api_key(name, ts, environ)
            self._targets[name] = TargetRuntime(
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

    def _get(self, name: str) -> TargetRuntime:
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
                        async with contextlib.aclosing(stream_attempt(call, body)) as it:
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
                            log_failed(call, broken)
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
                        completion = await complete_attempt(call, body)
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

    # -- the parts around attempts ------------------------------------------------------------

    def _start(self, t: TargetRuntime, deadline: float | None) -> CallState:
        now = time.monotonic()
        own = now + t.settings.timeouts.total_s
        if deadline is not None and deadline <= now:
            raise DeadlineExceeded(
                f"the request's deadline had already passed before calling cloud target {t.name!r}"
            )
        caller_bound = deadline is not None and deadline <= own
        return CallState(
            target=t,
            started=now,
            deadline=deadline if deadline is not None and caller_bound else own,
            caller_bound=caller_bound,
        )

    def _admit(self, t: TargetRuntime) -> Permit:
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
    async def _slot(self, call: CallState) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout_at(loop_time(call.deadline)):
                await call.target.slots.acquire()
        except TimeoutError:
            raise call.expired() from None
        try:
            yield
        finally:
            call.target.slots.release()

    async def _before_retry(self, call: CallState, failure: AttemptFailure) -> None:
        """Wait before the next attempt, or raise the call's final error."""
        t = call.target
        delay = t.retry.delay_s(call.attempts, failure.retry_after_s) if failure.retryable else None
        if delay is None:
            log_failed(call, failure)
            raise self._error(call, failure) from None
        if time.monotonic() + delay >= call.deadline:
            # no time left to wait for another attempt: report what the target did
            log_failed(call, failure)
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

    def _settle(self, call: CallState, permit: Permit, verdict: _Verdict) -> None:
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

    def _error(self, call: CallState, failure: AttemptFailure) -> HandoffdError:
        return to_error(failure, call.target.name, call.attempts, call.target.settings.key_source)
