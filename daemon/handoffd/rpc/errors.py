"""Map the project's error tree onto gRPC statuses (the table lives in handoffd.errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import grpc

from handoffd.errors import HandoffdError, ResourceExhausted
from handoffd.logsetup import get_logger

log = get_logger(__name__)

T = TypeVar("T")


def status_code(error: HandoffdError) -> grpc.StatusCode:
    return grpc.StatusCode[error.grpc_code]


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> NoReturn:
    """Abort the RPC with the status that ``error`` maps to; unknown errors become INTERNAL."""
    if isinstance(error, HandoffdError):
        if not error.public:
            log.error("request.internal_error", error_class=type(error).__name__, detail=str(error))
        if isinstance(error, ResourceExhausted) and error.retry_after_s is not None:
            context.set_trailing_metadata((("retry-after", f"{error.retry_after_s:.3f}"),))
        await context.abort(status_code(error), error.client_message())
    log.exception("request.unhandled_error", error_class=type(error).__name__)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; the daemon log has the details")


def unary_errors(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[T]]:
    @wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> T:
        try:
            return await fn(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await abort_with(context, exc)

    return wrapper


def stream_errors(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[T]]:
    @wraps(fn)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[T]:
        try:
            async for item in fn(self, request, context):
                yield item
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await abort_with(context, exc)

    return wrapper
