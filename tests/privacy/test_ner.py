"""The optional ONNX token-classification backend, on a tiny real ONNX model."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoffd.errors import ConfigError
from handoffd.privacy import PiiScanner, PrivacyConfig, PrivacyGuard

from tests.privacy.tiny_ner import write_tiny_ner


def config_for(folder: Path, **ner: object) -> PrivacyConfig:
    return PrivacyConfig.model_validate(
        {
            "ner": {"kind": "onnx", "model": str(folder), **ner},
            "actions": {"PERSON": "pseudonymize"},
        }
    )


def test_names_and_places_are_found(tmp_path: Path) -> None:
    """B-/I- tagged tokens merge into PERSON and LOCATION spans with character offsets."""
    scanner = PiiScanner(config_for(write_tiny_ner(tmp_path)))
    text = "Alice Smith flew to New York and met Paris in a@b.com"
    found = [(f.entity_type, text[f.start : f.end], f.rule_id) for f in scanner.scan(text)]
    assert found == [
        ("PERSON", "Alice Smith", "privacy.ner.person"),
        ("LOCATION", "New York", "privacy.ner.location"),
        ("LOCATION", "Paris", "privacy.ner.location"),
        ("EMAIL", "a@b.com", "privacy.email"),
    ]


def test_only_configured_entities_are_reported(tmp_path: Path) -> None:
    """Labels outside ner.entities are ignored."""
    scanner = PiiScanner(config_for(write_tiny_ner(tmp_path), entities=["PERSON"]))
    text = "Alice flew to Paris"
    assert [text[f.start : f.end] for f in scanner.scan(text)] == ["Alice"]


def test_names_are_pseudonymized_and_restored(tmp_path: Path) -> None:
    """A NER finding goes through the same actions and restoration as any other type."""
    guard = PrivacyGuard(config_for(write_tiny_ner(tmp_path)))
    result = guard.protect(["Alice Smith flew to Paris"])
    assert result.texts == ("<PERSON_1> flew to <LOCATION_1>",)
    assert result.restorer().restore("Hello <PERSON_1>!") == "Hello Alice Smith!"


def test_broken_model_file_is_a_config_error(tmp_path: Path) -> None:
    """A model.onnx that is not a valid model is a ConfigError at load, not during a request."""
    folder = write_tiny_ner(tmp_path)
    (folder / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        PiiScanner(config_for(folder))
