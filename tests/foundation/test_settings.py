"""Daemon config: defaults, YAML errors with file:line:column, unknown keys rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoffd.errors import ConfigError
from handoffd.settings import Settings, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "handoffd.yaml"
    path.write_text(text)
    return path


def test_no_config_gives_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a file or HANDOFFD_CONFIG the daemon runs on defaults (the embedded model)."""
    monkeypatch.delenv("HANDOFFD_CONFIG", raising=False)
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.model.providers == ("auto",)


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HANDOFFD_CONFIG is read when no --config is given."""
    path = write(tmp_path, "server:\n  grace_period_s: 3\n")
    monkeypatch.setenv("HANDOFFD_CONFIG", str(path))
    assert load_settings(None).server.grace_period_s == 3


def test_unknown_key_is_rejected_with_line(tmp_path: Path) -> None:
    """A misspelt key names its file, line and column, and says to remove or fix it."""
    path = write(tmp_path, "model:\n  providers: [auto]\n  max_new_token_limit: 5\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}:3:3: model.max_new_token_limit: unknown key" in info.value.message


def test_wrong_type_names_value(tmp_path: Path) -> None:
    """A wrong type names the key and the value that was given."""
    path = write(tmp_path, "server:\n  grace_period_s: soon\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}:2:19: server.grace_period_s" in info.value.message
    assert "'soon'" in info.value.message


def test_non_loopback_tcp_is_rejected(tmp_path: Path) -> None:
    """TCP may only listen on loopback; the error says what to use instead."""
    path = write(tmp_path, "server:\n  tcp: 0.0.0.0:50051\n")
    with pytest.raises(ConfigError, match="loopback"):
        load_settings(path)


def test_world_accessible_socket_mode_is_rejected(tmp_path: Path) -> None:
    """A socket mode that lets every user connect is refused."""
    path = write(tmp_path, "server:\n  socket_mode: '0666'\n")
    with pytest.raises(ConfigError, match="every user"):
        load_settings(path)


def test_unknown_provider_lists_choices(tmp_path: Path) -> None:
    """An unknown execution provider lists the known ones."""
    path = write(tmp_path, "model:\n  providers: [GPU]\n")
    with pytest.raises(ConfigError, match="CUDAExecutionProvider"):
        load_settings(path)


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    """Broken YAML is reported with its position, not a traceback."""
    path = write(tmp_path, "model:\n  providers: [auto\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+:\d+: invalid YAML"):
        load_settings(path)


def test_duplicate_key_is_rejected(tmp_path: Path) -> None:
    """YAML would silently keep the last duplicate; we refuse it."""
    path = write(tmp_path, "server:\n  tcp: 127.0.0.1:1\nserver:\n  tcp: 127.0.0.1:2\n")
    with pytest.raises(ConfigError, match="3:1: duplicate key 'server'"):
        load_settings(path)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    """A list at the top level is rejected with a clear message."""
    path = write(tmp_path, "- model\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(path)


def test_missing_file(tmp_path: Path) -> None:
    """A missing config file says so instead of silently using defaults."""
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.yaml")
