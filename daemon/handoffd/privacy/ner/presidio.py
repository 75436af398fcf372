"""Presidio's analyzer with a spaCy model the device owner supplies.

``AnalyzerEngine()`` with no arguments tries to download a spaCy model, which fails offline, and
the official English models are not on PyPI: so the engine is always built from the configured
model folder and asked only for the configured entity types (its e-mail recognizer, whose
``tldextract`` fetches the public-suffix list on first use, is never run).
"""

from __future__ import annotations

import importlib
from typing import Any

from handoffd.errors import ConfigError
from handoffd.privacy.ner import EntitySpan
from handoffd.schema.privacy import NerConfig


class PresidioBackend:
    def __init__(self, config: NerConfig) -> None:
        try:
            analyzer_mod: Any = importlib.import_module("presidio_analyzer")
            nlp_mod: Any = importlib.import_module("presidio_analyzer.nlp_engine")
        except ImportError as exc:
            raise ConfigError(
                f"privacy.ner.kind 'presidio' needs presidio-analyzer and spaCy ({exc}): "
                "pip install presidio-analyzer, or remove the ner block"
            ) from None
        try:
            provider = nlp_mod.NlpEngineProvider(
                nlp_configuration={
                    "nlp_engine_name": "spacy",
                    "models": [{"lang_code": "en", "model_name": str(config.model)}],
                }
            )
            self._analyzer = analyzer_mod.AnalyzerEngine(
                nlp_engine=provider.create_engine(), supported_languages=["en"]
            )
        except Exception as exc:
            raise ConfigError(
                f"privacy.ner.model {str(config.model)!r} cannot be loaded as a spaCy model: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self._entities = list(config.entities)
        self._min_score = config.min_score

    def entities(self, text: str) -> list[EntitySpan]:
        results = self._analyzer.analyze(
            text=text, language="en", entities=self._entities, score_threshold=self._min_score
        )
        return [EntitySpan(r.entity_type, r.start, r.end, float(r.score)) for r in results]
