"""The ``handoffd.v1.Handoffd`` servicer: translate, delegate to the pipeline, map errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from handoffd import __version__
from handoffd.domain import Caller, DecisionEvent, DeltaEvent, FinalEvent
from handoffd.errors import Unavailable
from handoffd.pipeline import ChatPipeline
from handoffd.rpc import convert
from handoffd.rpc.errors import stream_errors, unary_errors
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]
CallerResolver = Callable[[Context], Caller]


def default_caller(_: Context) -> Caller:
    return Caller(app="default")


@dataclass
class ServingState:
    """The daemon's serving state; the server fills in the pipeline once the model is loaded."""

    pipeline: ChatPipeline | None = None
    ready: bool = False
    started: float = field(default_factory=time.monotonic)
    active_requests: int = 0

    #: how many requests wait for the engine (set by the server once the model is loaded)
    queued_requests: Callable[[], int] = lambda: 0

    def require_pipeline(self) -> ChatPipeline:
        if self.pipeline is None or not self.ready:
            raise Unavailable("the model is still loading (or the daemon is stopping): retry soon")
        return self.pipeline


class HandoffdServicer(pb_grpc.HandoffdServicer):
    def __init__(
        self,
        state: ServingState,
        *,
        resolve_caller: CallerResolver = default_caller,
    ) -> None:
        self._state = state
        self._resolve_caller = resolve_caller

    def _request(self, request: pb.ChatRequest, context: Context) -> Any:
        return convert.request_from_proto(request, app=self._resolve_caller(context).app)

    @unary_errors
    async def Chat(self, request: pb.ChatRequest, context: Context) -> pb.ChatResponse:
        chat = self._request(request, context)
        self._state.active_requests += 1
        try:
            result = await self._state.require_pipeline().complete(chat)
        finally:
            self._state.active_requests -= 1
        return convert.result_to_proto(result, client_request_id=chat.client_request_id)

    @stream_errors
    async def ChatStream(
        self, request: pb.ChatRequest, context: Context
    ) -> AsyncIterator[pb.ChatEvent]:
        chat = self._request(request, context)
        self._state.active_requests += 1
        try:
            async for event in self._state.require_pipeline().stream(chat):
                if isinstance(event, DeltaEvent):
                    yield pb.ChatEvent(delta=pb.TokenDelta(text=event.text))
                elif isinstance(event, DecisionEvent):
                    yield pb.ChatEvent(
                        decision=convert.decision_to_proto(
                            event.decision, policy_hash=self._state.require_pipeline().policy_hash
                        )
                    )
                elif isinstance(event, FinalEvent):
                    yield pb.ChatEvent(
                        final=convert.result_to_proto(
                            event.result, client_request_id=chat.client_request_id
                        )
                    )
        finally:
            self._state.active_requests -= 1

    @unary_errors
    async def Explain(self, request: pb.ChatRequest, context: Context) -> pb.ExplainResponse:
        chat = self._request(request, context)
        explanation = await self._state.require_pipeline().explain(chat)
        return pb.ExplainResponse(
            decision=convert.decision_to_proto(
                explanation.decision, policy_hash=explanation.policy_hash
            ),
            prompt_tokens=explanation.prompt_tokens,
            redacted_preview=explanation.redacted_preview,
            entities=explanation.entities,
        )

    @unary_errors
    async def Status(self, request: pb.StatusRequest, context: Context) -> pb.StatusResponse:
        pipeline = self._state.pipeline
        info = pipeline.model.info if pipeline is not None else None
        return pb.StatusResponse(
            version=__version__,
            ready=self._state.ready,
            model=info.name if info else "",
            execution_provider=info.execution_provider if info else "",
            uptime_s=time.monotonic() - self._state.started,
            active_requests=self._state.active_requests,
            queued_requests=self._state.queued_requests(),
            policy_hash=pipeline.policy_hash if pipeline is not None else "",
            cloud_targets=[
                pb.CloudTargetStatus(name=name, model=model, breaker=breaker)
                for name, model, breaker in (pipeline.cloud_targets() if pipeline else [])
            ],
        )

    @unary_errors
    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[convert.model_info_to_proto(self._state.require_pipeline().model.info)]
        )
