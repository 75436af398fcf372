"""The ``auth:`` section of the daemon config: who may call, over which listener, as what.

Two ways to tell apps apart (both may be used at once):

- **per-app Unix sockets**: ``apps: {NAME: {socket: PATH, group: GROUP, mode: "0660"}}``. The
  socket *is* the identity; the file permissions (the socket's group and mode, inside a
  directory of that group) decide who can connect. grpcio exposes no peer credentials on Unix
  sockets, so identity cannot come from anywhere else without a token.
- **bearer tokens** in gRPC metadata (``authorization: Bearer hfd_...``), created with
  ``handoffctl apps add NAME``, stored hashed in ``token_file``. Required on TCP.

The main socket (``server.socket``) gives the identity ``default`` with ``default_socket_role``.
The default is ``admin``: the main socket is 0660 owned by the daemon's user and group, so only
the device owner (root, the ``handoffd`` user and members of the ``handoffd`` group) can open
it. If you let ordinary apps use the main socket, set ``default_socket_role: app`` and give the
administrator a token with ``handoffctl apps add NAME --role admin``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from handoffd.schema.base import Frozen

#: app names: lower-case, start with a letter, at most 63 characters
APP_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
#: the identity of callers on the main socket; no app may take it
DEFAULT_APP = "default"
#: caller roles as config values (the same strings as ``handoffd.domain.CallerRole``; the schema is
#: foundation and does not import the domain)
RoleName = Literal["app", "admin"]
_GROUP_PATTERN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$", re.IGNORECASE)


def check_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise ValueError saying why."""
    if not APP_NAME_PATTERN.match(name):
        raise ValueError(
            f"app name {name!r} is invalid: use lower-case letters, digits, '-' or '_', "
            "starting with a letter, at most 63 characters"
        )
    if name == DEFAULT_APP:
        raise ValueError(
            f"app name {DEFAULT_APP!r} is reserved for callers on the main socket; pick another"
        )
    return name


def _check_socket_mode(value: str) -> str:
    try:
        mode = int(value, 8)
    except ValueError:
        raise ValueError(f"expected an octal mode such as '0660', got {value!r}") from None
    if mode & ~0o777:
        raise ValueError(f"socket mode {value} has bits beyond 0777: use 0600 or 0660")
    if mode & 0o007:
        raise ValueError(f"socket mode {value} lets every user connect: use 0600 or 0660")
    if mode & 0o600 != 0o600:
        raise ValueError(f"socket mode {value} locks the daemon's own user out: use 0600 or 0660")
    return value


class AppSocketSettings(Frozen):
    """One app's own Unix socket."""

    #: where the socket goes; default ``<runtime dir>/apps/NAME/handoffd.sock``
    socket: Path | None = None
    #: the Unix group whose members may connect (the app's user must be in it)
    group: str
    #: the socket file's mode; 0660 lets the group connect
    mode: str = "0660"
    #: what callers on this socket may do
    role: RoleName = "app"

    @field_validator("group")
    @classmethod
    def _group_name(cls, value: str) -> str:
        if not _GROUP_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a valid Unix group name")
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        return _check_socket_mode(value)

    @field_validator("socket")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"socket path {str(value)!r} must be absolute")
        return value

    def mode_bits(self) -> int:
        return int(self.mode, 8)


class AuthSettings(Frozen):
    """``auth:`` — app identities and roles."""

    #: per-app Unix sockets, keyed by app name
    apps: dict[str, AppSocketSettings] = Field(default_factory=dict)
    #: hashed bearer tokens (JSON, 0600); default ``<state dir>/tokens.json``
    token_file: Path | None = None
    #: role of callers on the main socket without a token (identity ``default``)
    default_socket_role: RoleName = "admin"
    #: refuse callers on Unix sockets that present no token (TCP always requires one)
    require_token_on_unix: bool = False
    #: how often (at most) the daemon re-reads the token file to see added or revoked apps
    token_refresh_s: Annotated[float, Field(ge=0, le=3600)] = 1.0

    @field_validator("apps")
    @classmethod
    def _app_names(cls, value: dict[str, AppSocketSettings]) -> dict[str, AppSocketSettings]:
        for name in value:
            check_app_name(name)
        return value

    @model_validator(mode="after")
    def _distinct_sockets(self) -> AuthSettings:
        seen: dict[Path, str] = {}
        for name, app in self.apps.items():
            if app.socket is None:
                continue
            if app.socket in seen:
                raise ValueError(
                    f"apps {seen[app.socket]!r} and {name!r} share the socket {app.socket}: "
                    "give each app its own socket"
                )
            seen[app.socket] = name
        return self
