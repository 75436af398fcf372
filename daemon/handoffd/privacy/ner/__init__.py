"""Optional named-entity backends (names, addresses) behind one protocol; off by default.

Both adapters import their libraries lazily, when a policy configures them, and check everything
at load: a backend that is configured but cannot be used is a :class:`ConfigError` naming what
is missing, never a surprise during a request. Nothing is ever downloaded: the model is a folder
the device owner supplies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from handoffd.errors import ConfigError
from handoffd.privacy.detectors.base import TextIndex
from handoffd.privacy.findings import Finding
from handoffd.schema.privacy import NerConfig


@dataclass(frozen=True, slots=True)
class EntitySpan:
    entity_type: str
    start: int
    end: int
    score: float


class NerBackend(Protocol):
    """Finds named entities of the configured types in a text."""

    def entities(self, text: str) -> list[EntitySpan]: ...


class NerDetector:
    """Adapts a :class:`NerBackend` to the detector interface (rule ``privacy.ner.<type>``)."""

    name = "ner"

    def __init__(self, backend: NerBackend) -> None:
        self._backend = backend

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        return [
            Finding(s.entity_type, s.start, s.end, f"privacy.ner.{s.entity_type.lower()}")
            for s in self._backend.entities(text)
            if s.end > s.start
        ]


def load_ner_backend(config: NerConfig) -> NerBackend:
    """Build the configured backend, or raise :class:`ConfigError` saying what is missing."""
    if not config.model.exists():
        raise ConfigError(
            f"privacy.ner.model {str(config.model)!r} does not exist: point it at a "
            f"{'spaCy model' if config.kind == 'presidio' else 'token-classification ONNX'} folder"
        )
    if config.kind == "presidio":
        from handoffd.privacy.ner.presidio import PresidioBackend

        return PresidioBackend(config)
    from handoffd.privacy.ner.onnx_tokens import OnnxTokenBackend

    return OnnxTokenBackend(config)
