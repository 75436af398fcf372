"""Step 3b: hand a request off to the cloud, in the only order that fails closed.

1. redact what is sent, with the actions the policy's verdict gave (a failure: nothing is sent);
2. write the ledger's **intent** entry and wait until it is durable (cannot write: not sent);
3. admit the call to the rate limits and reserve its worst-case cost against the budgets;
4. stream the cloud's answer, restoring pseudonym placeholders as it arrives;
5. settle the real cost and write the ledger's **outcome** entry.

A failure before the first byte of the answer reached the client raises :class:`Fallback`: the
caller answers locally (route LOCAL_FALLBACK), unless the policy says to fail. Refusals of rate
limits and budgets are written to the ledger as ``refused``; cloud failures as ``fallback`` or
``failed``. Cancellation settles the worst case (the provider may have billed) and records it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from handoffd.domain import Message, Reason, Usage
from handoffd.errors import (
    CloudError,
    CloudUnavailable,
    DeadlineExceeded,
    HandoffdError,
    PolicyDenied,
    ResourceExhausted,
)
from handoffd.ledger import AuditLedger, HandoffIntent, HandoffOutcome, HandoffRefusal, Outcome
from handoffd.logsetup import get_logger
from handoffd.pipeline.plan import Plan, redact_plan
from handoffd.policy import CloudAdmission
from handoffd.privacy import FAIL_CLOSED_RULE, PlaceholderRestorer, RedactionResult

if TYPE_CHECKING:  # the OpenAI SDK is imported only when a cloud target is configured
    from handoffd.cloud import CloudClient

log = get_logger(__name__)


class Fallback(Exception):
    """The handoff did not happen (or failed before any answer text); answer locally."""

    def __init__(self, reason: Reason, error: HandoffdError) -> None:
        super().__init__(reason.message)
        self.reason = reason
        self.error = error


@dataclass
class CloudRun:
    """What one cloud answer produced, filled in as it streams."""

    target: str
    model: str = ""
    text_parts: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    ledger_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    first_text_at: float | None = None
    finished_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def add(self, text: str) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.perf_counter()
        self.text_parts.append(text)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


def _fallback_reason(error: HandoffdError) -> Reason:
    if isinstance(error, ResourceExhausted | PolicyDenied) and error.rule_ids:
        return Reason(error.rule_ids[0], error.message)
    if isinstance(error, CloudUnavailable):
        return Reason("cloud.unavailable", f"the cloud could not be used: {error.message}")
    if isinstance(error, DeadlineExceeded):
        return Reason("cloud.deadline", f"the cloud did not answer in time: {error.message}")
    if isinstance(error, CloudError):
        return Reason("cloud.error", f"the cloud refused the request: {error.message}")
    return Reason("ledger.unavailable", f"the handoff could not be recorded: {error.message}")


class CloudLeg:
    def __init__(self, cloud: CloudClient, admission: CloudAdmission, ledger: AuditLedger) -> None:
        self._cloud = cloud
        self._admission = admission
        self._ledger = ledger

    def target_status(self) -> list[tuple[str, str, str]]:
        """(name, model, breaker state) of every cloud target."""
        return [
            (name, self._cloud.target(name).model, self._cloud.breaker_state(name))
            for name in self._cloud.targets()
        ]

    def redact(self, plan: Plan) -> RedactionResult:
        try:
            return redact_plan(plan)
        except Exception as exc:
            log.error("privacy.redact_failed", error_class=type(exc).__name__)
            raise Fallback(
                Reason(FAIL_CLOSED_RULE, "redaction failed, so nothing was sent off the device"),
                PolicyDenied("redaction failed", rule_ids=(FAIL_CLOSED_RULE,)),
            ) from None

    async def _record_intent(
        self, plan: Plan, target: str, redaction: RedactionResult, model: str
    ) -> str:
        """Write the intent and wait until it is durable; without it nothing is sent."""
        request = plan.request
        worst = self._cloud.target(target).cost_usd(plan.prompt_tokens, request.params.max_tokens)
        intent = HandoffIntent(
            app=request.app,
            prompt_hmac=self._ledger.prompt_digest("\n".join(redaction.texts)),
            cloud_target=target,
            cloud_model=model,
            client_request_id=request.client_request_id,
            strategy=plan.decision.strategy,
            scores=dict(plan.decision.scores),
            rule_ids=plan.decision.rule_ids,
            policy_hash=plan.policy_hash,
            redaction=dict(redaction.actions),
            estimated_tokens_in=plan.prompt_tokens,
            estimated_cost_usd=worst or 0.0,
        )
        try:
            return await self._ledger.record_intent(intent)
        except Exception as exc:
            log.error("ledger.intent_failed", error_class=type(exc).__name__)
            error = HandoffdError(f"ledger write failed ({type(exc).__name__})")
            raise Fallback(_fallback_reason(error), error) from None

    async def stream(self, plan: Plan, target: str, run: CloudRun) -> AsyncIterator[str]:
        """Yield the cloud's answer text; raise :class:`Fallback` if nothing was answered."""
        redaction = self.redact(plan)
        if redaction.blocked:  # the verdict normally catches this; never send a blocked value
            raise Fallback(
                Reason(redaction.blocked_rule_ids[0], "a value that may not leave was found"),
                PolicyDenied("blocked entity", rule_ids=redaction.blocked_rule_ids),
            )
        run.model = self._cloud.target(target).model
        run.ledger_id = await self._record_intent(plan, target, redaction, run.model)
        outcome: HandoffOutcome | None = None
        try:
            async for text in self._call(plan, target, run, redaction):
                yield text
            outcome = HandoffOutcome(
                outcome=Outcome.SENT,
                tokens_in=run.usage.prompt_tokens,
                tokens_out=run.usage.completion_tokens,
                settled_cost_usd=run.cost_usd,
                latency_ms=run.elapsed_ms(),
                cloud_model=run.model,
            )
        except (ResourceExhausted, PolicyDenied) as exc:
            outcome = HandoffOutcome(
                outcome=Outcome.REFUSED, error_class=type(exc).__name__, rule_ids=exc.rule_ids
            )
            raise Fallback(_fallback_reason(exc), exc) from None
        except (CloudUnavailable, CloudError, DeadlineExceeded) as exc:
            delivered = bool(run.text_parts)
            outcome = HandoffOutcome(
                outcome=Outcome.FAILED if delivered else Outcome.FALLBACK,
                error_class=type(exc).__name__,
                latency_ms=run.elapsed_ms(),
            )
            if delivered:
                raise
            raise Fallback(_fallback_reason(exc), exc) from None
        except BaseException as exc:
            outcome = HandoffOutcome(
                outcome=Outcome.FAILED, error_class=type(exc).__name__, latency_ms=run.elapsed_ms()
            )
            raise
        finally:
            run.finished_at = time.perf_counter()
            if outcome is not None:
                await asyncio.shield(self._record_outcome(run.ledger_id, outcome))

    async def _call(
        self, plan: Plan, target: str, run: CloudRun, redaction: RedactionResult
    ) -> AsyncIterator[str]:
        """Admit, reserve, stream with placeholders restored, settle."""
        request = plan.request
        sent = tuple(
            Message(m.role, text) for m, text in zip(request.messages, redaction.texts, strict=True)
        )
        async with self._admission.hold(
            plan.app_policy,
            app=request.app,
            target=target,
            prompt_tokens=plan.prompt_tokens,
            max_tokens=request.params.max_tokens,
            request_id=run.ledger_id,
        ) as hold:
            restorer = PlaceholderRestorer(redaction.placeholders)
            async for delta in self._cloud.stream_chat(target, sent, request.params):
                if delta.final:
                    if delta.usage is not None:
                        u = delta.usage
                        hold.record(u.prompt_tokens, u.completion_tokens, u.cached_prompt_tokens)
                        run.usage = u.to_usage()
                    run.model = delta.model or run.model
                    continue
                text = restorer.feed(delta.text)
                if text:
                    run.add(text)
                    yield text
            tail = restorer.flush()
            if tail:
                run.add(tail)
                yield tail
        run.cost_usd = hold.cost_usd

    async def _record_outcome(self, intent_id: str, outcome: HandoffOutcome) -> None:
        try:
            await self._ledger.record_outcome(intent_id, outcome)
        except Exception as exc:
            log.error("ledger.outcome_failed", error_class=type(exc).__name__, intent=intent_id)

    async def record_refusal(self, plan: Plan, rule_ids: tuple[str, ...]) -> str:
        """A handoff the policy refused: the request was denied, or kept on the device although
        the router would have sent it. Fails closed like an intent: no entry, no answer."""
        texts = "\n".join(m.content for m in plan.request.messages)
        return await self._ledger.record_refusal(
            HandoffRefusal(
                app=plan.request.app,
                prompt_hmac=self._ledger.prompt_digest(texts),
                rule_ids=rule_ids,
                error_class="PolicyDenied",
                client_request_id=plan.request.client_request_id,
                strategy=plan.decision.strategy,
                scores=dict(plan.decision.scores),
                policy_hash=plan.policy_hash,
                redaction=plan.entity_counts,
                estimated_tokens_in=plan.prompt_tokens,
            )
        )
