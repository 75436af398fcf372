"""Authentication and authorization for one gRPC listener.

The server runs one ``grpc.aio.server`` per listener (main socket, each app socket, TCP) and
gives each its own :class:`AuthInterceptor` bound to that listener's identity: grpcio exposes no
peer credentials on Unix sockets, so *which server* a call reached is the socket identity.

For every call the interceptor reads ``authorization`` metadata, resolves the caller
(:meth:`Authenticator.resolve`), checks the role table (:func:`handoffd.auth.authorize`), binds
the caller into a contextvar (:func:`current_caller`) and structlog's context (``app``, ``role``,
``request_id``, ``rpc``) and lets the call through. Otherwise the call is aborted with
UNAUTHENTICATED or PERMISSION_DENIED before the request is even parsed. Health checks and
reflection pass without credentials. Servicers get the caller with
``HandoffdServicer(state, resolve_caller=caller_from_context)``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, TypeAlias

import grpc
import structlog

from handoffd.auth import Authenticator, ListenerIdentity, authorize, is_public
from handoffd.auth.authenticator import parse_authorization
from handoffd.domain import Caller
from handoffd.errors import InternalError, PermissionDenied, Unauthenticated
from handoffd.logsetup import get_logger
from handoffd.metrics import Metrics

log = get_logger(__name__)

_caller: ContextVar[Caller | None] = ContextVar("handoffd_caller", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REQUEST_ID_KEY = "x-request-id"

# strings: grpc's classes are not subscriptable at runtime, only in the stubs
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]"


def current_caller() -> Caller:
    """The caller of the RPC being served (bound by :class:`AuthInterceptor`)."""
    caller = _caller.get()
    if caller is None:
        raise InternalError("no caller bound: the listener was started without AuthInterceptor")
    return caller


def caller_from_context(_: object) -> Caller:
    """:func:`current_caller` in the shape ``HandoffdServicer(resolve_caller=...)`` takes."""
    return current_caller()


def _metadata_values(metadata: Sequence[Any] | None, key: str) -> list[str]:
    values: list[str] = []
    for item in metadata or ():
        k, v = (item.key, item.value) if hasattr(item, "key") else item
        if k == key and isinstance(v, str):
            values.append(v)
    return values


def _request_id(metadata: Sequence[Any] | None) -> str:
    for value in _metadata_values(metadata, REQUEST_ID_KEY):
        if _REQUEST_ID.match(value):
            return value
    return uuid.uuid4().hex[:16]


def _aborting(handler: Handler, code: grpc.StatusCode, details: str) -> Handler:
    """A handler of the same shape as ``handler`` that aborts without parsing the request."""

    async def abort(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, details)

    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort, None, serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, None, serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort, None, serializer)
    return grpc.unary_unary_rpc_method_handler(abort, None, serializer)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Resolves and authorizes the caller of every RPC on one listener."""

    def __init__(
        self,
        authenticator: Authenticator,
        listener: ListenerIdentity,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._auth = authenticator
        self._listener = listener
        self._metrics = metrics

    @property
    def listener(self) -> ListenerIdentity:
        return self._listener

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method (the stubs say never; grpcio says otherwise)
            return handler  # grpc answers UNIMPLEMENTED
        method = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        request_id = _request_id(metadata)
        if is_public(method):
            structlog.contextvars.bind_contextvars(request_id=request_id, rpc=method)
            return handler
        caller: Caller | None = None
        try:
            bearer = parse_authorization(_metadata_values(metadata, "authorization"))
            caller = await self._auth.resolve(self._listener, bearer)
            authorize(caller, method)
        except (Unauthenticated, PermissionDenied) as exc:
            reason = exc.grpc_code.lower()
            log.warning(
                "auth.rejected",
                listener=self._listener.label,
                rpc=method,
                reason=reason,
                app=caller.app if caller is not None else None,
                request_id=request_id,
            )
            if self._metrics is not None:
                self._metrics.observe_auth_rejection(reason)
            return _aborting(handler, grpc.StatusCode[exc.grpc_code], exc.client_message())
        _caller.set(caller)
        structlog.contextvars.bind_contextvars(
            app=caller.app, role=caller.role.value, request_id=request_id, rpc=method
        )
        return handler
