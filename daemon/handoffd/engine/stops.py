"""Cutting generated text at stop sequences while streaming it.

Text arrives a token at a time and a stop sequence may be split across tokens (``"\\n\\nUs"``
then ``"er:"``). :class:`StopSequenceFilter` releases text only once it cannot be the start of a
stop sequence any more: the longest tail of the pending text that is a prefix of some stop string
is held back. When a stop string appears, the text before it is released and the stop string and
everything after it are dropped, so a client never sees any part of it.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopSequenceFilter:
    """Holds back text that could begin a stop sequence; detects the stop."""

    __slots__ = ("_longest", "_pending", "_stops", "stopped")

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(s for s in dict.fromkeys(stops) if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Add newly decoded ``text``; return what may be shown now. After a stop, always ``""``."""
        if self.stopped:
            return ""
        if not self._stops:
            return text
        pending = self._pending + text
        cut = -1
        for stop in self._stops:
            at = pending.find(stop)
            if at != -1 and (cut == -1 or at < cut):
                cut = at
        if cut != -1:
            self.stopped = True
            self._pending = ""
            return pending[:cut]
        hold = self._held_length(pending)
        self._pending = pending[len(pending) - hold :] if hold else ""
        return pending[: len(pending) - hold]

    def _held_length(self, pending: str) -> int:
        for size in range(min(len(pending), self._longest - 1), 0, -1):
            tail = pending[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0

    def flush(self) -> str:
        """Release the held-back text at the end of generation (no stop came)."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out
