"""Steps 1 and 2 of a request: the policy's verdict and the router's decision.

:class:`Planner` turns a validated request into a :class:`Plan`: the app's policy, the privacy
findings (never logged), the policy verdict, and the routing decision with every reason. It is
pure apart from one optional forward pass of the local model (the router's pre-generation
score). Privacy fails closed: if the scan fails, the request may not leave the device.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from handoffd.domain import ChatRequest, Decision, HandoffPreference, Reason, Route
from handoffd.errors import ContextOverflow, PolicyDenied
from handoffd.logsetup import get_logger
from handoffd.pipeline.local import LocalModel
from handoffd.policy import (
    AppPolicy,
    EntitySummary,
    LoadedPolicy,
    PolicyEvaluator,
    PolicyVerdict,
    RequestFacts,
)
from handoffd.privacy import (
    Finding,
    PiiScanner,
    RedactionResult,
    Redactor,
    scan_or_fail_closed,
)
from handoffd.router import RouteInput, Router
from handoffd.router.rules import CONTEXT_OVERFLOW

log = get_logger(__name__)

_CACHE_LIMIT = 256
T = TypeVar("T")
#: prompts up to this size are scanned on the event loop (a few ms at most)
_SCAN_INLINE_CHARS = 16 * 1024


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything decided about one request before anything is generated or sent."""

    request: ChatRequest
    prompt_tokens: int
    app_policy: AppPolicy
    verdict: PolicyVerdict
    #: per message, what the privacy scan found (empty when nothing may leave anyway)
    findings: tuple[tuple[Finding, ...], ...]
    router: Router
    route_input: RouteInput
    decision: Decision

    @property
    def policy_hash(self) -> str:
        return self.app_policy.policy_hash

    @property
    def entity_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for found in self.findings:
            for f in found:
                counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
        return counts


def summarize(findings: Sequence[Sequence[Finding]]) -> Mapping[str, EntitySummary]:
    counts: dict[str, int] = {}
    rules: dict[str, dict[str, None]] = {}
    for found in findings:
        for f in found:
            counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
            rules.setdefault(f.entity_type, {})[f.rule_id] = None
    return {t: EntitySummary(count=n, rule_ids=tuple(rules[t])) for t, n in counts.items()}


def _cached(cache: dict[tuple[str, str], T], app: AppPolicy, build: Callable[[], T]) -> T:
    """One object per (policy, app), built on first use; the cache is bounded."""
    key = (app.policy_hash, app.name)
    value = cache.get(key)
    if value is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        value = cache[key] = build()
    return value


def redact_plan(plan: Plan) -> RedactionResult:
    """What would be sent: every message with the verdict's entity actions applied."""
    texts = [m.content for m in plan.request.messages]
    return Redactor().redact(
        texts,
        plan.findings or tuple(() for _ in texts),
        plan.verdict.entity_actions,
        default=plan.app_policy.privacy.default_action,
    )


class Planner:
    def __init__(
        self, model: LocalModel, evaluator: PolicyEvaluator, *, cloud_available: bool
    ) -> None:
        self._model = model
        self._evaluator = evaluator
        self._cloud_available = cloud_available
        # built once per (policy, app): scanners compile patterns, routers load weights
        self._scanners: dict[tuple[str, str], PiiScanner] = {}
        self._routers: dict[tuple[str, str], Router] = {}

    def _scanner(self, app: AppPolicy) -> PiiScanner:
        return _cached(self._scanners, app, lambda: PiiScanner(app.privacy))

    def _router(self, app: AppPolicy) -> Router:
        return _cached(self._routers, app, lambda: Router(app.routing, encode=self._model.encode))

    async def _scan(
        self, app: AppPolicy, request: ChatRequest
    ) -> tuple[tuple[tuple[Finding, ...], ...], PolicyDenied | None]:
        """Scan what would be sent; a failed scan keeps the request on the device. Scans of
        large prompts (~0.3 ms per KB) run in a worker thread so the event loop stays free."""
        if (
            not self._cloud_available
            or request.preference is HandoffPreference.LOCAL_ONLY
            or not app.privacy.enabled
            or not app.cloud.allow
        ):
            return (), None
        texts = [m.content for m in request.messages]
        scanner = self._scanner(app)
        try:
            if sum(len(t) for t in texts) > _SCAN_INLINE_CHARS:
                found = await asyncio.to_thread(scan_or_fail_closed, scanner, texts)
            else:
                found = scan_or_fail_closed(scanner, texts)
        except PolicyDenied as exc:
            return (), exc
        return tuple(tuple(f) for f in found), None

    async def plan(self, request: ChatRequest, policy: LoadedPolicy) -> Plan:
        prompt_tokens = self._model.count_prompt_tokens(request.messages)
        app = policy.for_app(request.app)
        findings, scan_error = await self._scan(app, request)
        facts = RequestFacts(
            app=request.app,
            labels=frozenset(label.casefold() for label in request.labels),
            preference=request.preference,
            prompt_tokens=prompt_tokens,
            max_tokens=request.params.max_tokens,
            entities=summarize(findings),
        )
        verdict = self._evaluator.evaluate(app, facts)
        cloud_allowed = verdict.allowed and self._cloud_available and scan_error is None
        router = self._router(app)
        inp = RouteInput(
            request=request,
            prompt_tokens=prompt_tokens,
            context_window=self._model.info.context_window,
            cloud_allowed=cloud_allowed,
        )
        pre_score = None
        if router.pre_score_needed(inp):
            messages, candidates = router.pre_score_prompt(inp)
            pre_score = await self._model.score_next_token(messages, candidates, app=request.app)
        decision = router.decide(inp, pre_score=pre_score)
        decision = _with_policy_reasons(decision, verdict, scan_error)
        if decision.route is Route.DENIED and not verdict.denied:
            why = "; ".join(r.message for r in decision.reasons)
            if CONTEXT_OVERFLOW in decision.rule_ids:
                raise ContextOverflow(
                    f"messages: {why}. Shorten the conversation or lower max_tokens",
                    field="messages",
                )
            raise PolicyDenied(why, rule_ids=decision.rule_ids)
        if decision.route is Route.CLOUD and decision.cloud_target is None:
            decision = replace(decision, cloud_target=verdict.cloud_target)
        return Plan(
            request=request,
            prompt_tokens=prompt_tokens,
            app_policy=app,
            verdict=verdict,
            findings=findings,
            router=router,
            route_input=inp,
            decision=decision,
        )


def _with_policy_reasons(
    decision: Decision, verdict: PolicyVerdict, scan_error: PolicyDenied | None
) -> Decision:
    """The router's reasons first (they decided), then what the policy said (including why
    nothing may leave, e.g. ``cloud.not_configured`` when no cloud target exists)."""
    extra: list[Reason] = []
    if scan_error is not None:
        extra.extend(Reason(rule, scan_error.message) for rule in scan_error.rule_ids)
    seen = {r.rule_id for r in decision.reasons}
    extra.extend(r for r in verdict.reasons if r.rule_id not in seen)
    if not extra:
        return decision
    return replace(decision, reasons=(*decision.reasons, *extra))
