"""When to try a failed cloud call again, and how long to wait first.

Why our own retries and not the SDK's (openai-python 3.57 ``_calculate_retry_timeout``): the SDK
honours ``retry-after-ms`` / ``Retry-After`` up to a fixed 120 s (``MAX_RETRY_AFTER_DELAY``, a
module constant), knows nothing of the caller's deadline, and retries inside one ``create()`` call
where the circuit breaker and the logs cannot see the attempts. So the SDK runs with
``max_retries=0`` and this module decides:

* ``retry-after-ms`` (milliseconds) wins over ``Retry-After`` (seconds or an HTTP date), as in
  the SDK. A server-asked wait up to ``retry_after_cap_s`` is honoured in full; a longer one
  fails the call at once (waiting less than asked would only earn another 429).
* Without a server-asked wait: exponential backoff from ``retry_backoff_s``, doubling per retry,
  at most :data:`MAX_BACKOFF_S`, minus up to 25 % jitter (as the SDK does).
* A wait that would end after the call's deadline is not started: the call fails now.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

MAX_BACKOFF_S = 8.0


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, or ``None`` when it says nothing usable.

    ``headers`` must look names up case-insensitively (httpx headers do).
    """
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if math.isnan(value) or value < 0:
            return None
        return value / divisor
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        when = email.utils.mktime_tz(parsed)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class RetryPolicy:
    def __init__(self, max_retries: int, retry_after_cap_s: float, backoff_s: float) -> None:
        self.max_retries = max_retries
        self.retry_after_cap_s = retry_after_cap_s
        self.backoff_s = backoff_s

    def delay_s(self, retry_number: int, retry_after_s: float | None) -> float | None:
        """The wait before retry number ``retry_number`` (1 for the first retry), or ``None``
        when no retry should be made (retries used up, or the server asks for too long)."""
        if retry_number > self.max_retries:
            return None
        if retry_after_s is not None:
            if not math.isfinite(retry_after_s) or retry_after_s > self.retry_after_cap_s:
                return None
            return retry_after_s
        base = min(self.backoff_s * 2.0 ** (retry_number - 1), MAX_BACKOFF_S)
        return base * (1.0 - 0.25 * random.random())  # noqa: S311 - jitter, not crypto
