"""Checkpoints and keys: signing, export files, periodic checkpoints, key files and credentials."""

from __future__ import annotations

import asyncio
import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handoffd.errors import ConfigError, InvalidRequest
from handoffd.ledger import (
    Checkpoint,
    LedgerReader,
    load_or_create_hmac_key,
    load_or_create_signing_key,
    read_public_key,
    verify_ledger,
)
from handoffd.ledger.chain import GENESIS_HASH, canonical_json, entry_hash
from handoffd.ledger.keys import public_key_bytes

from tests.ledger.ledger_testkit import intent, open_ledger


def test_canonical_serialization_and_hash_are_stable() -> None:
    """The documented serialization (sorted keys, no spaces, UTF-8 as is) and entry hash give
    these exact bytes: a change here breaks every existing ledger, so it must be deliberate."""
    body = canonical_json({"b": 1, "a": "é", "c": [1.5, None], "d": {"z": 0.1, "y": True}})
    assert body == '{"a":"é","b":1,"c":[1.5,null],"d":{"y":true,"z":0.1}}'
    # sha256(b"1\n" + b"0" * 64 + b"\n" + body.encode()), computed independently
    assert entry_hash(1, GENESIS_HASH, body) == (
        "30c6dc6a211710f313ac27bcd75c4515121e3815fa310a89574026ea2ce732be"
    )


async def test_manual_checkpoint_is_stored_exported_and_verifiable(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    """checkpoint() signs the head, stores it in the ledger and writes a file whose JSON
    round-trips and whose signature holds."""
    path = tmp_path / "l.db"
    ledger = await open_ledger(path, signing_key)
    try:
        for _ in range(3):
            await ledger.record_intent(intent(ledger))
        made = await ledger.checkpoint(tmp_path / "out")
    finally:
        await ledger.aclose()
    (exported,) = (tmp_path / "out").iterdir()
    read = Checkpoint.read(exported)
    assert read == made
    assert read.entry_count == 3
    assert read.kind == "manual"
    assert read.signature_valid(public_key_bytes(signing_key))
    assert not read.signature_valid(public_key_bytes(Ed25519PrivateKey.generate()))
    with LedgerReader(path) as reader:
        assert reader.checkpoints() == [made]
    assert verify_ledger(path, external=[read]).ok


async def test_periodic_checkpoints_are_written_and_one_on_close(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    """With checkpoint_every_s set, the ledger checkpoints new entries on its own and once
    more on close, exporting each to the checkpoint directory."""
    path, out = tmp_path / "l.db", tmp_path / "cps"
    ledger = await open_ledger(path, signing_key, checkpoint_every_s=0.02, checkpoint_dir=out)
    try:
        await ledger.record_intent(intent(ledger))
        for _ in range(500):  # wait for the first periodic checkpoint (no timing asserted)
            if out.exists() and any(out.iterdir()):
                break
            await asyncio.sleep(0.01)
        await ledger.record_intent(intent(ledger))
    finally:
        await ledger.aclose()
    files = sorted(out.iterdir())
    kinds = {Checkpoint.read(f).kind for f in files}
    assert kinds == {"periodic"}
    assert max(Checkpoint.read(f).entry_count for f in files) == 2
    assert verify_ledger(path, external=[Checkpoint.read(f) for f in files]).ok


async def test_checkpoint_without_a_signing_key_says_how_to_get_one(tmp_path: Path) -> None:
    """A ledger opened without a signing key refuses to checkpoint, naming the fix."""
    ledger = await open_ledger(tmp_path / "l.db")
    try:
        with pytest.raises(ConfigError, match="signing_key"):
            await ledger.checkpoint()
    finally:
        await ledger.aclose()


def test_checkpoint_file_garbage_is_rejected() -> None:
    """Reading something that is not a checkpoint raises InvalidRequest with advice."""
    with pytest.raises(InvalidRequest, match="handoffctl audit checkpoint"):
        Checkpoint.from_json('{"format": "other"}')
    with pytest.raises(InvalidRequest):
        Checkpoint.from_json("not json")


def test_keys_are_created_once_with_mode_0600(tmp_path: Path) -> None:
    """The HMAC and signing keys are created on first use, owner-only, and reused after."""
    hmac_key = load_or_create_hmac_key(tmp_path)
    signing = load_or_create_signing_key(tmp_path)
    assert len(hmac_key) == 32
    for name in ("ledger-hmac-key", "ledger-signing-key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert load_or_create_hmac_key(tmp_path) == hmac_key
    assert public_key_bytes(load_or_create_signing_key(tmp_path)) == public_key_bytes(signing)


def test_systemd_credentials_win_over_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$CREDENTIALS_DIRECTORY/ledger-signing-key (an openssl PEM) is used when present."""
    creds = tmp_path / "creds"
    creds.mkdir()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (creds / "ledger-signing-key").write_bytes(pem)
    (creds / "ledger-hmac-key").write_bytes(b"c" * 40)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    state = tmp_path / "state"
    assert public_key_bytes(load_or_create_signing_key(state)) == public_key_bytes(key)
    assert load_or_create_hmac_key(state) == b"c" * 40
    assert not state.exists()


def test_bad_key_files_are_config_errors(tmp_path: Path) -> None:
    """A short HMAC key or a signing key that is not Ed25519 is refused with the fix."""
    (tmp_path / "ledger-hmac-key").write_bytes(b"short")
    with pytest.raises(ConfigError, match="at least 32"):
        load_or_create_hmac_key(tmp_path)
    (tmp_path / "ledger-signing-key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nxx\n")
    with pytest.raises(ConfigError, match="openssl genpkey"):
        load_or_create_signing_key(tmp_path)


def test_public_key_files_in_every_documented_form(tmp_path: Path) -> None:
    """read_public_key takes PEM, hex, base64 (as in a checkpoint file) and raw bytes."""
    key = Ed25519PrivateKey.generate()
    raw = public_key_bytes(key)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forms = {"pem": pem, "hex": raw.hex().encode(), "b64": base64.b64encode(raw), "raw": raw}
    for name, data in forms.items():
        (tmp_path / name).write_bytes(data)
        assert read_public_key(tmp_path / name) == raw, name
    (tmp_path / "bad").write_text("hello")
    with pytest.raises(ConfigError, match="public key"):
        read_public_key(tmp_path / "bad")
