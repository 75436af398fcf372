"""The request pipeline: the one place that orders the steps of answering a chat request.

``ChatPipeline.stream(request)`` is the whole flow, shared by the gRPC and HTTP transports:

1. validate the request against the daemon's limits;
2. plan it (:mod:`.plan`): privacy scan, the policy's verdict, the router's decision;
3. emit the decision, then the answer's text deltas, then a final event with usage, timing,
   cost and the ledger id:

   a. LOCAL: the local model answers through the router's answer gate, which may hold text back
      (cascade) and may hand off mid-answer (low confidence, or the model's own handoff call);
   b. CLOUD: :class:`~.handoff.CloudLeg` (ledger intent first, redact, reserve, call, restore,
      settle, ledger outcome); when the cloud cannot be used the local model answers instead
      (LOCAL_FALLBACK with the reason), unless the policy says to fail.

Cancelling the consumer (the client went away) cancels the generation: the engine frees the
request at its next step, the cloud call is closed, and the ``CancelledError`` propagates.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace

from handoffd.domain import (
    ChatEvent,
    ChatRequest,
    ChatResult,
    Decision,
    DecisionEvent,
    DeltaEvent,
    FinalEvent,
    FinishReason,
    HandoffPreference,
    Route,
    Timing,
    Usage,
)
from handoffd.errors import PolicyDenied
from handoffd.logsetup import get_logger
from handoffd.metrics import Metrics
from handoffd.metrics import Outcome as MetricsOutcome
from handoffd.pipeline.handoff import CloudLeg, CloudRun, Fallback
from handoffd.pipeline.local import LocalModel, LocalRun, stream_local
from handoffd.pipeline.plan import Plan, Planner, redact_plan
from handoffd.pipeline.validate import validate_request
from handoffd.policy import PolicyEvaluator, PolicyHolder, RateLimiter
from handoffd.router import GateStep
from handoffd.router.rules import CLOUD_NOT_ALLOWED
from handoffd.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Explanation:
    """What ``Explain`` shows: the decision, without generating or sending anything."""

    decision: Decision
    prompt_tokens: int
    policy_hash: str
    entities: dict[str, int]
    #: the text that would be sent to the cloud, placeholders in place ("" if nothing would be)
    redacted_preview: str


class ChatPipeline:
    def __init__(
        self,
        model: LocalModel,
        settings: Settings,
        *,
        policy: PolicyHolder,
        evaluator: PolicyEvaluator | None = None,
        cloud: CloudLeg | None = None,
        limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._model = model
        self._limiter = limiter
        self._settings = settings
        self._policy = policy
        self._cloud = cloud
        self._metrics = metrics
        self._planner = Planner(
            model, evaluator or PolicyEvaluator(), cloud_available=cloud is not None
        )

    @property
    def model(self) -> LocalModel:
        return self._model

    def cloud_targets(self) -> list[tuple[str, str, str]]:
        """(name, model, breaker state) per configured cloud target."""
        return self._cloud.target_status() if self._cloud is not None else []

    @property
    def policy_hash(self) -> str:
        return self._policy.current.hash

    def validate(self, request: ChatRequest) -> None:
        validate_request(
            request,
            max_message_chars=self._settings.server.max_message_chars,
            max_tokens_limit=self._settings.model.max_new_tokens_limit,
        )

    async def plan(self, request: ChatRequest) -> Plan:
        self.validate(request)
        return await self._planner.plan(request, self._policy.current)

    async def explain(self, request: ChatRequest) -> Explanation:
        plan = await self.plan(request)
        preview = ""
        if plan.decision.route is Route.CLOUD:
            result = redact_plan(plan)
            preview = "\n\n".join(
                f"[{m.role.value}] {t}" for m, t in zip(request.messages, result.texts, strict=True)
            )
        return Explanation(
            decision=plan.decision,
            prompt_tokens=plan.prompt_tokens,
            policy_hash=plan.policy_hash,
            entities=plan.entity_counts,
            redacted_preview=preview,
        )

    async def _refuse_if_denied(self, plan: Plan) -> str:
        """Record a policy refusal in the ledger; raise if the request is denied outright."""
        verdict = plan.verdict
        wanted_cloud = plan.request.preference is HandoffPreference.PREFER_CLOUD or any(
            r.rule_id == CLOUD_NOT_ALLOWED for r in plan.decision.reasons
        )
        kept_local = plan.decision.route is Route.LOCAL and wanted_cloud
        ledger_id = ""
        if self._cloud is not None and (verdict.denied or (kept_local and verdict.blocked_by)):
            ledger_id = await self._cloud.record_refusal(plan, verdict.blocked_by)
        if verdict.denied:
            if self._metrics is not None:
                self._metrics.observe_refusal(verdict.blocked_by)
            verdict.raise_if_denied()
        return ledger_id

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        received = time.perf_counter()
        plan = await self.plan(request)
        ledger_id = await self._refuse_if_denied(plan)
        yield DecisionEvent(plan.decision)
        if plan.decision.route is Route.CLOUD:
            async for event in self._stream_routed(plan, received):
                yield event
            return
        run = LocalRun(started=received, prompt_tokens=plan.prompt_tokens)
        handoff: Decision | None = None
        # aclosing: leaving the loop on a handoff must stop the engine's generation at once
        async with contextlib.aclosing(self._answer_locally(plan, run, gated=True)) as answer:
            async for text, handoff in answer:
                if handoff is not None:
                    break
                yield DeltaEvent(text)
        if handoff is not None:  # the local answer's own evidence asked for the cloud
            late = replace(
                plan,
                decision=replace(
                    handoff,
                    reasons=(*handoff.reasons, *plan.decision.reasons),
                    scores={**plan.decision.scores, **handoff.scores},
                    cloud_target=handoff.cloud_target or plan.verdict.cloud_target,
                ),
            )
            async for event in self._stream_routed(late, received):
                yield event
            return
        result = self._result(plan, plan.decision, Route.LOCAL, received, run, None, ledger_id)
        self._log(result)
        yield FinalEvent(result)

    async def _answer_locally(
        self, plan: Plan, run: LocalRun, *, gated: bool
    ) -> AsyncGenerator[tuple[str, Decision | None], None]:
        """(text, None) to send, or ("", decision) when the answer gate hands off."""
        request = plan.request
        ticket = None
        if self._limiter is not None:  # rules with applies_to: all limit local answers too
            ticket = self._limiter.admit(
                plan.app_policy.rate_limits,
                app=request.app,
                target=None,
                tokens=plan.prompt_tokens + request.params.max_tokens,
            )
        try:
            async for item in self._generate_gated(plan, run, gated=gated):
                yield item
        finally:
            if ticket is not None:
                ticket.release(used_tokens=plan.prompt_tokens + len(run.chunks))

    async def _generate_gated(
        self, plan: Plan, run: LocalRun, *, gated: bool
    ) -> AsyncIterator[tuple[str, Decision | None]]:
        request, inp = plan.request, plan.route_input
        gate = plan.router.answer_gate(inp) if gated else None
        messages = plan.router.local_messages(inp) if gated else request.messages
        tools = plan.router.local_tools(inp) if gated else None
        async for chunk in stream_local(
            self._model,
            messages,
            request.params,
            run,
            tools=tools,
            priority=request.priority,
            app=request.app,
        ):
            step = gate.feed(chunk) if gate is not None else GateStep(emit=chunk.text)
            if step.emit:
                run.sent(step.emit)
                yield step.emit, None
            if step.handoff and step.decision is not None:
                yield "", step.decision
                return
        if gate is not None:
            step = gate.finish()
            if step.emit:
                run.sent(step.emit)
                yield step.emit, None
            if step.handoff and step.decision is not None:
                yield "", step.decision
                return
            run.gate_decision = gate.decision

    async def _stream_routed(self, plan: Plan, received: float) -> AsyncIterator[ChatEvent]:
        """Answer a CLOUD decision: the cloud leg, or the local model when it cannot be used."""
        decision, route, ledger_id = plan.decision, Route.CLOUD, ""
        cloud_run: CloudRun | None = None
        if self._cloud is not None:
            cloud_run = CloudRun(target=decision.cloud_target or plan.verdict.cloud_target or "")
            try:
                async for text in self._cloud.stream(plan, cloud_run.target, cloud_run):
                    yield DeltaEvent(text)
            except Fallback as fallback:
                if plan.app_policy.cloud.on_failure == "error":
                    raise fallback.error from None
                decision = replace(decision, reasons=(fallback.reason, *decision.reasons))
                ledger_id, cloud_run = cloud_run.ledger_id, None
        local_run: LocalRun | None = None
        if cloud_run is None:
            route = Route.LOCAL_FALLBACK
            local_run = LocalRun(started=received, prompt_tokens=plan.prompt_tokens)
            async for text, _ in self._answer_locally(plan, local_run, gated=False):
                yield DeltaEvent(text)
        result = self._result(plan, decision, route, received, local_run, cloud_run, ledger_id)
        self._log(result)
        yield FinalEvent(result)

    def _result(
        self,
        plan: Plan,
        decision: Decision,
        route: Route,
        received: float,
        local_run: LocalRun | None,
        cloud_run: CloudRun | None,
        ledger_id: str,
    ) -> ChatResult:
        done = time.perf_counter()
        if cloud_run is not None:
            usage, text = cloud_run.usage, cloud_run.text
            model, cost, ledger_id = cloud_run.model, cloud_run.cost_usd, cloud_run.ledger_id
            first, finish, queue_ms = cloud_run.first_text_at, FinishReason.STOP, 0.0
            decode = _rate(usage.completion_tokens, first or done, cloud_run.finished_at or done)
        elif local_run is not None:
            if local_run.gate_decision is not None:
                decision = _merge_gate(decision, local_run.gate_decision)
            usage = Usage(plan.prompt_tokens, local_run.usage.completion_tokens)
            text, model, cost = local_run.text, self._model.info.name, 0.0
            first, finish = local_run.first_sent_at, local_run.finish_reason
            decode, queue_ms = local_run.decode_tokens_per_s(), local_run.queue_ms
        else:  # pragma: no cover - one of the two legs always runs
            raise RuntimeError("neither the local model nor the cloud answered")
        first = first if first is not None else done
        return ChatResult(
            text=text,
            route=route,
            decision=decision,
            model=model,
            usage=usage,
            timing=Timing(
                queue_ms=queue_ms,
                ttft_ms=(first - received) * 1000.0,
                total_ms=(done - received) * 1000.0,
                decode_tokens_per_s=decode,
            ),
            cost_usd=cost,
            ledger_id=ledger_id,
            finish_reason=finish,
            policy_hash=plan.policy_hash,
        )

    def _log(self, result: ChatResult) -> None:
        log.info(
            "request.done",
            route=result.route.value,
            strategy=result.decision.strategy,
            rule_ids=list(result.decision.rule_ids),
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            ttft_ms=round(result.timing.ttft_ms, 1),
            total_ms=round(result.timing.total_ms, 1),
            cost_usd=result.cost_usd,
            ledger_id=result.ledger_id,
            finish_reason=result.finish_reason.value,
            policy_hash=result.policy_hash,
        )
        if self._metrics is not None:
            self._metrics.observe_request(
                result.route,
                MetricsOutcome.OK,
                ttft_s=result.timing.ttft_ms / 1000.0,
                total_s=result.timing.total_ms / 1000.0,
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
            )
            if result.route is Route.LOCAL and result.timing.decode_tokens_per_s > 0:
                self._metrics.observe_decode_speed(result.timing.decode_tokens_per_s)
            if result.cost_usd > 0 and result.decision.cloud_target:
                self._metrics.observe_spend(result.decision.cloud_target, result.cost_usd)

    async def complete(self, request: ChatRequest) -> ChatResult:
        async for event in self.stream(request):
            if isinstance(event, FinalEvent):
                return event.result
        raise RuntimeError("pipeline ended without a final event")  # pragma: no cover


def _rate(tokens: int, first: float, last: float) -> float:
    elapsed = last - first
    return (tokens - 1) / elapsed if tokens > 1 and elapsed > 0 else 0.0


def _merge_gate(decision: Decision, gate: Decision) -> Decision:
    """The answer gate's verdict (confident, or flagged) leads the explanation."""
    return replace(
        decision,
        strategy=gate.strategy,
        reasons=(*gate.reasons, *decision.reasons),
        scores={**decision.scores, **gate.scores},
    )


__all__ = ["ChatPipeline", "Explanation", "PolicyDenied"]
