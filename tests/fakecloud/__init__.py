"""A fake OpenAI-compatible cloud for tests: a real HTTP server on 127.0.0.1 speaking the Chat
Completions wire format (JSON and SSE streaming), recording every request it receives, with
scriptable answers and injectable faults. See :class:`FakeCloud`.
"""

from tests.fakecloud.app import ECHO, RecordedRequest
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
from tests.fakecloud.server import FakeCloud

__all__ = [
    "ECHO",
    "Disconnect",
    "ErrorEvent",
    "FakeCloud",
    "Fault",
    "Hang",
    "HttpError",
    "MalformedJson",
    "RateLimited",
    "RecordedRequest",
    "SlowFirstByte",
]
