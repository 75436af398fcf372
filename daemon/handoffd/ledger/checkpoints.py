"""Signed checkpoints: "this ledger had N entries and entry N hashed to H at time T".

A checkpoint is signed with the device's Ed25519 key over the canonical JSON of
``{"format", "ledger_uid", "entry_count", "head_hash", "time", "kind"}`` (sorted keys, no
whitespace). It is stored in the ledger's ``checkpoints`` table and exported as a small JSON
file (:meth:`Checkpoint.to_json`) meant to leave the device: a copy kept elsewhere is what
catches tail truncation and a whole chain recomputed by someone who holds the device's key.

Kinds: ``periodic`` (the daemon, every ``checkpoint_every_s``), ``manual`` (on demand) and
``prune`` (an anchor written before entries are pruned: it vouches for the removed prefix).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoffd.errors import ConfigError, InvalidRequest
from handoffd.ledger.keys import public_key_bytes
from handoffd.ledger.times import now_text

CHECKPOINT_FORMAT = "handoffd-ledger-checkpoint/1"
KINDS = ("periodic", "manual", "prune")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    ledger_uid: str
    #: number of entries ever written up to the head (= the head entry's ``seq``)
    entry_count: int
    #: hash of entry ``entry_count`` (the genesis hash when it is 0)
    head_hash: str
    time: str
    kind: str
    #: raw 32-byte Ed25519 public key that made ``signature``
    public_key: bytes
    signature: bytes

    def signed_message(self) -> bytes:
        return _message(self.ledger_uid, self.entry_count, self.head_hash, self.time, self.kind)

    def signature_valid(self, pinned_key: bytes | None = None) -> bool:
        """Whether the signature holds (and, if ``pinned_key`` is given, was made by it)."""
        if pinned_key is not None and pinned_key != self.public_key:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                self.signature, self.signed_message()
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "ledger_uid": self.ledger_uid,
            "entry_count": self.entry_count,
            "head_hash": self.head_hash,
            "time": self.time,
            "kind": self.kind,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str = "checkpoint") -> Checkpoint:
        try:
            data = json.loads(text)
            if data.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, not {CHECKPOINT_FORMAT!r}")
            return cls(
                ledger_uid=str(data["ledger_uid"]),
                entry_count=int(data["entry_count"]),
                head_hash=str(data["head_hash"]),
                time=str(data["time"]),
                kind=str(data["kind"]),
                public_key=base64.b64decode(data["public_key"], validate=True),
                signature=base64.b64decode(data["signature"], validate=True),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidRequest(
                f"{where}: not a handoffd ledger checkpoint ({exc}); export one with "
                "`handoffctl audit checkpoint --out FILE`"
            ) from None

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the checkpoint ({exc.strerror})") from None
        except UnicodeDecodeError:
            text = ""
        return cls.from_json(text, where=str(path))

    def export_name(self) -> str:
        stamp = self.time.replace(":", "").replace("-", "").replace(".", "")
        return f"checkpoint-{self.entry_count:012d}-{stamp}-{self.kind}.json"


def _message(uid: str, count: int, head: str, time: str, kind: str) -> bytes:
    fields = {
        "format": CHECKPOINT_FORMAT,
        "ledger_uid": uid,
        "entry_count": count,
        "head_hash": head,
        "time": time,
        "kind": kind,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_checkpoint(
    key: Ed25519PrivateKey,
    *,
    ledger_uid: str,
    entry_count: int,
    head_hash: str,
    kind: str,
    time: str | None = None,
) -> Checkpoint:
    if kind not in KINDS:
        raise InvalidRequest(f"checkpoint kind {kind!r} unknown; use one of {', '.join(KINDS)}")
    when = time or now_text()
    message = _message(ledger_uid, entry_count, head_hash, when, kind)
    return Checkpoint(
        ledger_uid=ledger_uid,
        entry_count=entry_count,
        head_hash=head_hash,
        time=when,
        kind=kind,
        public_key=public_key_bytes(key),
        signature=key.sign(message),
    )


def export_checkpoint(checkpoint: Checkpoint, directory: Path) -> Path:
    """Write ``checkpoint`` into ``directory`` (created if needed) under a generated name."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_checkpoint_file(checkpoint, directory)


def write_checkpoint_file(checkpoint: Checkpoint, path: Path) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (an existing directory gets a generated
    file name)."""
    if path.is_dir():
        path = path / checkpoint.export_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(checkpoint.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
