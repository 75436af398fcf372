"""``handoffctl apps``: add prints the token once, list shows apps, revoke removes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from handoffd.auth import TokenStore
from handoffd.auth.tokens import looks_like_token
from handoffd.cli.apps_cmds import apps, resolve_token_file
from handoffd.domain import CallerRole
from handoffd.errors import InvalidRequest, NotFound


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """Where the CLI keeps tokens in these tests."""
    return tmp_path / "state" / "tokens.json"


def _run(token_file: Path, *args: str) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(apps, ["--token-file", str(token_file), *args])
    return result.exit_code, result.stdout, result.stderr, result.exception


def test_add_prints_only_the_token_on_stdout(token_file: Path) -> None:
    """stdout is the token alone (TOKEN=$(handoffctl apps add x) works); advice goes to stderr."""
    code, out, err, _ = _run(token_file, "add", "kiosk")
    assert code == 0
    token = out.strip()
    assert looks_like_token(token)
    assert "shown once" in err
    assert token not in err
    record = TokenStore(token_file).load().lookup(token)
    assert record is not None
    assert (record.app, record.role) == ("kiosk", CallerRole.APP)


def test_add_admin_and_list_as_json(token_file: Path) -> None:
    """--role admin is stored; list --json shows name, role and a hint, never the token."""
    _, token, _, _ = _run(token_file, "add", "ops", "--role", "admin")
    _run(token_file, "add", "kiosk")
    code, out, _, _ = _run(token_file, "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["name"], r["role"], r["via"]) for r in rows] == [
        ("kiosk", "app", "token"),
        ("ops", "admin", "token"),
    ]
    assert token.strip() not in out
    assert rows[1]["token"].startswith(token.strip()[:8])


def test_list_as_a_table_and_when_empty(token_file: Path) -> None:
    """The human table names the apps; with none, stderr says how to add one."""
    code, out, err, _ = _run(token_file, "list")
    assert code == 0
    assert out == ""
    assert "handoffctl apps add" in err
    _run(token_file, "add", "kiosk")
    _, out, _, _ = _run(token_file, "list")
    assert "kiosk" in out


def test_revoke_removes_and_unknown_names_fail(token_file: Path) -> None:
    """revoke deletes the token; an unknown name is a NotFound listing the known apps."""
    _, token, _, _ = _run(token_file, "add", "kiosk")
    code, out, _, _ = _run(token_file, "revoke", "kiosk")
    assert code == 0
    assert "Revoked" in out
    assert TokenStore(token_file).load().lookup(token.strip()) is None
    code, _, _, exc = _run(token_file, "revoke", "kiosk")
    assert code != 0
    assert isinstance(exc, NotFound)


def test_bad_names_and_roles_are_refused(token_file: Path) -> None:
    """Invalid names raise InvalidRequest; unknown roles are a usage error."""
    code, _, _, exc = _run(token_file, "add", "Bad Name")
    assert code != 0
    assert isinstance(exc, InvalidRequest)
    code, _, err, _ = _run(token_file, "add", "kiosk", "--role", "root")
    assert code == 2
    assert "root" in err


def test_token_file_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--token-file wins; otherwise <state dir>/tokens.json ($STATE_DIRECTORY under systemd)."""
    explicit = tmp_path / "x.json"
    assert resolve_token_file(explicit, None) == explicit
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert resolve_token_file(None, None) == tmp_path / "state" / "tokens.json"


def test_list_shows_socket_apps_from_the_config(token_file: Path, tmp_path: Path) -> None:
    """Apps with their own socket (auth.apps in the config) are listed next to token apps."""
    config = tmp_path / "config.yaml"
    config.write_text("auth:\n  apps:\n    kiosk:\n      group: video\n")
    _run(token_file, "add", "ops", "--role", "admin")
    result = CliRunner().invoke(
        apps, ["--config", str(config), "--token-file", str(token_file), "list", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["ops"]["via"] == "token"
    assert rows["kiosk"]["via"] == "socket"
    assert rows["kiosk"]["group"] == "video"
    assert rows["kiosk"]["role"] == "app"


def test_token_file_from_the_config(tmp_path: Path) -> None:
    """Without --token-file, auth.token_file from the config is used."""
    config = tmp_path / "config.yaml"
    config.write_text(f"auth:\n  token_file: {tmp_path / 'custom.json'}\n")
    assert resolve_token_file(None, config) == tmp_path / "custom.json"
