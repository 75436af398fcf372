"""The fair queue: priorities first, apps take turns, each app keeps its order, size limit."""

from __future__ import annotations

import pytest
from handoffd.domain import Priority
from handoffd.engine.queueing import FairQueue
from handoffd.errors import ResourceExhausted


def _drain(queue: FairQueue[str]) -> list[str]:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item)
    return out


def test_apps_take_turns_within_a_priority() -> None:
    """A flood from one app does not push another app's request to the back."""
    q: FairQueue[str] = FairQueue(100)
    for i in range(4):
        q.push(f"a{i}", app="a", priority=Priority.INTERACTIVE)
    q.push("b0", app="b", priority=Priority.INTERACTIVE)
    q.push("c0", app="c", priority=Priority.INTERACTIVE)
    q.push("b1", app="b", priority=Priority.INTERACTIVE)
    assert _drain(q) == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]


def test_interactive_goes_before_background() -> None:
    """Any INTERACTIVE request is served before any BACKGROUND one, whatever the arrival."""
    q: FairQueue[str] = FairQueue(100)
    q.push("bg1", app="a", priority=Priority.BACKGROUND)
    q.push("bg2", app="b", priority=Priority.BACKGROUND)
    q.push("fg1", app="c", priority=Priority.INTERACTIVE)
    assert q.peek() == "fg1"
    assert _drain(q) == ["fg1", "bg1", "bg2"]


def test_limit_refuses_with_resource_exhausted() -> None:
    """Past the limit, push raises ResourceExhausted with a retry hint."""
    q: FairQueue[str] = FairQueue(2)
    q.push("x", app="a", priority=Priority.INTERACTIVE)
    q.push("y", app="a", priority=Priority.BACKGROUND)
    with pytest.raises(ResourceExhausted) as caught:
        q.push("z", app="b", priority=Priority.INTERACTIVE)
    assert caught.value.retry_after_s
    assert "queue is full" in caught.value.message
    assert len(q) == 2


def test_remove_takes_an_item_out_wherever_it_waits() -> None:
    """remove() drops a queued item and frees its place; unknown items report False."""
    q: FairQueue[str] = FairQueue(3)
    for name in ("p", "q", "r"):
        q.push(name, app=name, priority=Priority.BACKGROUND)
    assert q.remove("q")
    assert not q.remove("zz")
    q.push("s", app="s", priority=Priority.INTERACTIVE)
    assert _drain(q) == ["s", "p", "r"]


def test_empty_queue_pops_and_peeks_none() -> None:
    """An empty queue has nothing to give."""
    q: FairQueue[str] = FairQueue(1)
    assert q.peek() is None
    assert q.pop() is None
    assert len(q) == 0
