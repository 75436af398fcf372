"""Restores pseudonym placeholders (``<EMAIL_1>``) in a cloud answer, streamed or whole.

Works on the answer's text itself (the cloud keeps no span positions). A placeholder split across
chunks is held back only as long as the text so far could still become a KNOWN placeholder; any
other text, unknown placeholders included, passes through at once and unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")


class PlaceholderRestorer:
    """Feed it the answer's chunks in order; concatenating every return value and the final
    :meth:`flush` gives the answer with known placeholders replaced by their original values."""

    def __init__(self, placeholders: Mapping[str, str]) -> None:
        self._map = dict(placeholders)
        self._prefixes = frozenset(p[:i] for p in self._map for i in range(1, len(p)))
        self._longest = max((len(p) for p in self._map), default=0)
        self._pending = ""

    def restore(self, text: str) -> str:
        """Restore a whole, unsplit text."""
        if not self._map or "<" not in text:
            return text
        return PLACEHOLDER.sub(self._lookup, text)

    def feed(self, chunk: str) -> str:
        if not self._map:
            return chunk
        buf = self._pending + chunk
        hold = len(buf)
        # a known placeholder holds exactly one "<", at its start: only the last "<" can open one
        last = buf.rfind("<", max(0, len(buf) - self._longest))
        if last != -1 and buf[last:] in self._prefixes:
            hold = last
        self._pending = buf[hold:]
        return self.restore(buf[:hold])

    def flush(self) -> str:
        """The text still held back (a prefix that never completed), unchanged."""
        rest, self._pending = self._pending, ""
        return rest

    def _lookup(self, m: re.Match[str]) -> str:
        return self._map.get(m.group(), m.group())
