"""Per-app bearer tokens, stored hashed in one JSON file.

A token is ``hfd_`` + 43 url-safe base64 characters (32 random bytes). Only its SHA-256 is
stored: the tokens are random, so a fast hash is enough (there is nothing to brute-force), and a
stolen token file grants nothing. ``handoffctl apps add NAME`` prints the token once.

The file (default ``<state dir>/tokens.json``) is written atomically (temp file, fsync, rename,
fsync of the directory) with mode 0600 and the owner of the file it replaces (or of its
directory), so a root-run ``handoffctl`` keeps it readable by the ``handoffd`` user. Writers
serialise on an ``flock`` of the directory. Reading refuses a file that others may write::

    {"version": 1,
     "apps": {"myapp": {"role": "app", "sha256": "<hex>", "hint": "hfd_AbCd",
                        "created": "2026-11-26T10:00:00+00:00"}}}
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from handoffd.domain import CallerRole
from handoffd.errors import ConfigError, InvalidRequest, NotFound
from handoffd.schema.auth import check_app_name

TOKEN_PREFIX = "hfd_"  # noqa: S105 - a public prefix, not a secret
_TOKEN_BYTES = 32
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43  # unpadded url-safe base64 of 32 bytes
_HINT_CHARS = len(TOKEN_PREFIX) + 4
FILE_VERSION = 1
#: the token file's name inside the state directory, unless auth.token_file says otherwise
TOKEN_FILENAME = "tokens.json"  # noqa: S105 - a file name, not a secret
MAX_FILE_BYTES = 4 << 20

#: identifies one state of the token file (stat fields that change on any rewrite, chmod or
#: chown), or None if it is absent
FileSignature = tuple[int, ...] | None


def default_token_file(state_dir: Path) -> Path:
    """Where the token file lives when ``auth.token_file`` is not set."""
    return state_dir / TOKEN_FILENAME


def generate_token() -> str:
    """A new random token: ``hfd_`` + 32 random bytes, url-safe base64 without padding."""
    raw = secrets.token_bytes(_TOKEN_BYTES)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def looks_like_token(value: str) -> bool:
    """Whether ``value`` has the shape of a handoffd token (says nothing about validity)."""
    if len(value) != TOKEN_LENGTH or not value.startswith(TOKEN_PREFIX):
        return False
    body = value[len(TOKEN_PREFIX) :]
    return all(c.isascii() and (c.isalnum() or c in "-_") for c in body)


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256 of its UTF-8 bytes)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One app's token, as stored (never the token itself)."""

    app: str
    role: CallerRole
    sha256: str
    hint: str
    created: str

    def to_json(self) -> dict[str, str]:
        return {
            "role": self.role.value,
            "sha256": self.sha256,
            "hint": self.hint,
            "created": self.created,
        }


class TokenTable:
    """An immutable snapshot of the token file, indexed by token hash."""

    def __init__(self, records: Mapping[str, TokenRecord], signature: FileSignature = None):
        self._by_app = MappingProxyType(dict(records))
        self._by_hash = MappingProxyType({r.sha256: r for r in records.values()})
        self.signature = signature

    @classmethod
    def empty(cls) -> TokenTable:
        return cls({})

    def lookup(self, token: str) -> TokenRecord | None:
        """The record of ``token``, or None if no app holds it."""
        if not looks_like_token(token):
            return None
        return self._by_hash.get(hash_token(token))

    @property
    def apps(self) -> Mapping[str, TokenRecord]:
        return self._by_app

    def __len__(self) -> int:
        return len(self._by_app)


def _stat_signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode, st.st_uid)


def _signature(path: Path) -> FileSignature:
    try:
        return _stat_signature(path.stat())
    except FileNotFoundError:
        return None


def _parse(data: Any, path: Path) -> dict[str, TokenRecord]:
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
        raise ConfigError(f"{path}: not a handoffd token file (expected version {FILE_VERSION})")
    apps = data.get("apps")
    if not isinstance(apps, dict):
        raise ConfigError(f"{path}: 'apps' must be an object")
    records: dict[str, TokenRecord] = {}
    for name, entry in apps.items():
        try:
            check_app_name(name)
            if not isinstance(entry, dict):
                raise ValueError("entry must be an object")
            role = CallerRole(entry["role"])
            digest = str(entry["sha256"])
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("sha256 must be 64 lower-case hex digits")
            records[name] = TokenRecord(
                name, role, digest, str(entry.get("hint", "")), str(entry.get("created", ""))
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"{path}: app {name!r}: {exc}; recreate it with handoffctl apps revoke/add"
            ) from None
    return records


