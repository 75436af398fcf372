"""API keys: read once from their configured source, held so that they never print.

A key comes from a file, a systemd credential (``$CREDENTIALS_DIRECTORY/NAME``, see
``LoadCredential=``) or an environment variable. Errors name the source and the fix, never the
key. :class:`ApiKey` hides its value from ``repr``/``str`` so that a stray log line, exception or
debugger print does not leak it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from handoffd.errors import ConfigError
from handoffd.logsetup import get_logger
from handoffd.schema.cloud import CloudTargetSettings

log = get_logger(__name__)

#: the largest key file read; real keys are well under 1 KiB
MAX_KEY_BYTES = 16 * 1024


class ApiKey:
    """A secret string that does not show itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself: only for the Authorization header."""
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('********')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("ApiKey cannot be pickled")


def _checked(raw: str, where: str) -> ApiKey:
    value = raw.strip()
    if not value:
        raise ConfigError(f"{where}: the key is empty; put the API key in it")
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in value):
        raise ConfigError(
            f"{where}: the key has spaces, line breaks or non-ASCII characters inside; "
            "it must be the bare key on one line"
        )
    return ApiKey(value)


def _read_key_file(path: Path, where: str) -> ApiKey:
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{where}: {path} is not a regular file")
            data = fh.read(MAX_KEY_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{where}: {path} does not exist; create it holding the key") from None
    except PermissionError:
        raise ConfigError(
            f"{where}: {path} is not readable by this user (uid {os.getuid()}); "
            "fix its owner or mode (0600)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: {path} is a directory; name the key file itself") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_BYTES:
        raise ConfigError(f"{where}: {path} is over {MAX_KEY_BYTES} bytes; it must hold one key")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "cloud.key_file_open",
            where=where,
            path=str(path),
            mode=oct(stat.S_IMODE(st.st_mode)),
            fix="chmod 600",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not UTF-8 text") from None
    return _checked(text, where)


def resolve_api_key(
    target: str,
    settings: CloudTargetSettings,
    environ: Mapping[str, str] | None = None,
) -> ApiKey | None:
    """Read the key of ``target`` from its configured source; ``None`` for ``no_api_key``.

    Blocking file IO: call it at startup or reload, not on the event loop during requests.
    """
    env = os.environ if environ is None else environ
    where = f"cloud target {target!r} {settings.key_source}"
    if settings.api_key_file is not None:
        return _read_key_file(settings.api_key_file, where)
    if settings.api_key_credential is not None:
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError(
                f"{where}: $CREDENTIALS_DIRECTORY is not set; run under systemd with "
                f"LoadCredential={settings.api_key_credential}:/path/to/key, "
                "or use api_key_file"
            )
        return _read_key_file(Path(directory) / settings.api_key_credential, where)
    if settings.api_key_env is not None:
        value = env.get(settings.api_key_env)
        if value is None:
            raise ConfigError(
                f"{where}: ${settings.api_key_env} is not set; export it in the daemon's "
                "environment, or use api_key_credential"
            )
        return _checked(value, where)
    return None
