"""What went wrong with one attempt at a cloud call, and what the caller is told.

An :class:`AttemptFailure` is classified once, where the failure is caught; the client then asks
it whether a retry may help, whether the target counts as down (circuit breaker), and which error
of :mod:`handoffd.errors` the caller gets. Messages name the target, the HTTP status and the fix;
they never hold the API key, the prompt or the server's free-text error message (servers echo
prompt fragments and masked keys there). Only short identifier-like ``type``/``code`` fields of
the server's error body are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from handoffd.errors import CloudError, CloudUnavailable, HandoffdError

_IDENT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

#: statuses a later attempt may get right (as openai-python retries them)
RETRYABLE_STATUSES = frozenset({408, 409, 429})


class FailureKind(StrEnum):
    CONNECT = "connect"  # no connection, reset, refused, TLS
    TIMEOUT = "timeout"  # a per-target timeout (connect, first byte, total) ran out
    STATUS = "status"  # the server answered with an HTTP error status
    MALFORMED = "malformed"  # the answer does not parse as Chat Completions
    TRUNCATED = "truncated"  # the stream ended without a finish_reason
    BROKEN = "broken"  # the connection broke in the middle of the answer
    STREAM_ERROR = "stream_error"  # the server sent an error event inside the stream


@dataclass(eq=False)
class AttemptFailure(Exception):
    kind: FailureKind
    #: one line for logs and messages: what happened, without secrets or content
    detail: str
    status: int | None = None
    retry_after_s: float | None = None
    #: ``type``/``code`` from the server's error body, when identifier-like
    error_code: str = ""

    @property
    def retryable(self) -> bool:
        if self.kind is FailureKind.STATUS:
            return self.status is not None and (
                self.status in RETRYABLE_STATUSES or self.status >= 500
            )
        return self.kind is not FailureKind.MALFORMED

    @property
    def target_down(self) -> bool:
        """Does this count against the circuit breaker? A 4xx means the target is up and said
        no to this request; everything else says the target does not work."""
        if self.kind is FailureKind.STATUS and self.status is not None:
            return self.status in RETRYABLE_STATUSES or self.status >= 500
        return True


def error_code_from_body(body: object) -> str:
    """``type/code`` of an OpenAI-style error body, keeping only identifier-like values."""
    if not isinstance(body, dict):
        return ""
    parts = []
    for key in ("type", "code"):
        value = body.get(key)
        if isinstance(value, str) and _IDENT.fullmatch(value):
            parts.append(value)
    return "/".join(parts)


def to_error(failure: AttemptFailure, target: str, attempts: int, key_source: str) -> HandoffdError:
    """The error the caller sees after the last attempt failed with ``failure``."""
    tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
    code = f" ({failure.error_code})" if failure.error_code else ""
    if failure.kind is FailureKind.STATUS and failure.status is not None:
        status = failure.status
        if status == 429:
            wait = (
                f"; it asked to wait {failure.retry_after_s:g} s"
                if failure.retry_after_s is not None
                else ""
            )
            return CloudUnavailable(
                f"cloud target {target!r} rate-limited the request (HTTP 429{code}) {tries}"
                f"{wait}; retry later or raise retry_after_cap_s"
            )
        if failure.retryable:
            return CloudUnavailable(
                f"cloud target {target!r} failed with HTTP {status}{code} {tries}"
            )
        if status in (401, 403):
            hint = f"check the key in {key_source}"
        elif status == 404:
            hint = "check the target's base_url and model"
        else:
            hint = "the request was refused; check the target's model and limits"
        return CloudError(f"cloud target {target!r} answered HTTP {status}{code}: {hint}")
    if failure.kind is FailureKind.MALFORMED:
        return CloudError(
            f"cloud target {target!r} sent an answer that is not Chat Completions "
            f"({failure.detail}); check that base_url points at an OpenAI-compatible /v1"
        )
    if failure.kind is FailureKind.BROKEN:
        return CloudUnavailable(
            f"cloud target {target!r} broke off the answer part way ({failure.detail}); "
            "not retried because text had already been sent"
        )
    return CloudUnavailable(f"cloud target {target!r}: {failure.detail} {tries}")
