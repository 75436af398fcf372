"""The fake cloud's ASGI application: OpenAI Chat Completions on a real HTTP server.

Raw ASGI (no framework) so that every byte on the wire is chosen here: headers, SSE framing,
a connection dropped mid-body, a body that never comes. State (reply script, fault queue,
recorded requests) is guarded by a lock because tests may read it from another thread than the
server's.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakecloud import wire
from tests.fakecloud.faults import (
    Disconnect,
    ErrorEvent,
    Fault,
    Hang,
    HttpError,
    MalformedJson,
    RateLimited,
    SlowFirstByte,
)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Echo:
    """Reply with the last user message."""

    def __repr__(self) -> str:
        return "ECHO"


ECHO = Echo()
Reply = str | Echo | Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    #: lower-cased names
    headers: dict[str, str]
    raw_body: bytes
    #: the parsed JSON body (``None`` when absent or not JSON)
    body: dict[str, Any] | None
    received_at: float


@dataclass
class _Scheduled:
    fault: Fault
    remaining: int | None  # None: every matching request until cleared
    when: Callable[[dict[str, Any]], bool] | None


@dataclass
class FakeCloudState:
    reply: Reply = "Hello from the fake cloud."
    api_key: str | None = None
    model: str = "fake-model"
    #: models that exist (``None``: any model name is accepted)
    models: tuple[str, ...] | None = None
    cached_tokens: int = 0
    #: pause between streamed content chunks
    chunk_delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[_Scheduled] = field(default_factory=list)

    def take_fault(self, body: dict[str, Any]) -> Fault | None:
        with self.lock:
            for s in self.faults:
                if s.when is not None and not s.when(body):
                    continue
                if s.remaining is not None:
                    s.remaining -= 1
                    if s.remaining <= 0:
                        self.faults.remove(s)
                return s.fault
        return None

    def answer_text(self, body: dict[str, Any]) -> str:
        with self.lock:
            reply = self.reply
        if isinstance(reply, Echo):
            return wire.last_user_text(body)
        if isinstance(reply, str):
            return reply
        return reply(body)


class FakeCloudApp:
    def __init__(self, state: FakeCloudState) -> None:
        self.state = state
        #: set (in the server's loop) when the server stops, to end hanging requests
        self.stopping: asyncio.Event | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body: dict[str, Any] | None
        try:
            parsed = json.loads(raw) if raw else None
            body = parsed if isinstance(parsed, dict) else None
        except ValueError:
            body = None
        path = scope["path"]
        with self.state.lock:
            self.state.requests.append(
                RecordedRequest(scope["method"], path, headers, raw, body, time.time())
            )
        expected = f"Bearer {self.state.api_key}"
        if self.state.api_key is not None and headers.get("authorization") != expected:
            await _json(
                send,
                401,
                wire.error_body(
                    "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
                ),
            )
            return
        if path in ("/v1/models", "/models") and scope["method"] == "GET":
            await self._models(send)
        elif path in ("/v1/chat/completions", "/chat/completions"):
            if scope["method"] != "POST":
                await _json(send, 405, wire.error_body("Use POST.", "invalid_request_error", None))
            else:
                await self._chat(body, raw, receive, send)
        else:
            await _json(
                send,
                404,
                wire.error_body(f"Unknown path {path}.", "invalid_request_error", "unknown_url"),
            )

    async def _models(self, send: Send) -> None:
        names = self.state.models or (self.state.model,)
        data = [
            {"id": n, "object": "model", "created": 1_700_000_000, "owned_by": "fakecloud"}
            for n in names
        ]
        await _json(send, 200, wire.dumps({"object": "list", "data": data}))

    async def _chat(
        self, body: dict[str, Any] | None, raw: bytes, receive: Receive, send: Send
    ) -> None:
        if body is None:
            msg = "We could not parse the JSON body of your request."
            await _json(send, 400, wire.error_body(msg, "invalid_request_error", None))
            return
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list) or not messages:
            msg = "'model' and a non-empty 'messages' are required."
            await _json(send, 400, wire.error_body(msg, "invalid_request_error", None))
            return
        if self.state.models is not None and model not in self.state.models:
            msg = f"The model `{model}` does not exist or you do not have access to it."
            await _json(send, 404, wire.error_body(msg, "invalid_request_error", "model_not_found"))
            return
        fault = self.state.take_fault(body)
        stream = body.get("stream") is True
        if isinstance(fault, RateLimited):
            extra = []
            if fault.retry_after_s is not None:
                extra.append((b"retry-after", f"{fault.retry_after_s:g}".encode()))
            if fault.retry_after_ms is not None:
                extra.append((b"retry-after-ms", str(fault.retry_after_ms).encode()))
            msg = "Rate limit reached for requests."
            await _json(send, 429, wire.error_body(msg, "requests", "rate_limit_exceeded"), extra)
            return
        if isinstance(fault, HttpError) or (isinstance(fault, ErrorEvent) and not stream):
            err = fault if isinstance(fault, HttpError) else HttpError()
            await _json(send, err.status, wire.error_body(err.message, err.type, err.code))
            return
        if isinstance(fault, SlowFirstByte) and await self._wait_or_stop(fault.delay_s):
            return
        if isinstance(fault, Hang) and (fault.after_chunks == 0 or not stream):
            await self._hang(receive)
            return
        text = self.state.answer_text(body)
        parts, finish = wire.shape_answer(text, body)
        usage = wire.usage(body, len(parts), self.state.cached_tokens)
        answer_model = model
        if stream:
            await self._stream(body, answer_model, parts, finish, usage, fault, receive, send)
            return
        payload = wire.dumps(wire.completion(wire.new_id(), answer_model, parts, finish, usage))
        if isinstance(fault, MalformedJson):
            await _json(send, 200, payload[: len(payload) // 2])
        elif isinstance(fault, Disconnect):
            await _start(send, 200, "application/json", [(b"content-length", b"%d" % len(payload))])
            await send(
                {
                    "type": "http.response.body",
                    "body": payload[: len(payload) // 2],
                    "more_body": True,
                }
            )
            # returning without the rest makes uvicorn close the connection
        else:
            await _json(send, 200, payload)

    async def _stream(
        self,
        body: dict[str, Any],
        model: str,
        parts: list[str],
        finish: str,
        usage: dict[str, Any],
        fault: Fault | None,
        receive: Receive,
        send: Send,
    ) -> None:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        cid, created = wire.new_id(), int(time.time())

        def chunk(**kw: Any) -> bytes:
            return wire.sse(wire.chunk(cid, model, created, with_usage_field=include_usage, **kw))

        await _start(
            send, 200, "text/event-stream; charset=utf-8", [(b"cache-control", b"no-cache")]
        )
        await _more(send, chunk(delta={"role": "assistant", "content": "", "refusal": None}))
        for i, piece in enumerate(parts):
            if await self._mid_stream_fault(fault, i, send, receive):
                return
            if self.state.chunk_delay_s and await self._wait_or_stop(self.state.chunk_delay_s):
                return
            await _more(send, chunk(delta={"content": piece}))
        if await self._mid_stream_fault(fault, len(parts), send, receive):
            return
        await _more(send, chunk(delta={}, finish=finish))
        if include_usage:
            await _more(send, chunk(no_choices=True, usage_=usage))
        await send({"type": "http.response.body", "body": wire.SSE_DONE, "more_body": False})

    async def _mid_stream_fault(
        self, fault: Fault | None, sent: int, send: Send, receive: Receive
    ) -> bool:
        """Apply a mid-stream fault due after ``sent`` content chunks; True: the stream ends."""
        if not isinstance(fault, Hang | Disconnect | MalformedJson | ErrorEvent):
            return False
        if fault.after_chunks != sent:
            return False
        if isinstance(fault, Hang):
            await self._hang(receive)
        elif isinstance(fault, MalformedJson):
            await _more(send, b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
            await send({"type": "http.response.body", "body": wire.SSE_DONE, "more_body": False})
        elif isinstance(fault, ErrorEvent):
            err = {
                "error": {
                    "message": "The server had an error while generating.",
                    "type": "server_error",
                    "param": None,
                    "code": fault.code,
                }
            }
            await _more(send, wire.sse(err))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        # Disconnect: return without finishing the body; uvicorn then drops the connection
        return True

    async def _wait_or_stop(self, delay_s: float) -> bool:
        """Sleep ``delay_s``; True when the server began stopping meanwhile."""
        assert self.stopping is not None
        try:
            await asyncio.wait_for(self.stopping.wait(), delay_s)
        except TimeoutError:
            return False
        return True

    async def _hang(self, receive: Receive) -> None:
        """Wait until the client disconnects or the server stops."""
        assert self.stopping is not None
        gone = asyncio.ensure_future(_until_disconnect(receive))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({gone, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (gone, stop):
                t.cancel()
            await asyncio.gather(gone, stop, return_exceptions=True)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _start(
    send: Send, status: int, content_type: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"x-request-id", b"req_fake"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _more(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _json(
    send: Send, status: int, payload: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _start(
        send,
        status,
        "application/json",
        [(b"content-length", b"%d" % len(payload)), *(extra or [])],
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})
