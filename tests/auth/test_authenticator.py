"""Who a caller is: listener identity, bearer tokens, refresh of the token file, fail-closed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from handoffd.auth import Authenticator, ListenerIdentity, TokenStore, parse_authorization
from handoffd.auth.tokens import generate_token
from handoffd.domain import Caller, CallerRole
from handoffd.errors import Unauthenticated
from handoffd.schema.auth import AppSocketSettings, AuthSettings


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    """A token store in a fresh state directory."""
    return TokenStore(tmp_path / "tokens.json")


def _auth(store: TokenStore, **settings: object) -> Authenticator:
    auth = Authenticator(AuthSettings(token_refresh_s=0, **settings), store)  # type: ignore[arg-type]
    auth.load_tokens()
    return auth


MAIN = ListenerIdentity.main_socket(CallerRole.ADMIN)
KIOSK = ListenerIdentity.app_socket("kiosk")
TCP = ListenerIdentity.tcp()


def test_socket_identities_without_a_token(store: TokenStore) -> None:
    """Main socket: 'default' with the configured role; app socket: that app, role app."""
    auth = _auth(store)
    assert auth.authenticate(MAIN, None) == Caller("default", CallerRole.ADMIN)
    assert auth.authenticate(KIOSK, None) == Caller("kiosk", CallerRole.APP)


def test_listeners_follow_the_config(store: TokenStore) -> None:
    """default_socket_role and per-app roles from the config shape the listener identities."""
    auth = _auth(
        store,
        default_socket_role="app",
        apps={"panel": AppSocketSettings(group="root", role="admin")},
    )
    assert auth.authenticate(auth.main_listener(), None) == Caller("default", CallerRole.APP)
    panel = auth.app_listeners()["panel"]
    assert auth.authenticate(panel, None) == Caller("panel", CallerRole.ADMIN)


def test_tcp_requires_a_token(store: TokenStore) -> None:
    """TCP without a token is refused with the command that creates one."""
    auth = _auth(store)
    with pytest.raises(Unauthenticated, match="handoffctl apps add"):
        auth.authenticate(TCP, None)


def test_token_wins_over_the_socket_identity(store: TokenStore) -> None:
    """A valid token names the caller on every listener, with the token's role."""
    app_token = store.add("reader")
    admin_token = store.add("ops", CallerRole.ADMIN)
    auth = _auth(store)
    for listener in (MAIN, KIOSK, TCP):
        assert auth.authenticate(listener, app_token) == Caller("reader", CallerRole.APP)
        assert auth.authenticate(listener, admin_token) == Caller("ops", CallerRole.ADMIN)


def test_unknown_token_is_never_downgraded_to_the_socket(store: TokenStore) -> None:
    """A wrong token is refused even on a socket that would admit a token-less caller."""
    auth = _auth(store)
    for listener in (MAIN, KIOSK, TCP):
        with pytest.raises(Unauthenticated, match="unknown or revoked"):
            auth.authenticate(listener, generate_token())


def test_require_token_on_unix(store: TokenStore) -> None:
    """With require_token_on_unix, sockets behave like TCP: a token or nothing."""
    token = store.add("reader")
    auth = _auth(store, require_token_on_unix=True)
    for listener in (MAIN, KIOSK):
        with pytest.raises(Unauthenticated, match="require_token_on_unix"):
            auth.authenticate(listener, None)
        assert auth.authenticate(listener, token).app == "reader"


async def test_added_and_revoked_tokens_take_effect_without_restart(store: TokenStore) -> None:
    """resolve() re-reads the token file: a new app works at once, a revoked one is refused."""
    auth = _auth(store)
    token = store.add("late")  # added after the daemon loaded the file
    assert (await auth.resolve(TCP, token)).app == "late"
    store.revoke("late")
    with pytest.raises(Unauthenticated):
        await auth.resolve(TCP, token)


async def test_refresh_is_throttled(store: TokenStore) -> None:
    """Between refreshes (token_refresh_s) a revoked token still works; after, it does not."""
    now = [100.0]
    token = store.add("app")
    auth = Authenticator(AuthSettings(token_refresh_s=5), store, clock=lambda: now[0])
    auth.load_tokens()
    store.revoke("app")
    now[0] += 1
    await auth.refresh()
    assert auth.knows_token(token)
    now[0] += 5
    await auth.refresh()
    assert not auth.knows_token(token)


async def test_corrupt_token_file_fails_closed(store: TokenStore) -> None:
    """If the file turns invalid, token logins stop (socket identities still work)."""
    token = store.add("app")
    auth = _auth(store)
    assert (await auth.resolve(TCP, token)).app == "app"
    os.chmod(store.path, 0o666)  # now unsafe: it must not be trusted
    with pytest.raises(Unauthenticated):
        await auth.resolve(TCP, token)
    assert (await auth.resolve(MAIN, None)).app == "default"
    os.chmod(store.path, 0o600)
    assert (await auth.resolve(TCP, token)).app == "app"


def test_deleted_token_file_revokes_everything(store: TokenStore) -> None:
    """Removing the file is a valid way to revoke every token."""
    token = store.add("app")
    auth = _auth(store)
    store.path.unlink()
    auth._reload_if_changed()
    assert not auth.knows_token(token)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["Bearer TOKEN"], "TOKEN"),
        (["bearer   TOKEN  "], "TOKEN"),
    ],
)
def test_parse_authorization_accepts_bearer(values: list[str], expected: str | None) -> None:
    """'Bearer <token>' (scheme case-insensitive) yields the token; no header yields None."""
    token = generate_token()
    values = [v.replace("TOKEN", token) for v in values]
    assert parse_authorization(values) == (expected and token)


@pytest.mark.parametrize(
    "values",
    [["Basic dXNlcjpwYXNz"], ["Bearer"], ["Bearer hfd_short"], ["Bearer a", "Bearer b"], ["tok"]],
)
def test_parse_authorization_refuses_everything_else(values: list[str]) -> None:
    """Other schemes, malformed tokens and repeated headers are refused, not ignored."""
    with pytest.raises(Unauthenticated):
        parse_authorization(values)
