"""API keys: every source, the errors for a missing key, and a repr that hides the value."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from handoffd.cloud import ApiKey, resolve_api_key
from handoffd.errors import ConfigError
from handoffd.schema.cloud import CloudTargetSettings
from structlog.testing import capture_logs

KEY = "sk-proj-Hk29dLq0ZtYv81xWm"


def target(**key_source: Any) -> CloudTargetSettings:
    return CloudTargetSettings.model_validate(
        {"base_url": "https://api.example.com/v1", "model": "m", **key_source}
    )


def write_key(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_key_from_file_is_stripped(tmp_path: Path) -> None:
    """A key file's trailing newline and spaces are not part of the key."""
    path = write_key(tmp_path / "key", f"  {KEY}\n")
    key = resolve_api_key("openai", target(api_key_file=str(path)))
    assert key is not None
    assert key.reveal() == KEY


def test_key_from_systemd_credential(tmp_path: Path) -> None:
    """api_key_credential reads $CREDENTIALS_DIRECTORY/NAME."""
    write_key(tmp_path / "openai_key", KEY)
    key = resolve_api_key(
        "openai",
        target(api_key_credential="openai_key"),
        environ={"CREDENTIALS_DIRECTORY": str(tmp_path)},
    )
    assert key is not None
    assert key.reveal() == KEY


def test_key_from_env() -> None:
    """api_key_env reads the named variable."""
    key = resolve_api_key("openai", target(api_key_env="MY_KEY"), environ={"MY_KEY": KEY})
    assert key is not None
    assert key.reveal() == KEY


def test_keyless_target_has_no_key() -> None:
    """no_api_key: true resolves to None."""
    assert resolve_api_key("local", target(no_api_key=True), environ={}) is None


@pytest.mark.parametrize(
    ("source", "environ", "match"),
    [
        ({"api_key_env": "MISSING_KEY"}, {}, r"\$MISSING_KEY is not set"),
        ({"api_key_env": "EMPTY_KEY"}, {"EMPTY_KEY": "  "}, "empty"),
        ({"api_key_env": "TWO_WORDS"}, {"TWO_WORDS": "sk-a sk-b"}, "spaces"),
        ({"api_key_credential": "k"}, {}, r"CREDENTIALS_DIRECTORY is not set.*LoadCredential=k"),
        ({"api_key_file": "/nonexistent/handoffd/key"}, {}, "does not exist"),
    ],
)
def test_missing_or_bad_key_is_config_error_naming_the_source(
    source: dict[str, str], environ: dict[str, str], match: str
) -> None:
    """A missing, empty or garbled key is a ConfigError that names the target and the source."""
    with pytest.raises(ConfigError, match=match) as info:
        resolve_api_key("openai", target(**source), environ=environ)
    assert "cloud target 'openai'" in str(info.value)


def test_key_file_that_is_a_directory_or_unreadable(tmp_path: Path) -> None:
    """A directory or an unreadable file is a ConfigError with the fix."""
    with pytest.raises(ConfigError, match=r"not a regular file|directory"):
        resolve_api_key("openai", target(api_key_file=str(tmp_path)))
    if os.geteuid() != 0:  # root reads any file
        path = write_key(tmp_path / "key", KEY, mode=0o000)
        with pytest.raises(ConfigError, match="not readable"):
            resolve_api_key("openai", target(api_key_file=str(path)))


def test_group_readable_key_file_is_warned_about_without_the_key(tmp_path: Path) -> None:
    """A key file others can read still works, with a warning that says chmod 600 and does not
    contain the key."""
    path = write_key(tmp_path / "key", KEY, mode=0o644)
    with capture_logs() as logs:
        key = resolve_api_key("openai", target(api_key_file=str(path)))
    assert key is not None
    (warning,) = [e for e in logs if e["event"] == "cloud.key_file_open"]
    assert warning["fix"] == "chmod 600"
    assert KEY not in repr(logs)


def test_api_key_hides_its_value() -> None:
    """repr/str/format of an ApiKey never show the key, and it cannot be pickled."""
    key = ApiKey(KEY)
    assert KEY not in repr(key)
    assert KEY not in str(key)
    assert KEY not in f"{key} {key!r}"
    with pytest.raises(TypeError):
        key.__reduce__()
