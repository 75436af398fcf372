"""The request pipeline: the one place that orders the steps of answering a chat request.

``ChatPipeline.stream(request)`` is the whole flow, shared by the gRPC and HTTP transports:

1. validate the request against the daemon's limits;
2. count the prompt with the local model's tokenizer and decide the route (with reasons);
3. emit the decision, then the answer's text deltas, then a final event with usage, timing,
   cost and the ledger id.

Cancelling the consumer (the client went away) cancels the generation: the engine frees the
request at its next step and the ``CancelledError`` propagates.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from handoffd.domain import (
    ChatEvent,
    ChatRequest,
    ChatResult,
    Decision,
    DecisionEvent,
    DeltaEvent,
    FinalEvent,
    HandoffPreference,
    Reason,
    Route,
    Timing,
)
from handoffd.errors import ContextOverflow
from handoffd.logsetup import get_logger
from handoffd.pipeline.local import LocalModel, LocalRun, stream_local
from handoffd.pipeline.validate import validate_request
from handoffd.settings import Settings

log = get_logger(__name__)


class ChatPipeline:
    def __init__(self, model: LocalModel, settings: Settings) -> None:
        self._model = model
        self._settings = settings

    @property
    def model(self) -> LocalModel:
        return self._model

    def validate(self, request: ChatRequest) -> None:
        validate_request(
            request,
            max_message_chars=self._settings.server.max_message_chars,
            max_tokens_limit=self._settings.model.max_new_tokens_limit,
        )

    def decide(self, request: ChatRequest) -> tuple[Decision, int]:
        """The routing decision and the prompt's token count, without generating anything."""
        self.validate(request)
        prompt_tokens = self._model.count_prompt_tokens(request.messages)
        window = self._model.info.context_window
        if prompt_tokens + request.params.max_tokens > window:
            raise ContextOverflow(
                f"messages: the prompt has {prompt_tokens} tokens and max_tokens is "
                f"{request.params.max_tokens}: {prompt_tokens + request.params.max_tokens} > the "
                f"local model's context window of {window}. Shorten the conversation or lower "
                "max_tokens",
                field="messages",
            )
        if request.preference is HandoffPreference.LOCAL_ONLY:
            reason = Reason("preference.local_only", "the app asked to stay on the device")
        else:
            reason = Reason(
                "routing.no_cloud_target",
                "no cloud target is configured, so every request is answered locally",
            )
        return Decision(route=Route.LOCAL, strategy="rules", reasons=(reason,)), prompt_tokens

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        received = time.perf_counter()
        decision, prompt_tokens = self.decide(request)
        yield DecisionEvent(decision)
        run = LocalRun(started=received, prompt_tokens=prompt_tokens)
        first_text_at: float | None = None
        async for chunk in stream_local(
            self._model,
            request.messages,
            request.params,
            run,
            priority=request.priority,
            app=request.app,
        ):
            if chunk.text:
                if first_text_at is None:
                    first_text_at = time.perf_counter()
                yield DeltaEvent(chunk.text)
        done = time.perf_counter()
        first = first_text_at if first_text_at is not None else done
        result = ChatResult(
            text=run.text,
            route=decision.route,
            decision=decision,
            model=self._model.info.name,
            usage=run.usage,
            timing=Timing(
                ttft_ms=(first - received) * 1000.0,
                total_ms=(done - received) * 1000.0,
                decode_tokens_per_s=run.decode_tokens_per_s(),
            ),
            finish_reason=run.finish_reason,
        )
        log.info(
            "request.done",
            route=result.route.value,
            rule_ids=list(decision.rule_ids),
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            ttft_ms=round(result.timing.ttft_ms, 1),
            total_ms=round(result.timing.total_ms, 1),
            finish_reason=result.finish_reason.value,
        )
        yield FinalEvent(result)

    async def complete(self, request: ChatRequest) -> ChatResult:
        async for event in self.stream(request):
            if isinstance(event, FinalEvent):
                return event.result
        raise RuntimeError("pipeline ended without a final event")  # pragma: no cover
