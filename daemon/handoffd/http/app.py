"""The OpenAI-compatible HTTP facade: the same pipeline as gRPC, behind OpenAI's wire format.

``POST /v1/chat/completions`` (JSON or SSE), ``GET /v1/models``, ``GET /health``. The caller is
identified by its bearer token; the route, reasons and ledger id come back in ``x-handoffd-*``
headers and in a ``handoffd`` field of the body (for streams: of the last content chunk, since
headers leave before the answer is known — the header carries the first decision).
Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as HttpRoute

from handoffd.auth import Authenticator, ListenerIdentity, authorize, parse_authorization
from handoffd.auth.roles import METHOD_CHAT, METHOD_LIST_MODELS
from handoffd.domain import Caller, ChatEvent, DecisionEvent, DeltaEvent, FinalEvent
from handoffd.errors import HandoffdError, InternalError, InvalidRequest, ResourceExhausted
from handoffd.http import wire
from handoffd.logsetup import get_logger
from handoffd.pipeline import ChatPipeline

log = get_logger(__name__)

#: returns the pipeline, or raises Unavailable while the model loads
PipelineSource = Callable[[], ChatPipeline]


def error_body(error: HandoffdError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.client_message(),
            "type": error.error_type,
            "param": error.field,
            "code": type(error).__name__,
        }
    }


def error_response(error: HandoffdError) -> JSONResponse:
    headers = {}
    if isinstance(error, ResourceExhausted) and error.retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after_s)))
    return JSONResponse(error_body(error), status_code=error.http_status, headers=headers)


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge(len(body), limit)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON ({exc})", field="body") from None


class _TooLarge(InvalidRequest):
    http_status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the body is {size} bytes; the limit is {limit} (server.max_request_bytes)",
            field="body",
        )


def _decision_headers(event: ChatEvent) -> dict[str, str]:
    if not isinstance(event, DecisionEvent):
        return {}
    d = event.decision
    return {
        "x-handoffd-route": d.route.value,
        "x-handoffd-strategy": d.strategy,
        "x-handoffd-rule-ids": ",".join(d.rule_ids),
    }


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _stream(
    events: AsyncIterator[ChatEvent],
    completion_id: str,
    created: int,
    model_name: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    yield _sse(
        wire.chunk_body(
            completion_id, created, model_name, delta={"role": "assistant", "content": ""}
        )
    )
    try:
        async for event in events:
            if isinstance(event, DeltaEvent):
                yield _sse(
                    wire.chunk_body(
                        completion_id, created, model_name, delta={"content": event.text}
                    )
                )
            elif isinstance(event, FinalEvent):
                for chunk in wire.final_chunks(
                    completion_id, created, event.result, include_usage=include_usage
                ):
                    yield _sse(chunk)
    except HandoffdError as exc:
        yield _sse(error_body(exc))
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield b"data: [DONE]\n\n"


def create_app(pipeline: PipelineSource, auth: Authenticator, *, max_body_bytes: int) -> Starlette:
    """The facade; ``auth`` identifies callers by bearer token (the TCP rules: a token is
    required) and the role table decides what they may call, exactly as for gRPC."""
    listener = ListenerIdentity.tcp()

    async def authenticate(request: Request, method: str) -> Caller:
        values = [request.headers["authorization"]] if "authorization" in request.headers else []
        caller = await auth.resolve(listener, parse_authorization(values))
        authorize(caller, method)
        return caller

    async def chat_completions(request: Request) -> Response:
        try:
            caller = await authenticate(request, METHOD_CHAT)
            body = await read_json(request, max_body_bytes)
            request_id = request.headers.get("x-request-id") or f"chatcmpl-{uuid.uuid4().hex}"
            parsed, chat = wire.parse_request(
                body,
                app=caller.app,
                handoff_header=request.headers.get("x-handoffd-handoff"),
                labels_header=request.headers.get("x-handoffd-labels"),
                request_id=request_id,
            )
            events = pipeline().stream(chat)
            first = await anext(events)
        except HandoffdError as exc:
            return error_response(exc)
        except Exception:
            log.exception("http.unhandled_error")
            return error_response(InternalError("unhandled error"))
        headers = _decision_headers(first)
        completion_id = (
            request_id if request_id.startswith("chatcmpl-") else f"chatcmpl-{request_id}"
        )
        created = wire.now()
        if not parsed.stream:
            try:
                async for event in events:
                    if isinstance(event, FinalEvent):
                        result = event.result
                        headers.update(
                            {
                                "x-handoffd-route": result.route.value,
                                "x-handoffd-ledger-id": result.ledger_id,
                            }
                        )
                        return JSONResponse(
                            wire.completion_body(completion_id, created, result), headers=headers
                        )
            except HandoffdError as exc:
                return error_response(exc)
            return error_response(InternalError("pipeline ended without a final event"))
        include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
        model_name = pipeline().model.info.name
        return StreamingResponse(
            _stream(events, completion_id, created, model_name, include_usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    async def list_models(request: Request) -> Response:
        try:
            await authenticate(request, METHOD_LIST_MODELS)
            info = pipeline().model.info
        except HandoffdError as exc:
            return error_response(exc)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": info.name, "object": "model", "created": 0, "owned_by": "handoffd"}
                ],
            }
        )

    async def health(_: Request) -> Response:
        try:
            pipeline()
        except HandoffdError as exc:
            return JSONResponse(
                {"status": "loading", "detail": exc.client_message()}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            HttpRoute("/v1/chat/completions", chat_completions, methods=["POST"]),
            HttpRoute("/v1/models", list_models, methods=["GET"]),
            HttpRoute("/health", health, methods=["GET"]),
        ]
    )
