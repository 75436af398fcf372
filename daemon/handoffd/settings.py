"""Typed daemon configuration.

One YAML file (``handoffd --config FILE`` or ``$HANDOFFD_CONFIG``); every key is optional, so the
daemon runs with no file at all on the default model. Unknown keys are rejected with file:line.
Paths follow the XDG base directories for a user, and the systemd directories when run as a
service (``$STATE_DIRECTORY``, ``$RUNTIME_DIRECTORY``, ``$CONFIGURATION_DIRECTORY``) or as root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from handoffd.errors import ConfigError
from handoffd.schema.auth import AuthSettings
from handoffd.schema.base import Frozen
from handoffd.schema.cloud import CloudSettings
from handoffd.schema.ledger import LedgerSettings
from handoffd.schema.metrics import MetricsSettings, parse_loopback_listen
from handoffd.schema.policy import PolicySettings
from handoffd.yamlload import load_model_file

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"

KNOWN_PROVIDERS = (
    "auto",
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "QNNExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def state_dir() -> Path:
    """Where models, the ledger and keys live."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if _is_root():
        return Path("/var/lib/handoffd")
    return _xdg("XDG_DATA_HOME", ".local/share") / "handoffd"


def runtime_dir() -> Path:
    """Where the Unix sockets live."""
    if os.environ.get("RUNTIME_DIRECTORY"):
        return Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0])
    if _is_root():
        return Path("/run/handoffd")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "handoffd"
    return Path("/tmp") / f"handoffd-{os.getuid()}"  # noqa: S108 - per-user, mode 0700


def default_socket_path() -> Path:
    env = os.environ.get("HANDOFFD_SOCKET")
    return Path(env) if env else runtime_dir() / "handoffd.sock"


def default_model_dir() -> Path:
    return state_dir() / "models" / DEFAULT_MODEL_NAME


class ModelSettings(Frozen):
    #: model folder (Optimum export or onnxruntime-genai build); default: the embedded model
    path: Path | None = None
    #: name shown to clients; default: the folder's manifest name or the folder name
    name: str | None = None
    #: execution providers in order of preference; "auto" expands to what this machine has
    providers: tuple[str, ...] = ("auto",)
    #: onnxruntime intra-op threads (0: onnxruntime decides)
    intra_op_threads: Annotated[int, Field(ge=0, le=256)] = 0
    #: verify the sha256 of every model file against its manifest at load
    verify_manifest: bool = True
    #: the largest max_tokens a client may ask for
    max_new_tokens_limit: Annotated[int, Field(ge=1, le=1_000_000)] = 4096
    #: requests decoded together in one batched step (continuous batching)
    max_batch_size: Annotated[int, Field(ge=1, le=64)] = 8
    #: memory for the KV cache of running requests, MiB (a lone request is always admitted)
    kv_cache_mb: Annotated[int, Field(ge=1, le=1 << 20)] = 1024
    #: long prompts are prefilled in chunks of this many tokens between decode steps
    prefill_chunk_tokens: Annotated[int, Field(ge=1, le=1 << 16)] = 256
    #: requests waiting for a batch slot; beyond it new requests get RESOURCE_EXHAUSTED
    max_queued: Annotated[int, Field(ge=1, le=1 << 16)] = 256
    #: cap on the context window (0: the model's own)
    max_context_tokens: Annotated[int, Field(ge=0, le=1 << 22)] = 0
    #: KV of finished requests kept for the same app's next prompts (system prompt, earlier
    #: chat turns), MiB; 0 turns the prefix cache off
    prefix_cache_mb: Annotated[int, Field(ge=0, le=1 << 20)] = 128

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("list at least one provider, e.g. [auto] or [CPUExecutionProvider]")
        for p in value:
            if p not in KNOWN_PROVIDERS:
                choices = ", ".join(KNOWN_PROVIDERS)
                raise ValueError(f"unknown provider {p!r}; choose from {choices}")
        return value

    def resolved_path(self) -> Path:
        return self.path if self.path is not None else default_model_dir()


class ServerSettings(Frozen):
    #: Unix socket for local apps; default $XDG_RUNTIME_DIR/handoffd/handoffd.sock
    socket: Path | None = None
    #: file mode of the socket (octal string)
    socket_mode: str = "0660"
    #: optional TCP listener, loopback only, e.g. "127.0.0.1:50051"
    tcp: str | None = None
    #: seconds that running streams get to finish on SIGTERM before they are aborted
    grace_period_s: Annotated[float, Field(ge=0, le=600)] = 10.0
    #: largest request a client may send, bytes
    max_request_bytes: Annotated[int, Field(ge=1024, le=64 << 20)] = 4 << 20
    #: largest single message content, characters
    max_message_chars: Annotated[int, Field(ge=1, le=16 << 20)] = 1 << 20
    #: requests served at once; more wait in the engine's queue
    max_concurrent_streams: Annotated[int, Field(ge=1, le=4096)] = 64

    @field_validator("tcp")
    @classmethod
    def _loopback_only(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT such as 127.0.0.1:50051, got {value!r}")
        if host not in ("127.0.0.1", "localhost", "[::1]", "::1"):
            raise ValueError(
                f"TCP must listen on loopback (127.0.0.1 or [::1]), got {host!r}: "
                "use a Unix socket or a reverse proxy for anything else"
            )
        return value

    @field_validator("socket_mode")
    @classmethod
    def _octal(cls, value: str) -> str:
        try:
            mode = int(value, 8)
        except ValueError:
            raise ValueError(f"expected an octal mode such as '0660', got {value!r}") from None
        if mode & 0o007:
            raise ValueError(f"socket mode {value} lets every user connect: use 0600 or 0660")
        return value

    def resolved_socket(self) -> Path:
        return self.socket if self.socket is not None else default_socket_path()


class HttpSettings(Frozen):
    """``http:`` — the OpenAI-compatible facade (off unless ``listen`` is set)."""

    #: loopback address, e.g. "127.0.0.1:8080"; callers need an app token (handoffctl apps add)
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _loopback(cls, value: str | None) -> str | None:
        if value is not None:
            parse_loopback_listen(value)
        return value


class LogSettings(Frozen):
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: auto: console on a TTY, JSON otherwise (journald)
    format: Literal["auto", "json", "console"] = "auto"


class Settings(Frozen):
    model: ModelSettings = ModelSettings()
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    http: HttpSettings = HttpSettings()
    cloud: CloudSettings = CloudSettings()
    policy: PolicySettings = PolicySettings()
    ledger: LedgerSettings = LedgerSettings()
    auth: AuthSettings = AuthSettings()
    metrics: MetricsSettings = MetricsSettings()


def load_settings(path: Path | None = None) -> Settings:
    """Load the config from ``path``, ``$HANDOFFD_CONFIG``, or use the defaults."""
    if path is None:
        env = os.environ.get("HANDOFFD_CONFIG")
        path = Path(env) if env else None
    if path is None:
        return Settings()
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; pass the YAML file itself")
    return load_model_file(Settings, path)
