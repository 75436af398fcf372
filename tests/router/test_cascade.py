"""The confidence cascade: hold-back streaming, handoff, flag, short answers, statistics."""

from __future__ import annotations

import math

import pytest
from handoffd.domain import Route, TokenChunk
from handoffd.router.cascade import CascadeMonitor, CascadeState
from handoffd.router.confidence import confidence, quantile
from handoffd.schema.routing import CascadeConfig


def chunks(logprobs: list[float], entropy: float = 0.5) -> list[TokenChunk]:
    return [
        TokenChunk(text=f"t{i} ", token_id=i, logprob=lp, entropy=entropy)
        for i, lp in enumerate(logprobs)
    ]


def run(monitor: CascadeMonitor, items: list[TokenChunk]) -> list[str]:
    """The deltas the client would see, one per step that emits something."""
    out = []
    for chunk in items:
        step = monitor.feed(chunk)
        if step.emit:
            out.append(step.emit)
        if step.handoff:
            break
    else:
        final = monitor.finish()
        if final.emit:
            out.append(final.emit)
    return out


def test_confident_answer_is_held_then_released_then_streams() -> None:
    """Nothing is streamed for the first K tokens; at K the held text comes in one delta; every
    later token streams as it arrives."""
    monitor = CascadeMonitor(CascadeConfig(statistic="mean", hold_back_tokens=3, threshold=-1.0))
    steps = [monitor.feed(c) for c in chunks([-0.1, -0.2, -0.1, -3.0, -0.1])]
    assert [s.emit for s in steps] == ["", "", "t0 t1 t2 ", "t3 ", "t4 "]
    assert monitor.state is CascadeState.STREAMING
    assert steps[2].decision is not None
    assert steps[2].decision.route is Route.LOCAL
    assert steps[2].decision.rule_ids == ("cascade.confident",)
    assert not any(s.handoff for s in steps)


def test_unsure_answer_hands_off_and_nothing_is_streamed() -> None:
    """Low confidence inside the window drops the local answer: no text, a CLOUD decision."""
    monitor = CascadeMonitor(CascadeConfig(statistic="mean", hold_back_tokens=3, threshold=-1.0))
    seen = run(monitor, chunks([-2.0, -2.5, -1.5, -0.1]))
    assert seen == []
    assert monitor.state is CascadeState.HANDED_OFF
    assert monitor.decision is not None
    assert monitor.decision.route is Route.CLOUD
    assert monitor.decision.rule_ids == ("cascade.low_confidence",)
    assert monitor.decision.scores["cascade.threshold"] == -1.0
    assert monitor.decision.scores["cascade.confidence"] == pytest.approx(-2.0)


def test_flag_keeps_the_answer_and_marks_it() -> None:
    """With on_low_confidence: flag the unsure answer is released and flagged."""
    config = CascadeConfig(
        statistic="mean", hold_back_tokens=2, threshold=-1.0, on_low_confidence="flag"
    )
    monitor = CascadeMonitor(config)
    seen = run(monitor, chunks([-3.0, -3.0, -0.1]))
    assert "".join(seen) == "t0 t1 t2 "
    assert monitor.state is CascadeState.FLAGGED
    assert monitor.decision is not None
    assert monitor.decision.route is Route.LOCAL
    assert monitor.decision.rule_ids == ("cascade.low_confidence.flagged",)


def test_flag_when_the_cloud_is_not_allowed() -> None:
    """When the request may not leave the device, low confidence flags instead of handing off."""
    monitor = CascadeMonitor(
        CascadeConfig(statistic="mean", hold_back_tokens=2, threshold=-1.0), can_handoff=False
    )
    seen = run(monitor, chunks([-3.0, -3.0]))
    assert "".join(seen) == "t0 t1 "
    assert monitor.state is CascadeState.FLAGGED


def test_short_answer_is_judged_on_what_it_has() -> None:
    """An answer shorter than K is judged at finish: confident -> released."""
    monitor = CascadeMonitor(CascadeConfig(statistic="mean", hold_back_tokens=8, threshold=-1.0))
    assert [monitor.feed(c).emit for c in chunks([-0.1, -0.2])] == ["", ""]
    final = monitor.finish()
    assert final.emit == "t0 t1 "
    assert monitor.decision is not None
    assert monitor.decision.scores["cascade.tokens_judged"] == 2.0


def test_short_unsure_answer_hands_off_at_finish() -> None:
    """An unsure answer shorter than K hands off when it ends."""
    monitor = CascadeMonitor(CascadeConfig(statistic="mean", hold_back_tokens=8, threshold=-1.0))
    for c in chunks([-4.0, -0.5]):
        monitor.feed(c)
    final = monitor.finish()
    assert final.handoff
    assert final.emit == ""


def test_empty_answer_is_not_trusted() -> None:
    """An answer with no tokens has confidence -inf and hands off."""
    monitor = CascadeMonitor(CascadeConfig(statistic="mean", hold_back_tokens=4, threshold=-1.0))
    assert monitor.finish().handoff


def test_min_statistic_decides_early() -> None:
    """With the minimum, the first token under the threshold hands off at once."""
    monitor = CascadeMonitor(CascadeConfig(statistic="min", hold_back_tokens=8, threshold=-1.0))
    steps = [monitor.feed(c) for c in chunks([-0.1, -2.0])]
    assert steps[1].handoff
    assert monitor.tokens_seen == 2


def test_mean_does_not_decide_early() -> None:
    """With the mean, one bad token inside the window is averaged with the rest."""
    monitor = CascadeMonitor(CascadeConfig(statistic="mean", hold_back_tokens=4, threshold=-1.0))
    steps = [monitor.feed(c) for c in chunks([-2.0, -0.1, -0.1, -0.1])]
    assert not any(s.handoff for s in steps)
    assert steps[3].emit == "t0 t1 t2 t3 "


def test_entropy_statistic() -> None:
    """The entropy statistic is minus the mean entropy; high entropy hands off."""
    config = CascadeConfig(statistic="entropy", hold_back_tokens=2, threshold=-1.0)
    sure = CascadeMonitor(config)
    assert not any(sure.feed(c).handoff for c in chunks([-5.0, -5.0], entropy=0.2))
    unsure = CascadeMonitor(config)
    assert any(unsure.feed(c).handoff for c in chunks([-0.1, -0.1], entropy=2.0))


def test_text_override_from_an_earlier_stage() -> None:
    """Text held by an earlier stage arrives later via release() and is still held back."""
    monitor = CascadeMonitor(CascadeConfig(statistic="mean", hold_back_tokens=2, threshold=-1.0))
    monitor.feed(TokenChunk("a", 1, -0.1), text="")
    monitor.release("a")
    step = monitor.feed(TokenChunk("b", 2, -0.1))
    assert step.emit == "ab"
    assert monitor.release("c").emit == "c"


def test_confidence_statistics_on_known_values() -> None:
    """Hand-computed values of each statistic."""
    lps = [-0.1, -0.5, -2.0, -0.4]
    ents = [1.0, 2.0, 3.0, 2.0]
    assert confidence(lps, ents, "min") == -2.0
    assert confidence(lps, ents, "mean") == pytest.approx(-0.75)
    assert confidence(lps, ents, "entropy") == pytest.approx(-2.0)
    # sorted [-2.0, -0.5, -0.4, -0.1]; q=0.5 -> position 1.5 -> (-0.5 + -0.4) / 2
    assert confidence(lps, ents, "quantile", 0.5) == pytest.approx(-0.45)
    assert quantile([3.0], 0.1) == 3.0
    assert confidence([], [], "mean") == -math.inf
