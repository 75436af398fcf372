"""The token file: hashed storage, atomic 0600 writes, add/list/revoke, refusal of unsafe files."""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from handoffd.auth import TokenStore, hash_token
from handoffd.auth.tokens import TOKEN_LENGTH, generate_token, looks_like_token
from handoffd.domain import CallerRole
from handoffd.errors import ConfigError, InvalidRequest, NotFound


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    """A token store in a fresh state directory."""
    return TokenStore(tmp_path / "state" / "tokens.json")


def test_tokens_are_random_and_well_formed() -> None:
    """Tokens are hfd_ + 43 url-safe characters and never repeat."""
    tokens = {generate_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(len(t) == TOKEN_LENGTH and looks_like_token(t) for t in tokens)
    assert not looks_like_token("hfd_short")
    assert not looks_like_token("xyz_" + "a" * 43)
    assert not looks_like_token("hfd_" + "a" * 42 + "!")


def test_add_returns_a_token_and_stores_only_its_hash(store: TokenStore) -> None:
    """The file holds the SHA-256 and a 4-character hint, never the token."""
    token = store.add("kiosk")
    raw = store.path.read_text()
    assert token not in raw
    assert token[len("hfd_") + 4 :] not in raw
    doc = json.loads(raw)
    entry = doc["apps"]["kiosk"]
    assert entry["sha256"] == hash_token(token)
    assert entry["role"] == "app"
    assert entry["hint"] == token[:8]
    record = store.load().lookup(token)
    assert record is not None
    assert (record.app, record.role) == ("kiosk", CallerRole.APP)


def test_file_is_0600_and_replaced_atomically(store: TokenStore) -> None:
    """Every write leaves a 0600 file under a new inode and no temp files behind."""
    store.add("one")
    first = store.path.stat()
    store.add("two", CallerRole.ADMIN)
    second = store.path.stat()
    assert stat.S_IMODE(second.st_mode) == 0o600
    assert first.st_ino != second.st_ino
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["tokens.json"]


def test_lookup_rejects_unknown_and_malformed_tokens(store: TokenStore) -> None:
    """Only the exact token matches."""
    token = store.add("kiosk")
    table = store.load()
    assert table.lookup(generate_token()) is None
    assert table.lookup(token[:-1]) is None
    assert table.lookup(token + "x") is None
    assert table.lookup("") is None


def test_add_twice_is_refused_and_revoke_removes(store: TokenStore) -> None:
    """A second add of the same name says how to rotate; revoke deletes, then add works again."""
    old = store.add("kiosk")
    with pytest.raises(InvalidRequest, match="revoke it first"):
        store.add("kiosk")
    removed = store.revoke("kiosk")
    assert removed.app == "kiosk"
    assert store.load().lookup(old) is None
    new = store.add("kiosk")
    assert new != old
    with pytest.raises(NotFound, match="kiosk"):
        store.revoke("kiosk-typo")


@pytest.mark.parametrize("name", ["", "Kiosk", "1app", "default", "a" * 64, "my app", "../x"])
def test_invalid_app_names_are_refused(store: TokenStore, name: str) -> None:
    """Names are lower-case identifiers; 'default' is the main socket's identity."""
    with pytest.raises(InvalidRequest):
        store.add(name)
    assert not store.path.exists()


def test_list_is_sorted_and_missing_file_is_empty(store: TokenStore) -> None:
    """No file means no apps; list returns records by name."""
    assert store.list() == []
    store.add("zeta")
    store.add("alpha", CallerRole.ADMIN)
    assert [(r.app, r.role) for r in store.list()] == [
        ("alpha", CallerRole.ADMIN),
        ("zeta", CallerRole.APP),
    ]


def test_concurrent_writers_lose_nothing(store: TokenStore) -> None:
    """Writers serialise on a lock: 40 adds from 8 threads all land in the file."""
    names = [f"app-{i}" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        tokens = dict(zip(names, pool.map(store.add, names), strict=True))
    table = store.load()
    assert len(table) == 40
    for name, token in tokens.items():
        record = table.lookup(token)
        assert record is not None
        assert record.app == name


def test_file_writable_by_others_is_refused(store: TokenStore) -> None:
    """A group/world-writable token file could grant anyone admin: loading it fails."""
    store.add("kiosk")
    os.chmod(store.path, 0o620)
    with pytest.raises(ConfigError, match="chmod 600"):
        store.load()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"version": 2, "apps": {}}', "not a handoffd token file"),
        ('{"version": 1, "apps": []}', "'apps' must be an object"),
        ('{"version": 1, "apps": {"x": {"role": "root", "sha256": "00"}}}', "app 'x'"),
        ('{"version": 1, "apps": {"x": {"role": "app", "sha256": "zz"}}}', "sha256"),
    ],
)
def test_corrupt_files_are_config_errors(store: TokenStore, content: str, message: str) -> None:
    """A hand-edited file that is wrong fails loudly, with the file name and the fix."""
    store.path.parent.mkdir(parents=True)
    fd = os.open(store.path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(ConfigError, match=message) as exc:
        store.load()
    assert str(store.path) in exc.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create files owned by another user")
def test_root_keeps_the_daemon_user_as_owner(store: TokenStore) -> None:
    """Run as root (handoffctl via sudo), writes keep the state directory's owner."""
    store.path.parent.mkdir(parents=True)
    os.chown(store.path.parent, 65534, 65534)
    store.add("kiosk")
    st = store.path.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    store.add("other")  # and the next write keeps the file's owner
    assert store.path.stat().st_uid == 65534
