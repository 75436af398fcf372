"""The gate between the local model's token stream and the client.

While a LOCAL decision is being answered, every generated chunk passes through a
:class:`LocalAnswerGate`, which combines the two in-generation strategies:

1. the :class:`~handoffd.router.handoff_detect.HandoffCallDetector` (``model_handoff``) holds back
   text that might be the start of a ``handoff`` call; when a call completes, the gate says
   ``handoff`` with the model's stated reason (rule ``model_handoff.<format>``);
2. the :class:`~handoffd.router.cascade.CascadeMonitor` (``cascade``) holds back the first K
   tokens, judges their confidence and releases, flags or hands off.

The pipeline's loop::

    gate = router.answer_gate(inp)
    tools = router.local_tools(inp)
    async for chunk in engine.generate(router.local_messages(inp), params, tools=tools):
        step = gate.feed(chunk)
        if step.emit: yield DeltaEvent(step.emit)
        if step.handoff: stop generating; hand off with step.decision
    step = gate.finish()   # then the same handling once more
    final decision: gate.decision or the pre-generation decision

Text already released before a late call (a call after the cascade window) stays sent; the local
answer ends there and the cloud's answer follows.
"""

from __future__ import annotations

from handoffd.domain import Decision, Reason, Route, TokenChunk
from handoffd.router.cascade import CascadeMonitor, GateStep
from handoffd.router.handoff_detect import DetectStep, HandoffCallDetector
from handoffd.router.handoff_tool import HandoffCall

STRATEGY_MODEL_HANDOFF = "model_handoff"


def model_handoff_decision(call: HandoffCall, *, cloud_allowed: bool) -> Decision:
    """CLOUD with the model's stated reason (LOCAL, flagged, when the cloud may not be used)."""
    stated = call.reason or "no reason given"
    reason = Reason(
        f"model_handoff.{call.format}",
        f"the local model asked for the cloud: {stated}",
    )
    if cloud_allowed:
        return Decision(route=Route.CLOUD, strategy=STRATEGY_MODEL_HANDOFF, reasons=(reason,))
    refused = Reason(
        "routing.cloud_not_allowed",
        "the policy does not allow a handoff: the local model's request for the cloud is refused",
    )
    return Decision(route=Route.LOCAL, strategy=STRATEGY_MODEL_HANDOFF, reasons=(reason, refused))


class LocalAnswerGate:
    """Feed every generated chunk; send what it emits; obey ``handoff``. One per request."""

    def __init__(
        self,
        *,
        detector: HandoffCallDetector | None,
        cascade: CascadeMonitor | None,
        cloud_allowed: bool = True,
    ) -> None:
        self._detector = detector
        self._cascade = cascade
        self._cloud_allowed = cloud_allowed
        self._done = False
        #: the decision the local answer's own evidence led to (None: nothing changed)
        self.decision: Decision | None = None
        self.call: HandoffCall | None = None

    @property
    def handed_off(self) -> bool:
        return self._done

    def _on_call(self, call: HandoffCall) -> GateStep | None:
        self.call = call
        decision = model_handoff_decision(call, cloud_allowed=self._cloud_allowed)
        self.decision = decision
        if decision.route is Route.CLOUD:
            self._done = True
            return GateStep(decision=decision, handoff=True)
        return None

    def _pass(self, step: DetectStep, chunk: TokenChunk | None) -> GateStep:
        if step.call is not None:
            handed = self._on_call(step.call)
            if handed is not None:
                return handed
        if self._cascade is None:
            return GateStep(emit=step.emit)
        result = (
            self._cascade.feed(chunk, step.emit)
            if chunk is not None
            else self._cascade.release(step.emit)
        )
        if result.decision is not None and self.call is None:
            self.decision = result.decision
        if result.handoff:
            self._done = True
        return result

    def feed(self, chunk: TokenChunk) -> GateStep:
        """One generated chunk."""
        if self._done:
            return GateStep()
        if self._detector is None:
            return self._pass(DetectStep(emit=chunk.text), chunk)
        return self._pass(self._detector.feed(chunk.text), chunk)

    def finish(self) -> GateStep:
        """The local answer ended: release or hand off what is still held."""
        if self._done:
            return GateStep()
        emitted: list[str] = []
        if self._detector is not None:
            step = self._pass(self._detector.finish(), None)
            if step.handoff:
                return step
            emitted.append(step.emit)
        if self._cascade is not None:
            result = self._cascade.finish()
            if result.decision is not None and self.call is None:
                self.decision = result.decision
            if result.handoff:
                self._done = True
                return result
            emitted.append(result.emit)
            return GateStep(emit="".join(emitted), decision=result.decision)
        return GateStep(emit="".join(emitted))
