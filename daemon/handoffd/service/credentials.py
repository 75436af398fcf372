"""Secrets passed by systemd's ``LoadCredential=`` (``$CREDENTIALS_DIRECTORY/<name>``).

The unit loads ``cloud-api-key`` and ``ledger-signing-key`` from ``/etc/credstore``; a missing
source file is not fatal to systemd, so an absent or empty credential reads as None and the
caller decides whether that is an error. Call at start-up (it reads a file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from handoffd.errors import ConfigError

CLOUD_API_KEY = "cloud-api-key"
LEDGER_SIGNING_KEY = "ledger-signing-key"

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: systemd's own limit for one credential
MAX_CREDENTIAL_BYTES = 1 << 20


def read_credential(name: str, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The credential's bytes, or None if there is no credentials directory, file or content."""
    if not _NAME.match(name) or name in (".", ".."):
        raise ValueError(f"invalid credential name {name!r}")
    env = os.environ if environ is None else environ
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CREDENTIAL_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot read credential {name!r} from {path}: {exc.strerror}; "
            "check LoadCredential= in the unit and the file's permissions"
        ) from None
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise ConfigError(f"credential {name!r} at {path} is larger than 1 MiB")
    return data or None


def read_text_credential(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A text credential with surrounding whitespace (the trailing newline) removed."""
    data = read_credential(name, environ)
    if data is None:
        return None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"credential {name!r} is not UTF-8 text") from None
    return text or None
