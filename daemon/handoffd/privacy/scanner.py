"""The PII scanner: every configured detector over a text, overlaps merged, ignores dropped.

Pure and synchronous: precompiled regexes and cheap prefilters (no ``@``, no e-mail scan), so a
2 KB prompt is scanned in well under a millisecond (numbers in docs/benchmarks.md). The optional
NER backend is much slower; the pipeline may want to run a scanner with NER in a worker thread.

A deadline (``time.perf_counter()`` seconds) is checked between detectors; running past it
raises :class:`ScanTimeout`. A single pathological custom regex cannot be interrupted midway
(Python's ``re`` has no timeout): keep custom regexes simple.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from handoffd.privacy.detectors import Detector, TextIndex, builtin_detectors
from handoffd.privacy.findings import Finding, resolve_overlaps
from handoffd.privacy.ner import NerDetector, load_ner_backend
from handoffd.schema.privacy import PrivacyConfig


class ScanTimeout(Exception):
    """The scan ran past its deadline; the caller must fail closed."""

    def __init__(self, detector: str, elapsed_ms: float) -> None:
        super().__init__(f"privacy scan exceeded its deadline after detector {detector!r}")
        self.detector = detector
        self.elapsed_ms = elapsed_ms


class PiiScanner:
    """Finds PII and secrets in text according to a :class:`PrivacyConfig`.

    ``extra_detectors`` plugs in detectors beyond the configured ones (anything with ``name``
    and ``find(text) -> list[Finding]``).
    """

    def __init__(self, config: PrivacyConfig, *, extra_detectors: Sequence[Detector] = ()) -> None:
        self.config = config
        detectors: list[Detector] = []
        if config.enabled:
            detectors = builtin_detectors(config)
            if config.ner is not None:
                detectors.append(NerDetector(load_ner_backend(config.ner)))
        detectors.extend(extra_detectors)
        self._detectors = tuple(detectors)
        self._action_of = config.action_for
        self._ignore = frozenset(v.casefold() for v in config.ignore_values)

    @property
    def detector_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self._detectors)

    def scan(self, text: str, *, deadline: float | None = None) -> list[Finding]:
        """Non-overlapping findings in ``text``, sorted by position."""
        if not text:
            return []
        raw: list[Finding] = []
        index = TextIndex(text)
        started = time.perf_counter()
        for detector in self._detectors:
            raw.extend(detector.find(text, index))
            if deadline is not None and time.perf_counter() > deadline:
                raise ScanTimeout(detector.name, (time.perf_counter() - started) * 1000.0)
        if self._ignore:
            raw = [f for f in raw if text[f.start : f.end].casefold() not in self._ignore]
        if len(raw) <= 1:
            return raw
        return resolve_overlaps(raw, self._action_of)

    def scan_all(
        self, texts: Sequence[str], *, timeout_ms: float | None = None
    ) -> list[list[Finding]]:
        """Scan every text of one request under one deadline (default: the configured one)."""
        budget = self.config.detector_timeout_ms if timeout_ms is None else timeout_ms
        deadline = time.perf_counter() + budget / 1000.0
        return [self.scan(text, deadline=deadline) for text in texts]
