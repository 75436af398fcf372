"""The auth interceptor against real grpc.aio servers: every caller x every RPC in the protos.

The RPC list is read from the service descriptors of every proto/handoffd/v1/*.proto, so an RPC
added later is covered (and must be classified by the role table) without touching this file.
Listeners: the main Unix socket, an app's own Unix socket, and TCP on 127.0.0.1 port 0, each its
own server with its own interceptor, like the daemon runs them.
"""

from __future__ import annotations

import asyncio
import grp
import importlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoffd.auth import (
    APP_METHODS,
    Authenticator,
    ListenerIdentity,
    TokenStore,
    allowed_roles,
)
from handoffd.auth.tokens import generate_token
from handoffd.domain import CallerRole
from handoffd.metrics import Metrics
from handoffd.rpc.auth_interceptor import AuthInterceptor, current_caller
from handoffd.schema.auth import AppSocketSettings, AuthSettings

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto" / "handoffd" / "v1"


def _proto_methods() -> list[MethodDescriptor]:
    methods: list[MethodDescriptor] = []
    for proto in sorted(PROTO_DIR.glob("*.proto")):
        module = importlib.import_module(f"handoffd.v1.{proto.stem}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            methods.extend(service.methods)
    return methods


METHODS = _proto_methods()


def _path(m: MethodDescriptor) -> str:
    return f"/{m.containing_service.full_name}/{m.name}"


def _seen_by_handler(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Report to the client who the handler thinks is calling (contextvar + structlog)."""
    caller = current_caller()
    bound = structlog.contextvars.get_contextvars()
    context.set_trailing_metadata(
        (
            ("x-caller", f"{caller.app}:{caller.role.value}"),
            ("x-log-app", str(bound.get("app"))),
            ("x-log-request-id", str(bound.get("request_id"))),
        )
    )


def _handler(m: MethodDescriptor) -> grpc.RpcMethodHandler[Any, Any]:
    request_cls = message_factory.GetMessageClass(m.input_type)
    response_cls = message_factory.GetMessageClass(m.output_type)
    des, ser = request_cls.FromString, response_cls.SerializeToString

    if m.client_streaming and m.server_streaming:

        async def bidi(requests: Any, context: Any) -> AsyncIterator[Any]:
            async for _ in requests:
                pass
            _seen_by_handler(context)
            yield response_cls()

        return grpc.stream_stream_rpc_method_handler(bidi, des, ser)
    if m.client_streaming:

        async def client_stream(requests: Any, context: Any) -> Any:
            async for _ in requests:
                pass
            _seen_by_handler(context)
            return response_cls()

        return grpc.stream_unary_rpc_method_handler(client_stream, des, ser)
    if m.server_streaming:

        async def server_stream(_request: Any, context: Any) -> AsyncIterator[Any]:
            _seen_by_handler(context)
            yield response_cls()

        return grpc.unary_stream_rpc_method_handler(server_stream, des, ser)

    async def unary(_request: Any, context: Any) -> Any:
        _seen_by_handler(context)
        return response_cls()

    return grpc.unary_unary_rpc_method_handler(unary, des, ser)


def _generic_handlers() -> list[grpc.GenericRpcHandler]:
    by_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
    for m in METHODS:
        by_service.setdefault(m.containing_service.full_name, {})[m.name] = _handler(m)
    return [grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items()]


async def _call(target: str, m: MethodDescriptor, token: str | None) -> tuple[grpc.StatusCode, str]:
    """Call method ``m`` on ``target``; returns the status and the handler's x-caller."""
    request_cls = message_factory.GetMessageClass(m.input_type)
    response_cls = message_factory.GetMessageClass(m.output_type)
    ser, des = request_cls.SerializeToString, response_cls.FromString
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(target) as channel:
        path = _path(m)
        call: Any
        if m.client_streaming and m.server_streaming:
            call = channel.stream_stream(path, ser, des)(iter([request_cls()]), metadata=metadata)
        elif m.client_streaming:
            call = channel.stream_unary(path, ser, des)(iter([request_cls()]), metadata=metadata)
        elif m.server_streaming:
            call = channel.unary_stream(path, ser, des)(request_cls(), metadata=metadata)
        else:
            call = channel.unary_unary(path, ser, des)(request_cls(), metadata=metadata)
        try:
            if m.server_streaming:
                async for _ in call:
                    pass
            else:
                await call
        except grpc.aio.AioRpcError as exc:
            return exc.code(), ""
        trailing = dict(await call.trailing_metadata() or ())
        return await call.code(), str(trailing.get("x-caller", ""))


@dataclass
class Listeners:
    main: str
    app_socket: str
    tcp: str
    app_token: str
    admin_token: str
    metrics: Metrics


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short temp dir: Unix socket paths must stay under 108 bytes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hfd-a-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
async def listeners(short_dir: Path) -> AsyncIterator[Listeners]:
    """Three real grpc.aio servers (main socket, app socket, TCP), each with its interceptor."""
    store = TokenStore(short_dir / "tokens.json")
    app_token = store.add("reader")
    admin_token = store.add("ops", CallerRole.ADMIN)
    group = grp.getgrgid(os.getgid()).gr_name
    settings = AuthSettings(
        apps={"kiosk": AppSocketSettings(group=group)},
        default_socket_role="admin",
        token_refresh_s=0,
    )
    auth = Authenticator(settings, store)
    auth.load_tokens()
    metrics = Metrics()
    servers: list[grpc.aio.Server] = []

    async def serve(listener: ListenerIdentity, address: str) -> int:
        server = grpc.aio.server(interceptors=[AuthInterceptor(auth, listener, metrics=metrics)])
        server.add_generic_rpc_handlers(_generic_handlers())
        health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
        port = server.add_insecure_port(address)
        await server.start()
        servers.append(server)
        return port

    main_path = short_dir / "main.sock"
    app_path = short_dir / "kiosk.sock"
    await serve(auth.main_listener(), f"unix://{main_path}")
    await serve(auth.app_listeners()["kiosk"], f"unix://{app_path}")
    port = await serve(ListenerIdentity.tcp(), "127.0.0.1:0")
    try:
        yield Listeners(
            f"unix://{main_path}",
            f"unix://{app_path}",
            f"127.0.0.1:{port}",
            app_token,
            admin_token,
            metrics,
        )
    finally:
        await asyncio.gather(*(s.stop(None) for s in servers))


def test_the_protos_define_rpcs_and_the_app_methods_exist() -> None:
    """The descriptor scan finds the RPCs, and every app-allowed method is a real RPC."""
    paths = {_path(m) for m in METHODS}
    assert "/handoffd.v1.Handoffd/Chat" in paths
    assert paths >= APP_METHODS
    for path in paths:  # every RPC is classified: nobody-allowed would be a forgotten RPC
        assert CallerRole.ADMIN in allowed_roles(path), path


OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("method", METHODS, ids=_path)
async def test_every_caller_against_every_rpc(
    listeners: Listeners, method: MethodDescriptor
) -> None:
    """Each caller gets OK (with its identity in the handler) or the right refusal, per RPC."""
    app_code = OK if CallerRole.APP in allowed_roles(_path(method)) else DENIED
    ls = listeners
    cases = [
        # (who, target, token, expected code, identity the handler must see when OK)
        ("main socket, no token", ls.main, None, OK, "default:admin"),
        ("app socket, no token", ls.app_socket, None, app_code, "kiosk:app"),
        ("TCP, app token", ls.tcp, ls.app_token, app_code, "reader:app"),
        ("main socket, app token", ls.main, ls.app_token, app_code, "reader:app"),
        ("TCP, admin token", ls.tcp, ls.admin_token, OK, "ops:admin"),
        ("app socket, admin token", ls.app_socket, ls.admin_token, OK, "ops:admin"),
        ("TCP, no token", ls.tcp, None, UNAUTHENTICATED, ""),
        ("TCP, unknown token", ls.tcp, generate_token(), UNAUTHENTICATED, ""),
        ("main socket, unknown token", ls.main, generate_token(), UNAUTHENTICATED, ""),
        ("app socket, unknown token", ls.app_socket, generate_token(), UNAUTHENTICATED, ""),
    ]
    for who, target, token, code, identity in cases:
        got_code, got_identity = await _call(target, method, token)
        assert got_code == code, f"{who}: {_path(method)}"
        if code == OK:
            assert got_identity == identity, f"{who}: {_path(method)}"


async def test_health_is_public_on_every_listener(listeners: Listeners) -> None:
    """Health checks need no token, even on TCP."""
    for target in (listeners.main, listeners.app_socket, listeners.tcp):
        async with grpc.aio.insecure_channel(target) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_refusals_carry_the_fix_and_are_counted(listeners: Listeners) -> None:
    """Clients read what to do in the status details; metrics count refusals by reason."""
    chat = next(m for m in METHODS if m.name == "Chat")
    status = next(m for m in METHODS if m.name == "Status")
    request = message_factory.GetMessageClass(chat.input_type)()
    async with grpc.aio.insecure_channel(listeners.tcp) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as unauth:
            await channel.unary_unary(_path(chat), request.SerializeToString, lambda b: b)(request)
    assert "handoffctl apps add" in (unauth.value.details() or "")
    code, _ = await _call(listeners.app_socket, status, None)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    text = listeners.metrics.render().decode()
    assert 'handoffd_auth_rejections_total{reason="unauthenticated"} 1.0' in text
    assert 'handoffd_auth_rejections_total{reason="permission_denied"} 1.0' in text


async def test_handler_sees_the_caller_in_log_context(listeners: Listeners) -> None:
    """structlog's contextvars carry app and a request id (the client's x-request-id if given)."""
    chat = next(m for m in METHODS if m.name == "Chat")
    request_cls = message_factory.GetMessageClass(chat.input_type)
    async with grpc.aio.insecure_channel(listeners.app_socket) as channel:
        call = channel.unary_unary(_path(chat), request_cls.SerializeToString, lambda b: b)(
            request_cls(), metadata=(("x-request-id", "req-42"),)
        )
        await call
        trailing = dict(await call.trailing_metadata() or ())
    assert trailing["x-log-app"] == "kiosk"
    assert trailing["x-log-request-id"] == "req-42"


async def test_rejections_never_log_the_token(listeners: Listeners) -> None:
    """The auth.rejected log line names the listener and RPC, never the presented token."""
    from tests.log_scan import scan_events

    chat = next(m for m in METHODS if m.name == "Chat")
    bogus = generate_token()
    with structlog.testing.capture_logs() as logs:
        code, _ = await _call(listeners.tcp, chat, bogus)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    rejected = [e for e in logs if e["event"] == "auth.rejected"]
    assert len(rejected) == 1
    assert rejected[0]["listener"] == "tcp"
    assert scan_events(logs, forbidden=[bogus]) == []
