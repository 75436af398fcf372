"""Cloud handoff: calls to OpenAI-compatible Chat Completions endpoints (component layer).

The one place that uses the OpenAI SDK and httpx. :class:`CloudClient` is built from
:class:`~handoffd.schema.cloud.CloudSettings`; see :mod:`handoffd.cloud.client` for deadlines,
retries and the circuit breaker.
"""

from handoffd.cloud.breaker import BreakerState
from handoffd.cloud.client import CloudClient
from handoffd.cloud.keys import ApiKey, resolve_api_key
from handoffd.cloud.types import CloudCompletion, CloudDelta, CloudUsage

__all__ = [
    "ApiKey",
    "BreakerState",
    "CloudClient",
    "CloudCompletion",
    "CloudDelta",
    "CloudUsage",
    "resolve_api_key",
]
