"""A small synchronous client for the v1 API, used by ``handoffctl`` and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from handoffd import errors
from handoffd.errors import HandoffdError, Unavailable
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

_ROLE_NAMES = {
    "system": pb.ROLE_SYSTEM,
    "user": pb.ROLE_USER,
    "assistant": pb.ROLE_ASSISTANT,
    "tool": pb.ROLE_TOOL,
}
_ERRORS_BY_CODE: dict[str, type[HandoffdError]] = {
    cls.grpc_code: cls
    for cls in (
        errors.InternalError,
        errors.ConfigError,
        errors.Cancelled,
        errors.DeadlineExceeded,
        errors.Unavailable,
        errors.ResourceExhausted,
        errors.NotFound,
        errors.PermissionDenied,
        errors.Unauthenticated,
        errors.InvalidRequest,
    )
}

Resp = TypeVar("Resp")

_PREFER = {"auto": pb.AUTO, "local": pb.LOCAL_ONLY, "cloud": pb.PREFER_CLOUD}


def channel_target(address: str | Path) -> str:
    """A Unix socket path or HOST:PORT, as a gRPC target."""
    text = str(address)
    if text.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        return text
    if "/" in text or text.endswith(".sock"):
        return f"unix://{Path(text).absolute()}"
    return text


def build_request(
    prompt: str,
    *,
    system: str | None = None,
    max_tokens: int = 0,
    temperature: float | None = None,
    prefer: str = "auto",
    labels: Sequence[str] = (),
    client_request_id: str = "",
) -> pb.ChatRequest:
    messages = []
    if system:
        messages.append(pb.Message(role=pb.ROLE_SYSTEM, content=system))
    messages.append(pb.Message(role=pb.ROLE_USER, content=prompt))
    params = pb.GenerationParams(max_tokens=max_tokens)
    if temperature is not None:
        params.temperature = temperature
    return pb.ChatRequest(
        messages=messages,
        params=params,
        handoff=_PREFER[prefer],
        labels=list(labels),
        client_request_id=client_request_id,
    )


class HandoffdClient:
    def __init__(
        self, address: str | Path, *, token: str | None = None, timeout_s: float | None = None
    ) -> None:
        self.address = str(address)
        self._channel = grpc.insecure_channel(channel_target(address))
        self._stub = pb_grpc.HandoffdStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout_s

    def __enter__(self) -> HandoffdClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _error(self, error: grpc.RpcError) -> HandoffdError:
        """The project error matching a failed call's status, with the server's message."""
        code: grpc.StatusCode = error.code()
        details = error.details() or code.name
        if code == grpc.StatusCode.UNAVAILABLE and "loading" not in details:
            return Unavailable(
                f"cannot reach handoffd at {self.address} ({details}): start it with "
                "`make run` (or `handoffd`), or point HANDOFFD_SOCKET at its socket"
            )
        cls = _ERRORS_BY_CODE.get(code.name, HandoffdError)
        if issubclass(cls, errors.ResourceExhausted):
            retry = next(
                (str(m.value) for m in error.trailing_metadata() or () if m.key == "retry-after"),
                None,
            )
            return errors.ResourceExhausted(
                details, retry_after_s=float(retry) if retry else None
            )
        return cls(details)

    def chat_stream(self, request: pb.ChatRequest) -> Iterator[pb.ChatEvent]:
        try:
            yield from self._stub.ChatStream(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.RpcError as error:
            raise self._error(error) from None

    def chat(self, request: pb.ChatRequest) -> pb.ChatResponse:
        return self._call(self._stub.Chat, request, pb.ChatResponse)

    def explain(self, request: pb.ChatRequest) -> pb.ExplainResponse:
        return self._call(self._stub.Explain, request, pb.ExplainResponse)

    def status(self) -> pb.StatusResponse:
        return self._call(self._stub.Status, pb.StatusRequest(), pb.StatusResponse)

    def list_models(self) -> pb.ListModelsResponse:
        return self._call(self._stub.ListModels, pb.ListModelsRequest(), pb.ListModelsResponse)

    def _call(self, method: Any, request: Any, response_type: type[Resp]) -> Resp:
        try:
            response = method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise self._error(error) from None
        if not isinstance(response, response_type):  # pragma: no cover - generated stubs
            raise errors.InternalError(f"unexpected response type {type(response).__name__}")
        return response
