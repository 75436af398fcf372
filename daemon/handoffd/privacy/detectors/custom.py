"""Owner-defined detectors: a regex, or a case-insensitive keyword list."""

from __future__ import annotations

import re

from handoffd.privacy.detectors.base import TextIndex, find_all
from handoffd.privacy.findings import Finding
from handoffd.schema.privacy import CustomDetector


class RegexDetector:
    def __init__(self, spec: CustomDetector) -> None:
        if spec.regex is None:
            raise ValueError("RegexDetector needs a custom detector with a regex")
        self.name = spec.name
        self._type = spec.entity_type
        self._rule = spec.rule_id
        self._re = re.compile(spec.regex)

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        return [
            Finding(self._type, m.start(), m.end(), self._rule)
            for m in self._re.finditer(text)
            if m.end() > m.start()
        ]


class KeywordDetector:
    """Each keyword is looked up with ``str.find`` on the lower-cased text (C speed)."""

    def __init__(self, spec: CustomDetector) -> None:
        self.name = spec.name
        self._type = spec.entity_type
        self._rule = spec.rule_id
        self._words = tuple(sorted({k.strip().lower() for k in spec.keywords}))
        self._whole = spec.whole_words

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        n = len(text)
        for word in self._words:
            size = len(word)
            for at in find_all(index, word):
                end = at + size
                if self._whole and (
                    (at > 0 and _is_word(text[at - 1])) or (end < n and _is_word(text[end]))
                ):
                    continue
                out.append(Finding(self._type, at, end, self._rule))
        return out


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def custom_detector(spec: CustomDetector) -> RegexDetector | KeywordDetector:
    return RegexDetector(spec) if spec.regex is not None else KeywordDetector(spec)
