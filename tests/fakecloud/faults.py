"""Faults the fake cloud can inject into its answers (see :meth:`FakeCloud.inject`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimited:
    """HTTP 429 with ``Retry-After: retry_after_s`` and/or ``retry-after-ms: retry_after_ms``."""

    retry_after_s: float | None = 1.0
    retry_after_ms: int | None = None


@dataclass(frozen=True)
class HttpError:
    """An OpenAI-style JSON error with this status (500, 503, 400, 401, ...)."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None
    message: str = "The server had an error while processing your request."


@dataclass(frozen=True)
class SlowFirstByte:
    """Wait ``delay_s`` before sending anything, then answer normally."""

    delay_s: float


@dataclass(frozen=True)
class Hang:
    """Never finish: stall before the first byte (``after_chunks=0``) or, streaming, after that
    many content chunks. Ends only when the client goes away or the server stops."""

    after_chunks: int = 0


@dataclass(frozen=True)
class Disconnect:
    """Drop the connection part way: streaming, after ``after_chunks`` content chunks;
    non-streaming, after half the body (``after_chunks`` is ignored)."""

    after_chunks: int = 1


@dataclass(frozen=True)
class MalformedJson:
    """Answer 200 with JSON that does not parse: the whole body (non-streaming) or one SSE
    event after ``after_chunks`` content chunks (streaming)."""

    after_chunks: int = 0


@dataclass(frozen=True)
class ErrorEvent:
    """Streaming: an ``{"error": ...}`` event after ``after_chunks`` content chunks, then the
    end of the stream (as OpenAI does for errors that happen mid-generation)."""

    after_chunks: int = 0
    code: str = "server_error"


Fault = RateLimited | HttpError | SlowFirstByte | Hang | Disconnect | MalformedJson | ErrorEvent
