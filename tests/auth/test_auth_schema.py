"""The auth: config section rejects unsafe or ambiguous settings at load time."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoffd.errors import ConfigError
from handoffd.schema.auth import AppSocketSettings, AuthSettings
from handoffd.yamlload import load_model_file
from pydantic import ValidationError


def test_defaults() -> None:
    """No apps, admin on the main socket, tokens optional on Unix, 1 s refresh."""
    s = AuthSettings()
    assert s.apps == {}
    assert s.default_socket_role == "admin"
    assert s.require_token_on_unix is False
    assert s.token_refresh_s == 1.0


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("0666", "every user"),
        ("0661", "every user"),
        ("0440", "locks the daemon"),
        ("rw", "octal"),
        ("10660", "beyond 0777"),
    ],
)
def test_unsafe_socket_modes_are_refused(mode: str, why: str) -> None:
    """World access, owner lock-out and non-octal modes are refused with the reason."""
    with pytest.raises(ValidationError, match=why):
        AppSocketSettings(group="kiosk", mode=mode)


@pytest.mark.parametrize("name", ["default", "Kiosk", "9app", "a b"])
def test_invalid_or_reserved_app_names(name: str) -> None:
    """App names are lower-case identifiers and 'default' belongs to the main socket."""
    with pytest.raises(ValidationError):
        AuthSettings(apps={name: AppSocketSettings(group="kiosk")})


def test_two_apps_cannot_share_a_socket() -> None:
    """A socket is an identity: sharing one would make two apps indistinguishable."""
    sock = Path("/run/handoffd/shared.sock")
    with pytest.raises(ValidationError, match="share the socket"):
        AuthSettings(
            apps={
                "a": AppSocketSettings(group="a", socket=sock),
                "b": AppSocketSettings(group="b", socket=sock),
            }
        )


def test_relative_socket_and_bad_group_are_refused() -> None:
    """Socket paths are absolute; group names are Unix group names."""
    with pytest.raises(ValidationError, match="absolute"):
        AppSocketSettings(group="kiosk", socket=Path("run/x.sock"))
    with pytest.raises(ValidationError, match="group name"):
        AppSocketSettings(group="not a group")


def test_yaml_errors_point_at_the_line(tmp_path: Path) -> None:
    """Loaded from YAML, a wrong value is reported with file:line and unknown keys rejected."""
    path = tmp_path / "auth.yaml"
    path.write_text(
        "apps:\n"
        "  kiosk:\n"
        "    group: kiosk\n"
        "    mode: '0666'\n"
        "default_socket_role: root\n"
        "tokens: yes\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_model_file(AuthSettings, path)
    message = exc.value.message
    assert f"{path}:4" in message
    assert "default_socket_role" in message
    assert "tokens" in message
