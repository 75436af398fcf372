"""The one interface every detector implements, and the per-text index they share.

Speed: CPython's ``re`` scans a whole 2 KB text for a character class at roughly 30-60 ns per
character on a small edge CPU, so eight detectors each scanning the whole text would already
spend the scan's budget. Instead the scanner builds one :class:`TextIndex` per text: the digit
runs are found in ONE pass, and the digit-based detectors (cards, IBANs, SSNs, IPs, phones,
high-entropy secrets) run their patterns only on small windows around those runs
(``pattern.finditer(text, pos, endpos)``: lookbehinds still see the text before ``pos``).
Literal-anchored detectors (``@`` for e-mail, ``sk-`` for keys, ``:`` for IPv6/MAC) find their
anchors with ``str.find``, which runs at C speed.
"""

from __future__ import annotations

import re
from typing import Protocol

from handoffd.privacy.findings import Finding

_DIGITS = "0123456789"
_DIGIT_RUN = re.compile(r"[0-9]+")
#: digit runs this close (in characters) share one window: "+1 (415) 555-2671 x12"
_MERGE_GAP = 3


class TextIndex:
    """Facts about one text, computed on first use and shared by the detectors of one scan."""

    __slots__ = ("_digits", "_lower", "_runs", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._runs: list[tuple[int, int]] | None = None
        self._digits = 0
        self._lower: str | None = None

    @property
    def lower(self) -> str | None:
        """``text.lower()`` when it keeps every position (some Unicode letters do not)."""
        if self._lower is None:
            lower = self.text.lower()
            self._lower = lower if len(lower) == len(self.text) else ""
        return self._lower or None

    def has_digits(self, at_least: int) -> bool:
        """Whether the text has at least ``at_least`` ASCII digits."""
        if self._runs is None:
            self._runs = self._find_runs()
        return self._digits >= at_least

    @property
    def digit_runs(self) -> list[tuple[int, int]]:
        """Spans of digits, runs at most ``_MERGE_GAP`` characters apart merged into one."""
        if self._runs is None:
            self._runs = self._find_runs()
        return self._runs

    def _find_runs(self) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        text = self.text
        firsts = [i for i in (text.find(d) for d in _DIGITS) if i != -1]
        if firsts:  # scan only from the first digit to the last one
            last = max(text.rfind(d) for d in _DIGITS)
            for m in _DIGIT_RUN.finditer(text, min(firsts), last + 1):
                s, e = m.span()
                self._digits += e - s
                if runs and s - runs[-1][1] <= _MERGE_GAP:
                    runs[-1] = (runs[-1][0], e)
                else:
                    runs.append((s, e))
        return runs

    def digit_windows(self, left: int, right: int) -> list[tuple[int, int]]:
        """The digit runs widened by ``left``/``right`` characters, overlaps merged."""
        n = len(self.text)
        out: list[tuple[int, int]] = []
        for run_start, run_end in self.digit_runs:
            s, e = max(0, run_start - left), min(n, run_end + right)
            if out and s <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
        return out


class Detector(Protocol):
    """Finds values of one family of entity types in a text. Pure, no I/O, no logging."""

    #: short name for logs and errors (never a value)
    name: str

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        """Every match in ``text`` (``index`` is ``TextIndex(text)``, shared by the detectors
        of one scan); overlaps between detectors are resolved by the scanner."""
        ...


def find_all(index: TextIndex, word: str) -> list[int]:
    """Every position of ``word`` (lower case) in the lower-cased text, at C speed."""
    lower = index.lower
    if lower is None:
        return [m.start() for m in re.finditer(re.escape(word), index.text, re.IGNORECASE)]
    out: list[int] = []
    at = lower.find(word)
    while at != -1:
        out.append(at)
        at = lower.find(word, at + 1)
    return out
