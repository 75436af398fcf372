"""The ``privacy:`` section is validated at load, with messages that name the bad value."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from handoffd.errors import ConfigError
from handoffd.privacy import Action, PiiScanner, PrivacyConfig
from handoffd.yamlload import parse_yaml, validate


def load(text: str) -> PrivacyConfig:
    data, locs = parse_yaml(text, "policy.yaml")
    return validate(PrivacyConfig, data, "policy.yaml", locs)


def test_defaults() -> None:
    """No keys: redact everything found, US/GB/DE/FR phones, block stays local, no NER."""
    config = load("")
    assert config.default_action is Action.REDACT
    assert config.phone_regions == ("US", "GB", "DE", "FR")
    assert config.on_block == "local"
    assert config.ner is None
    assert config.effective_actions()["SECRET"] is Action.REDACT


def test_actions_for_builtin_and_custom_types() -> None:
    """Per-type actions apply to built-in and custom types; others get the default action."""
    config = load(
        "default_action: pseudonymize\n"
        "actions: {SECRET: block, EMPLOYEE_ID: allow}\n"
        "custom:\n  - {name: emp, entity_type: EMPLOYEE_ID, regex: 'EMP-\\d+'}\n"
    )
    assert config.action_for("SECRET") is Action.BLOCK
    assert config.action_for("EMPLOYEE_ID") is Action.ALLOW
    assert config.action_for("EMAIL") is Action.PSEUDONYMIZE
    assert config.custom[0].rule_id == "privacy.custom.emp"


def test_bad_regex_names_the_regex_and_the_error() -> None:
    """A regex that does not compile is rejected at load with file:line, the regex and why."""
    with pytest.raises(ConfigError) as err:
        load("custom:\n  - name: broken\n    entity_type: X\n    regex: 'EMP-(\\d+'\n")
    message = str(err.value)
    assert "policy.yaml:4:" in message
    assert "EMP-(\\\\d+" in message or "EMP-(\\d+" in message
    assert "missing ), unterminated subpattern" in message


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("custom:\n  - {name: e, entity_type: X, regex: 'a*'}\n", "matches the empty string"),
        (
            "custom:\n  - {name: e, entity_type: X, regex: 'a', keywords: [b]}\n",
            "exactly one of 'regex' or 'keywords'",
        ),
        ("custom:\n  - {name: e, entity_type: X}\n", "exactly one of 'regex' or 'keywords'"),
        ("custom:\n  - {name: e, entity_type: X, keywords: ['  ']}\n", "must not be empty"),
        ("custom:\n  - {name: Bad-Name, entity_type: X, regex: a}\n", "'Bad-Name'"),
        ("custom:\n  - {name: e, entity_type: lower, regex: a}\n", "'lower' must be UPPER_CASE"),
        (
            "custom:\n  - {name: e, entity_type: X, regex: a}\n"
            "  - {name: e, entity_type: Y, regex: b}\n",
            "repeated: ['e']",
        ),
        ("actions: {PASSPORT: block}\n", "unknown entity types ['PASSPORT']"),
        ("actions: {EMAIL: shred}\n", "EMAIL"),
        ("phone_regions: [uk]\n", "'uk' must be a two-letter upper-case ISO code"),
        ("on_block: drop\n", "on_block"),
        ("detector_timeout_ms: 0\n", "detector_timeout_ms"),
        ("secrets: {min_length: 2}\n", "min_length"),
        ("colour: red\n", "unknown key 'colour'"),
        ("ner: {kind: spacy, model: /x}\n", "ner.kind"),
    ],
)
def test_invalid_config_is_rejected(yaml_text: str, needle: str) -> None:
    """Each kind of invalid privacy section is a ConfigError whose message says what is wrong."""
    with pytest.raises(ConfigError) as err:
        load(yaml_text)
    assert needle in str(err.value)


def test_unknown_phone_region_is_a_config_error() -> None:
    """A well-formed but unknown region code is rejected when the scanner is built."""
    with pytest.raises(ConfigError, match="'ZZ' is unknown to phonenumbers"):
        PiiScanner(load("phone_regions: [ZZ]\n"))


def test_ner_model_that_does_not_exist(tmp_path: Path) -> None:
    """A configured NER model folder that does not exist is a ConfigError at scanner build."""
    config = load(f"ner: {{kind: onnx, model: {tmp_path / 'nope'}}}\n")
    with pytest.raises(ConfigError, match="does not exist"):
        PiiScanner(config)


def test_onnx_ner_folder_without_files(tmp_path: Path) -> None:
    """An ONNX NER folder lacking model.onnx/tokenizer.json/config.json names what is missing."""
    config = load(f"ner: {{kind: onnx, model: {tmp_path}}}\n")
    with pytest.raises(ConfigError, match=r"lacks model\.onnx, tokenizer\.json, config\.json"):
        PiiScanner(config)


def test_presidio_without_presidio_installed(tmp_path: Path) -> None:
    """Presidio configured where presidio-analyzer is not installed is a clear ConfigError."""
    if importlib.util.find_spec("presidio_analyzer") is not None:
        pytest.skip("presidio-analyzer is installed here; the error path cannot be shown")
    config = load(f"ner: {{kind: presidio, model: {tmp_path}}}\n")
    with pytest.raises(ConfigError, match="needs presidio-analyzer"):
        PiiScanner(config)
