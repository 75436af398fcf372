"""Credentials from $CREDENTIALS_DIRECTORY and the exit codes the unit file relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoffd.errors import ConfigError, InternalError, ModelError
from handoffd.service.credentials import (
    CLOUD_API_KEY,
    read_credential,
    read_text_credential,
)
from handoffd.service.exitcodes import EX_CONFIG, EX_SOFTWARE, exit_code_for


def test_credential_is_read_from_the_credentials_directory(tmp_path: Path) -> None:
    """A credential file's content is returned; text credentials lose the trailing newline."""
    (tmp_path / CLOUD_API_KEY).write_bytes(b"sk-test-123\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert read_credential(CLOUD_API_KEY, env) == b"sk-test-123\n"
    assert read_text_credential(CLOUD_API_KEY, env) == "sk-test-123"


def test_absent_or_empty_credentials_read_as_none(tmp_path: Path) -> None:
    """No directory, no file, or an empty file: None, and the caller decides."""
    assert read_credential(CLOUD_API_KEY, {}) is None
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert read_credential(CLOUD_API_KEY, env) is None
    (tmp_path / CLOUD_API_KEY).write_bytes(b"\n")
    assert read_text_credential(CLOUD_API_KEY, env) is None


def test_credential_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    """A name with a path separator is refused before any file is opened."""
    with pytest.raises(ValueError, match="invalid credential name"):
        read_credential("../etc/shadow", {"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_unreadable_credential_is_a_config_error(tmp_path: Path) -> None:
    """A credential that is a directory (or unreadable) is a ConfigError naming the fix."""
    (tmp_path / CLOUD_API_KEY).mkdir()
    with pytest.raises(ConfigError, match="LoadCredential"):
        read_credential(CLOUD_API_KEY, {"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_configuration_errors_exit_78_and_bugs_exit_70() -> None:
    """ConfigError (and ModelError) map to EX_CONFIG; anything else to EX_SOFTWARE."""
    assert exit_code_for(ConfigError("bad")) == EX_CONFIG == 78
    assert exit_code_for(ModelError("bad model")) == EX_CONFIG
    assert exit_code_for(InternalError("bug")) == EX_SOFTWARE
    assert exit_code_for(RuntimeError("bug")) == EX_SOFTWARE
