"""The one place that builds openai-python clients and reads its exceptions.

Each target gets its own ``AsyncOpenAI`` (its own connection pool) with the SDK's retries off
(see :mod:`handoffd.cloud.retry` for why). The SDK would otherwise pick settings up from the
environment: the key (``OPENAI_API_KEY``) and base URL are always passed explicitly, and the
``OpenAI-Organization`` / ``OpenAI-Project`` headers it would add from ``OPENAI_ORG_ID`` /
``OPENAI_PROJECT_ID`` are suppressed, so that what leaves the device is what the config says.
(``OPENAI_CUSTOM_HEADERS`` is still honoured by the SDK; the systemd unit does not set it.)
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai

from handoffd.cloud.failures import AttemptFailure, FailureKind, error_code_from_body
from handoffd.cloud.keys import ApiKey
from handoffd.cloud.retry import parse_retry_after
from handoffd.schema.cloud import CloudTargetSettings

#: given to the SDK as api_key for keyless targets; :func:`call_options` then drops the header
_NO_KEY = "handoffd-no-key"


def call_options(key: ApiKey | None) -> dict[str, Any]:
    """Extra keyword arguments for every ``create()`` call of a target: a keyless target sends
    no Authorization header (the SDK only accepts that as a per-request omission)."""
    if key is None:
        return {"extra_headers": {"Authorization": openai.Omit()}}
    return {}


def make_sdk_client(settings: CloudTargetSettings, key: ApiKey | None) -> openai.AsyncOpenAI:
    t = settings.timeouts
    headers: dict[str, str | openai.Omit] = {
        "OpenAI-Organization": openai.Omit(),
        "OpenAI-Project": openai.Omit(),
    }
    return openai.AsyncOpenAI(
        api_key=key.reveal() if key is not None else _NO_KEY,
        base_url=settings.base_url,
        max_retries=0,
        # backstops only: first-byte and total deadlines are enforced around each call
        timeout=httpx2.Timeout(
            connect=t.connect_s, read=t.total_s, write=t.total_s, pool=t.total_s
        ),
        default_headers=headers,  # type: ignore[arg-type]
    )


def _cause_name(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause is not None else type(exc).__name__


def failure_from(exc: Exception) -> AttemptFailure | None:
    """Classify an exception raised by the SDK (or httpx under it); ``None``: not ours to
    classify (a bug, let it propagate)."""
    if isinstance(exc, openai.APITimeoutError):
        return AttemptFailure(FailureKind.TIMEOUT, f"timed out ({_cause_name(exc)})")
    if isinstance(exc, openai.APIConnectionError):
        return AttemptFailure(FailureKind.CONNECT, f"connection failed ({_cause_name(exc)})")
    if isinstance(exc, openai.APIStatusError):
        response = exc.response
        return AttemptFailure(
            FailureKind.STATUS,
            f"HTTP {exc.status_code}",
            status=exc.status_code,
            retry_after_s=parse_retry_after(response.headers),
            error_code=error_code_from_body(exc.body),
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return AttemptFailure(FailureKind.MALFORMED, "the response does not match the schema")
    if isinstance(exc, openai.APIError):
        # an {"error": ...} event inside a stream
        return AttemptFailure(
            FailureKind.STREAM_ERROR,
            "the server reported an error inside the stream",
            error_code=error_code_from_body(exc.body),
        )
    if isinstance(exc, json.JSONDecodeError):
        return AttemptFailure(
            FailureKind.MALFORMED, f"invalid JSON at line {exc.lineno} column {exc.colno}"
        )
    if isinstance(exc, httpx2.TimeoutException):
        return AttemptFailure(FailureKind.TIMEOUT, f"timed out ({type(exc).__name__})")
    if isinstance(exc, httpx2.TransportError):
        return AttemptFailure(FailureKind.CONNECT, f"connection failed ({type(exc).__name__})")
    return None
