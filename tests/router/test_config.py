"""The routing config: defaults, validation at load, and messages that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoffd.errors import ConfigError
from handoffd.schema.routing import RoutingConfig
from handoffd.yamlload import load_model_file
from pydantic import ValidationError


def test_defaults_are_valid() -> None:
    """An empty routing section is valid: rules, learned and model handoff (marker) are on."""
    config = RoutingConfig()
    assert config.enabled("rules")
    assert config.enabled("learned")
    assert config.enabled("model_handoff")
    assert not config.enabled("cascade")
    assert config.pre_generation() == ("learned",)


def test_bad_regex_is_rejected_with_the_pattern() -> None:
    """An invalid regular expression fails at load and the message names it."""
    with pytest.raises(ValidationError) as info:
        RoutingConfig.model_validate(
            {"rules": {"patterns": [{"id": "broken", "regex": "(unclosed"}]}}
        )
    assert "(unclosed" in str(info.value)
    assert "invalid regular expression" in str(info.value)


def test_duplicate_rule_ids_are_rejected() -> None:
    """Two rules with one id cannot be told apart in the ledger, so load fails."""
    with pytest.raises(ValidationError, match="used twice"):
        RoutingConfig.model_validate(
            {
                "rules": {
                    "keywords": [{"id": "legal", "words": ["contract"]}],
                    "patterns": [{"id": "legal", "regex": "lawsuit"}],
                }
            }
        )


def test_duplicate_and_unknown_strategies_are_rejected() -> None:
    """Each strategy is listed once and must be a known name."""
    with pytest.raises(ValidationError, match="listed twice"):
        RoutingConfig.model_validate({"strategies": ["rules", "rules"]})
    with pytest.raises(ValidationError):
        RoutingConfig.model_validate({"strategies": ["magic"]})


def test_unknown_keys_and_bad_values_are_rejected() -> None:
    """Unknown keys, thresholds out of range, a bad rule id or action fail at load."""
    bad = [
        {"cascade": {"treshold": -1.0}},
        {"cascade": {"threshold": 0.5}},
        {"cascade": {"hold_back_tokens": 0}},
        {"cascade": {"on_low_confidence": "retry"}},
        {"pre_score": {"threshold": 1.5}},
        {"model_handoff": {"mode": "sometimes"}},
        {"model_handoff": {"marker": "HANDOFF"}},
        {"rules": {"keywords": [{"id": "Bad Id", "words": ["x"]}]}},
        {"rules": {"keywords": [{"id": "empty", "words": []}]}},
        {"rules": {"keywords": [{"id": "blank", "words": ["  "]}]}},
        {"rules": {"max_local_prompt_tokens": 0}},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            RoutingConfig.model_validate(data)


def test_model_handoff_off_disables_it() -> None:
    """mode: off turns the strategy off even when it is listed."""
    config = RoutingConfig.model_validate({"model_handoff": {"mode": "off"}})
    assert not config.enabled("model_handoff")


def test_yaml_errors_point_at_the_line(tmp_path: Path) -> None:
    """Loaded from YAML, a bad regex is reported with file:line."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "strategies: [rules]\nrules:\n  patterns:\n    - id: broken\n      regex: '[a-'\n"
    )
    with pytest.raises(ConfigError) as info:
        load_model_file(RoutingConfig, path)
    assert f"{path}:5" in info.value.message
