"""The ``cloud:`` section of the daemon config: where handoffs may go and how to reach them.

    cloud:
      default_target: openai
      targets:
        openai:
          base_url: https://api.openai.com/v1
          model: gpt-4o-mini
          api_key_credential: openai_key        # systemd LoadCredential=openai_key:/etc/...
          price_usd_per_mtok: {input: 0.15, output: 0.60, cached_input: 0.075}
          timeouts: {connect_s: 5, first_byte_s: 20, total_s: 120}
          max_retries: 2
          retry_after_cap_s: 10
          breaker: {failures_to_open: 5, open_for_s: 30}
          max_concurrent: 8
        lan_vllm:
          base_url: http://127.0.0.1:8000/v1
          model: Qwen/Qwen2.5-7B-Instruct
          no_api_key: true
          price_usd_per_mtok: {input: 0, output: 0}

A target names exactly one source for its API key; the key itself never appears in a config file
that may be world-readable. Prices are USD per one million tokens; a price left out is UNKNOWN,
and :meth:`CloudTargetSettings.cost_usd` answers ``None`` for it so that budget checks can
refuse instead of guessing.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from handoffd.schema.base import Frozen

TARGET_NAME = re.compile(r"[a-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_.@:-]+")

Seconds = Annotated[float, Field(gt=0, le=3600)]
PricePerMTok = Annotated[float, Field(ge=0, le=100_000)]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CloudPrices(Frozen):
    """USD per one million tokens. ``None`` is unknown, never zero."""

    input: PricePerMTok | None = None
    output: PricePerMTok | None = None
    #: price of prompt tokens the provider served from its prompt cache; unknown: the full input
    #: price is charged for them (an upper bound, so budgets stay safe)
    cached_input: PricePerMTok | None = None

    @model_validator(mode="after")
    def _cached_not_above_input(self) -> CloudPrices:
        if (
            self.cached_input is not None
            and self.input is not None
            and self.cached_input > self.input
        ):
            raise ValueError(
                f"cached_input ({self.cached_input}) is above input ({self.input}): "
                "providers charge less for cached prompt tokens, check the price sheet"
            )
        return self


class CloudTimeouts(Frozen):
    #: TCP + TLS connect
    connect_s: Seconds = 5.0
    #: request sent until the first streamed chunk arrives (streaming calls only)
    first_byte_s: Seconds = 20.0
    #: the whole call, retries and waits included
    total_s: Seconds = 120.0

    @model_validator(mode="after")
    def _ordered(self) -> CloudTimeouts:
        if self.first_byte_s > self.total_s or self.connect_s > self.total_s:
            raise ValueError(
                f"connect_s ({self.connect_s}) and first_byte_s ({self.first_byte_s}) must not "
                f"exceed total_s ({self.total_s})"
            )
        return self


class BreakerSettings(Frozen):
    """Circuit breaker: after ``failures_to_open`` failed calls in a row, fail fast for
    ``open_for_s`` seconds, then let one probe call through."""

    failures_to_open: Annotated[int, Field(ge=1, le=1000)] = 5
    open_for_s: Seconds = 30.0


class CloudTargetSettings(Frozen):
    """One OpenAI-compatible endpoint (OpenAI, Azure OpenAI v1, OpenRouter, vLLM, llama.cpp
    server, another handoffd) and one model on it."""

    #: base URL of the Chat Completions API, ending before ``/chat/completions``
    base_url: str
    #: model id sent in each request
    model: Annotated[str, Field(min_length=1, max_length=256)]
    #: a file holding the key (mode 0600); relative paths are taken from the working directory
    api_key_file: Path | None = None
    #: a file name under ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``)
    api_key_credential: str | None = None
    #: an environment variable holding the key
    api_key_env: str | None = None
    #: the endpoint takes no key (a local vLLM or llama.cpp server)
    no_api_key: bool = False
    #: allow ``http://`` to a host that is not loopback (prompts then cross the network unencrypted)
    allow_plain_http: bool = False
    #: the request field that carries the token limit: OpenAI's reasoning models want
    #: ``max_completion_tokens``; most compatible servers know ``max_tokens``
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    price_usd_per_mtok: CloudPrices = CloudPrices()
    timeouts: CloudTimeouts = CloudTimeouts()
    #: retries after the first attempt (never once streamed text has reached the caller)
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    #: the longest ``Retry-After`` wait honoured; a longer one fails the call at once
    retry_after_cap_s: Annotated[float, Field(ge=0, le=600)] = 10.0
    #: first backoff when the server gives no ``Retry-After`` (doubles per retry, up to 8 s)
    retry_backoff_s: Annotated[float, Field(ge=0, le=60)] = 0.5
    breaker: BreakerSettings = BreakerSettings()
    #: calls in flight at once to this target; more wait (within their deadline)
    max_concurrent: Annotated[int, Field(ge=1, le=1024)] = 8

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"expected an http(s) URL such as https://api.openai.com/v1, got {value!r}"
            )
        if parts.username or parts.password:
            raise ValueError(
                "base_url must not carry credentials (user:password@): "
                "use api_key_file, api_key_credential or api_key_env"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not have a query or fragment, got {value!r}")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(
                f"expected an environment variable name such as OPENAI_API_KEY, got {value!r}"
            )
        return value

    @field_validator("api_key_credential")
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        if value is not None and (not _CREDENTIAL_NAME.fullmatch(value) or value in (".", "..")):
            raise ValueError(
                f"expected a credential name as given to systemd LoadCredential= "
                f"(no '/'), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> CloudTargetSettings:
        given = [
            name
            for name, set_ in (
                ("api_key_file", self.api_key_file is not None),
                ("api_key_credential", self.api_key_credential is not None),
                ("api_key_env", self.api_key_env is not None),
                ("no_api_key", self.no_api_key),
            )
            if set_
        ]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                "set exactly one of api_key_file, api_key_credential, api_key_env or "
                f"no_api_key: true (found: {found})"
            )
        return self

    @model_validator(mode="after")
    def _encrypted_off_device(self) -> CloudTargetSettings:
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        if parts.scheme == "http" and not is_loopback_host(host) and not self.allow_plain_http:
            raise ValueError(
                f"base_url {self.base_url} sends prompts unencrypted to {host}: use https, "
                "or set allow_plain_http: true for a trusted network"
            )
        return self

    @property
    def key_source(self) -> str:
        """Where the key comes from, for messages (never the key)."""
        if self.api_key_file is not None:
            return f"api_key_file {self.api_key_file}"
        if self.api_key_credential is not None:
            return f"api_key_credential {self.api_key_credential}"
        if self.api_key_env is not None:
            return f"api_key_env {self.api_key_env}"
        return "no_api_key"

    @property
    def prices_known(self) -> bool:
        """Both the input and the output price are configured."""
        p = self.price_usd_per_mtok
        return p.input is not None and p.output is not None

    def cost_usd(
        self, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0
    ) -> float | None:
        """The price of a call in USD, or ``None`` when the input or output price is unknown.

        ``cached_prompt_tokens`` is the part of ``prompt_tokens`` the provider served from its
        cache; without a ``cached_input`` price they are charged at the full input price.
        """
        p = self.price_usd_per_mtok
        if p.input is None or p.output is None:
            return None
        cached = min(max(cached_prompt_tokens, 0), prompt_tokens)
        cached_price = p.cached_input if p.cached_input is not None else p.input
        micro = (
            (prompt_tokens - cached) * p.input
            + cached * cached_price
            + completion_tokens * p.output
        )
        return micro / 1_000_000


class CloudSettings(Frozen):
    targets: dict[str, CloudTargetSettings] = Field(default_factory=dict)
    #: the target used when a routing rule names none; default: the only target, if just one
    default_target: str | None = None

    @field_validator("targets")
    @classmethod
    def _names(cls, value: dict[str, CloudTargetSettings]) -> dict[str, CloudTargetSettings]:
        for name in value:
            if not TARGET_NAME.fullmatch(name):
                raise ValueError(
                    f"target name {name!r} must be lowercase letters, digits, '_' or '-'"
                )
        return value

    @model_validator(mode="after")
    def _default_exists(self) -> CloudSettings:
        if self.default_target is not None and self.default_target not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none are configured"
            raise ValueError(
                f"default_target {self.default_target!r} is not a target (targets: {known})"
            )
        return self

    def resolved_default(self) -> str | None:
        """``default_target``, else the only target, else ``None``."""
        if self.default_target is not None:
            return self.default_target
        if len(self.targets) == 1:
            return next(iter(self.targets))
        return None