class TokenStore:
    """Reads and edits the token file. All methods block (file IO): call them off the loop."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def signature(self) -> FileSignature:
        """A cheap stat-based fingerprint of the file (changes on every rewrite)."""
        return _signature(self.path)

    def load(self) -> TokenTable:
        """Read and validate the file; a missing file is an empty table."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return TokenTable.empty()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the token file {self.path}: {exc.strerror}; it must be a regular "
                "file readable by the daemon's user (handoffctl apps add creates it)"
            ) from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            self._check_safe(st)
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(f"{self.path}: token file larger than 4 MiB")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"{self.path}: invalid JSON ({exc}); restore it from a backup "
                "or delete it and re-add the apps"
            ) from None
        return TokenTable(_parse(data, self.path), _stat_signature(st))

    def _check_safe(self, st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{self.path}: the token file must be a regular file")
        if st.st_mode & 0o022:
            raise ConfigError(
                f"{self.path}: the token file is writable by others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {self.path}"
            )
        # whoever owns the directory can replace the file anyway, so that owner is fine too
        trusted = {0, os.geteuid()}
        with contextlib.suppress(OSError):
            trusted.add(self.path.parent.stat().st_uid)
        if st.st_uid not in trusted:
            raise ConfigError(
                f"{self.path}: the token file belongs to uid {st.st_uid}, not to this user, root "
                f"or the owner of its directory; run: chown {os.geteuid()} {self.path}"
            )

    def add(self, app: str, role: CallerRole = CallerRole.APP) -> str:
        """Create ``app`` with a new token and return the token (it is not stored anywhere)."""
        try:
            check_app_name(app)
        except ValueError as exc:
            raise InvalidRequest(str(exc), field="name") from None
        token = generate_token()
        record = TokenRecord(
            app,
            role,
            hash_token(token),
            token[:_HINT_CHARS],
            datetime.now(UTC).replace(microsecond=0).isoformat(),
        )
        with self._locked():
            records = dict(self.load().apps)
            if app in records:
                raise InvalidRequest(
                    f"app {app!r} already has a token; revoke it first with "
                    f"`handoffctl apps revoke {app}`, then add it again",
                    field="name",
                )
            records[app] = record
            self._write(records)
        return token

    def revoke(self, app: str) -> TokenRecord:
        """Delete ``app``'s token; its callers are refused from the next refresh on."""
        with self._locked():
            records = dict(self.load().apps)
            if app not in records:
                known = ", ".join(sorted(records)) or "none"
                raise NotFound(f"no app named {app!r} has a token (apps with tokens: {known})")
            removed = records.pop(app)
            self._write(records)
        return removed

    def list(self) -> list[TokenRecord]:
        return sorted(self.load().apps.values(), key=lambda r: r.app)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigError(f"cannot open {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(dfd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(dfd)  # releases the lock

    def _owner(self) -> tuple[int, int]:
        for candidate in (self.path, self.path.parent):
            with contextlib.suppress(FileNotFoundError):
                st = candidate.stat()
                return st.st_uid, st.st_gid
        return os.geteuid(), os.getegid()

    def _write(self, records: Mapping[str, TokenRecord]) -> None:
        doc = {
            "version": FILE_VERSION,
            "apps": {name: records[name].to_json() for name in sorted(records)},
        }
        payload = (json.dumps(doc, indent=2) + "\n").encode()
        directory = self.path.parent
        tmp = directory / f".{self.path.name}.{secrets.token_hex(6)}.tmp"
        uid, gid = self._owner()
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fchmod(fh.fileno(), 0o600)
                if os.geteuid() == 0 and (uid, gid) != (0, 0):
                    os.fchown(fh.fileno(), uid, gid)  # keep it readable by the daemon's user
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
