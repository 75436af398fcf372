"""One HTTP attempt at a cloud call: streaming or not, with its timeouts, turned into
handoffd values or an :class:`~handoffd.cloud.failures.AttemptFailure`.

No ``asyncio.timeout`` is ever held across a ``yield``: a timeout armed while the consumer runs
would cancel the consumer's code instead of ours. Each wait for the next chunk gets its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from handoffd.cloud.call import CallState, log_request, log_response, loop_time
from handoffd.cloud.failures import AttemptFailure, FailureKind
from handoffd.cloud.sdk import failure_from
from handoffd.cloud.types import CloudCompletion, CloudDelta, CloudUsage
from handoffd.cloud.wire import finish_reason as map_finish
from handoffd.cloud.wire import read_chunk, read_completion
from handoffd.errors import HandoffdError


async def stream_attempt(call: CallState, body: dict[str, Any]) -> AsyncGenerator[CloudDelta, None]:
    """Text deltas as they come, then the final delta; the first chunk must come within
    ``first_byte_s``, everything within the call's deadline."""
    t = call.target
    first_byte_s = t.settings.timeouts.first_byte_s
    attempt_start = time.monotonic()
    first_by = min(call.deadline, attempt_start + first_byte_s)
    log_request(call, body, stream=True)
    stream: Any = None
    try:
        try:
            async with asyncio.timeout_at(loop_time(first_by)):
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
                async with asyncio.timeout_at(loop_time(call.deadline)):
                    chunk = await anext(stream, None)
            except TimeoutError:
                raise call.expired() from None
        if finish is None:
            raise AttemptFailure(FailureKind.TRUNCATED, "the stream ended before a finish_reason")
        latency_ms = call.elapsed_ms()
        log_response(call, latency_ms, usage, finish, chars, ttft_ms=ttft_ms)
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


async def complete_attempt(call: CallState, body: dict[str, Any]) -> CloudCompletion:
    """One non-streaming request, within the call's deadline."""
    t = call.target
    log_request(call, body, stream=False)
    try:
        async with asyncio.timeout_at(loop_time(call.deadline)):
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
    log_response(call, latency_ms, fields.usage, fields.finish_reason, len(fields.text))
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
