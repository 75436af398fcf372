"""The confidence cascade: judge the first K tokens of the local answer before anyone sees them.

Streaming behaviour (K = ``cascade.hold_back_tokens``, threshold and statistic from the config,
see :mod:`handoffd.router.confidence`):

1. **Holding.** The first K tokens are held back: nothing is streamed to the client.
2. **Judged at K.** When the K-th token arrives, the confidence of the K held tokens is compared
   with the threshold:

   - confidence >= threshold: the held text is released at once (one delta) and every later
     token streams as it comes (state ``streaming``); the answer is not judged again;
   - confidence < threshold and ``on_low_confidence: handoff``: the local answer is dropped,
     nothing of it is ever streamed, and the decision becomes CLOUD (``cascade.low_confidence``);
     the pipeline stops the local generation and hands the request off;
   - confidence < threshold and ``on_low_confidence: flag`` (or when the cloud may not be used):
     the held text is released and the rest streams, but the decision carries the reason
     ``cascade.low_confidence.flagged`` so the client sees it was unsure.

   With the ``min`` statistic the verdict can come earlier: the minimum only falls, so the first
   held token under the threshold already decides.
3. **Short answers.** An answer that ends (EOS, stop string, max_tokens) before K tokens is judged
   on the tokens it has when the pipeline calls :meth:`CascadeMonitor.finish`; an empty answer
   has confidence -inf and is handed off (or flagged).

Tokens whose text is empty (a UTF-8 character split across tokens) count as tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from handoffd.domain import Decision, Reason, Route, TokenChunk
from handoffd.router.confidence import confidence
from handoffd.schema.routing import CascadeConfig

STRATEGY = "cascade"


class CascadeState(StrEnum):
    HOLDING = "holding"
    STREAMING = "streaming"
    FLAGGED = "flagged"
    HANDED_OFF = "handed_off"


@dataclass(frozen=True, slots=True)
class GateStep:
    """What the pipeline does after one step: send ``emit`` now; if ``handoff``, stop generating
    and hand the request off with ``decision``. ``decision`` is also set when a verdict keeps the
    answer local (confident or flagged): it replaces the request's decision in the final event."""

    emit: str = ""
    decision: Decision | None = None
    handoff: bool = False


class CascadeMonitor:
    """Feed it every generated chunk in order; it says what may be streamed and when to hand off.

    One monitor per request; not thread-safe (the pipeline's request task owns it).
    """

    def __init__(self, config: CascadeConfig, *, can_handoff: bool = True) -> None:
        self._config = config
        self._handoff = can_handoff and config.on_low_confidence == "handoff"
        self._held: list[str] = []
        self._logprobs: list[float] = []
        self._entropies: list[float] = []
        self._judged_confidence: float | None = None
        self._judged_tokens = 0
        self.state = CascadeState.HOLDING
        self.decision: Decision | None = None

    @property
    def tokens_seen(self) -> int:
        return len(self._logprobs)

    @property
    def confidence(self) -> float | None:
        """The confidence the verdict was based on (None while holding)."""
        return self._judged_confidence

    def _stat(self) -> float:
        c = self._config
        return confidence(self._logprobs, self._entropies, c.statistic, c.quantile)

    def feed(self, chunk: TokenChunk, text: str | None = None) -> GateStep:
        """One generated token. ``text`` replaces ``chunk.text`` when an earlier stage (the
        handoff-call detector) holds some text back itself."""
        piece = chunk.text if text is None else text
        if self.state is CascadeState.HANDED_OFF:
            return GateStep()
        self._logprobs.append(chunk.logprob)
        self._entropies.append(chunk.entropy)
        if self.state is not CascadeState.HOLDING:
            return GateStep(emit=piece)
        self._held.append(piece)
        early = self._config.statistic == "min" and chunk.logprob < self._config.threshold
        if early or self.tokens_seen >= self._config.hold_back_tokens:
            return self._judge()
        return GateStep()

    def release(self, text: str) -> GateStep:
        """Text that arrives without a new token (an earlier stage let it go late)."""
        if self.state is CascadeState.HOLDING:
            self._held.append(text)
            return GateStep()
        if self.state is CascadeState.HANDED_OFF:
            return GateStep()
        return GateStep(emit=text)

    def finish(self) -> GateStep:
        """The answer ended: judge a short answer on what it has; otherwise nothing to do."""
        if self.state is CascadeState.HOLDING:
            return self._judge()
        return GateStep()

    def _judge(self) -> GateStep:
        conf = self._stat()
        self._judged_confidence = conf
        self._judged_tokens = self.tokens_seen
        c = self._config
        label = c.statistic if c.statistic != "quantile" else f"{c.quantile:g}-quantile"
        shown = f"{conf:.2f}" if math.isfinite(conf) else "-inf (no tokens)"
        scores = {
            "cascade.confidence": conf if math.isfinite(conf) else -1e9,
            "cascade.threshold": c.threshold,
            "cascade.tokens_judged": float(self._judged_tokens),
        }
        held = "".join(self._held)
        self._held = []
        if conf >= c.threshold:
            self.state = CascadeState.STREAMING
            self.decision = Decision(
                route=Route.LOCAL,
                strategy=STRATEGY,
                reasons=(
                    Reason(
                        "cascade.confident",
                        f"{label} log-probability of the first {self._judged_tokens} tokens "
                        f"is {shown} >= {c.threshold:.2f}",
                    ),
                ),
                scores=scores,
            )
            return GateStep(emit=held, decision=self.decision)
        low = (
            f"{label} log-probability of the first {self._judged_tokens} tokens is {shown} "
            f"< {c.threshold:.2f}"
        )
        if self._handoff:
            self.state = CascadeState.HANDED_OFF
            self.decision = Decision(
                route=Route.CLOUD,
                strategy=STRATEGY,
                reasons=(Reason("cascade.low_confidence", f"the local answer is unsure: {low}"),),
                scores=scores,
            )
            return GateStep(decision=self.decision, handoff=True)
        self.state = CascadeState.FLAGGED
        self.decision = Decision(
            route=Route.LOCAL,
            strategy=STRATEGY,
            reasons=(
                Reason(
                    "cascade.low_confidence.flagged",
                    f"answered locally but unsure: {low}",
                ),
            ),
            scores=scores,
        )
        return GateStep(emit=held, decision=self.decision)
