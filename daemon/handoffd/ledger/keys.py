"""The ledger's two per-device keys: the HMAC key for prompt hashes and the Ed25519 signing key.

Each is looked up, in order, as a systemd credential (``$CREDENTIALS_DIRECTORY/<name>``, see
``LoadCredential=``) and as a file in the state directory; if neither exists the file is created
(mode 0600, written to a temporary name and linked into place, so two processes starting at once
end up with the same key). File formats:

- ``ledger-hmac-key``: at least 32 raw bytes (created as 32 random bytes).
- ``ledger-signing-key``: an Ed25519 private key as PKCS#8 PEM (what
  ``openssl genpkey -algorithm ed25519`` writes) or 32 raw bytes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoffd.errors import ConfigError

HMAC_KEY_NAME = "ledger-hmac-key"
SIGNING_KEY_NAME = "ledger-signing-key"
_MIN_HMAC_KEY = 32


def _credential(name: str) -> Path | None:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / name).is_file():
        return Path(directory) / name
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise ConfigError(
            f"{path}: permission denied; run as the daemon's user "
            "(e.g. sudo -u handoffd handoffctl ...) or as root"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def _create_exclusive(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 unless it exists (then keep the existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: keep theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_hmac_key(state_dir: Path) -> bytes:
    """The per-device key for prompt HMACs (credential, else state file, else a new file)."""
    path = _credential(HMAC_KEY_NAME) or state_dir / HMAC_KEY_NAME
    if not path.exists():
        _create_exclusive(path, secrets.token_bytes(32))
    key = _read(path)
    if len(key) < _MIN_HMAC_KEY:
        raise ConfigError(
            f"{path}: the HMAC key is {len(key)} bytes; it needs at least {_MIN_HMAC_KEY} "
            "(e.g. head -c 32 /dev/urandom > FILE)"
        )
    return key


def parse_signing_key(data: bytes, where: str) -> Ed25519PrivateKey:
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"{where}: not an Ed25519 private key; create one with "
            "`openssl genpkey -algorithm ed25519 -out FILE` (PEM) or remove the file "
            "to let handoffd create one"
        )
    return key


def read_signing_key(path: Path) -> Ed25519PrivateKey:
    """The signing key in ``path`` (PEM or 32 raw bytes)."""
    return parse_signing_key(_read(path), str(path))


def load_or_create_signing_key(state_dir: Path) -> Ed25519PrivateKey:
    """The per-device checkpoint signing key (credential, else state file, else a new file)."""
    path = _credential(SIGNING_KEY_NAME) or state_dir / SIGNING_KEY_NAME
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _create_exclusive(path, pem)
    return parse_signing_key(_read(path), str(path))


def load_signing_key(state_dir: Path) -> Ed25519PrivateKey:
    """The signing key if it exists (credential or state file); never creates one."""
    path = _credential(SIGNING_KEY_NAME) or state_dir / SIGNING_KEY_NAME
    if not path.exists():
        raise ConfigError(
            f"no ledger signing key at {path}: handoffd creates it when it first opens the "
            "ledger; run this as the daemon's user, or pass --state-dir"
        )
    return parse_signing_key(_read(path), str(path))


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def read_public_key(path: Path) -> bytes:
    """A pinned public key from a file: PEM, 64 hex digits, base64 of 32 bytes, or raw 32 bytes."""
    data = _read(path)
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if isinstance(key, Ed25519PublicKey):
            return public_key_bytes(key)
    elif len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    elif len(data) == 32:
        return data
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            raw = b""
        if len(raw) == 32:
            return raw
    raise ConfigError(
        f"{path}: not an Ed25519 public key (PEM, 64 hex digits or base64 of 32 bytes); "
        "the `public_key` of an exported checkpoint file is one"
    )
