"""Per-app Unix sockets: directories and files whose permissions are the access control.

Layout (default, under the runtime directory ``/run/handoffd``, mode 0711)::

    apps/                    0711 handoffd:handoffd   traversable, not listable
    apps/NAME/               0750 handoffd:GROUP      only GROUP's members get in
    apps/NAME/handoffd.sock  0660 handoffd:GROUP      (auth.apps.NAME.mode)

The directory's group and mode protect the socket from the moment it is bound (before its own
mode can be set). Giving a directory a group needs the daemon to be root or a member of that
group: add ``m handoffd GROUP`` to sysusers.d (see systemd/handoffd.sysusers.conf).

Blocking (file system calls): call at start-up, before the listeners start.
"""

from __future__ import annotations

import contextlib
import grp
import os
import socket
import stat
from pathlib import Path

from handoffd.errors import ConfigError
from handoffd.schema.auth import AppSocketSettings

SOCKET_NAME = "handoffd.sock"
_APP_DIR_MODE = 0o750
_APPS_DIR_MODE = 0o711
#: the kernel's limit for sun_path, including the terminating NUL
_MAX_SOCKET_PATH = 107


def app_socket_path(runtime_dir: Path, name: str, app: AppSocketSettings) -> Path:
    """Where app ``name``'s socket goes: its configured path or ``RUNTIME/apps/NAME/...``."""
    path = app.socket if app.socket is not None else runtime_dir / "apps" / name / SOCKET_NAME
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ConfigError(
            f"auth.apps.{name}.socket: {path} is longer than {_MAX_SOCKET_PATH} bytes, the limit "
            "for Unix socket paths; choose a shorter path"
        )
    return path


def group_id(name: str) -> int:
    """The gid of group ``name``, or a ConfigError saying how to create it."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(
            f"group {name!r} does not exist: create it (groupadd --system {name}, or a "
            f"'g {name} -' line in sysusers.d) and add the app's user to it"
        ) from None


def _chgrp(path: Path, gid: int, what: str) -> None:
    try:
        os.chown(path, -1, gid, follow_symlinks=False)
    except PermissionError:
        group = grp.getgrgid(gid).gr_name
        raise ConfigError(
            f"cannot give {what} {path} the group {group!r}: the daemon's user is not a member. "
            f"Add 'm {_user_name()} {group}' to /etc/sysusers.d/handoffd-apps.conf and run "
            f"systemd-sysusers, or create the directory as root: install -d -m 0750 -g {group} "
            f"{path if what == 'directory' else path.parent}"
        ) from None


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def remove_stale_socket(path: Path, *, owner: str = "another process") -> None:
    """Remove a socket file nobody listens on (a crashed daemon's); refuse a live socket or a
    file that is not a socket. ``owner`` names who would be listening, for the message."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(f"{path} exists and is not a socket: remove it or choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # stale: nobody listens
        return
    finally:
        probe.close()
    raise ConfigError(f"{path}: {owner} is already listening there; stop it first")


def prepare_app_socket(path: Path, group: str) -> int:
    """Before binding: make the socket's directory (0750, group ``group``), clear a stale
    socket. Returns the group's gid for :func:`secure_app_socket`."""
    gid = group_id(group)
    directory = path.parent
    apps_dir = directory.parent
    if apps_dir.name == "apps" and not apps_dir.exists():
        apps_dir.mkdir(parents=True, mode=_APPS_DIR_MODE)
        os.chmod(apps_dir, _APPS_DIR_MODE)  # mkdir's mode is filtered by the umask
    try:
        directory.mkdir(parents=True, exist_ok=False, mode=_APP_DIR_MODE)
        created = True
    except FileExistsError:
        created = False
    st = directory.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{directory} is not a directory: remove it or choose another socket")
    if created or st.st_uid == os.geteuid():
        if st.st_gid != gid:
            _chgrp(directory, gid, "directory")
        os.chmod(directory, _APP_DIR_MODE)
    elif st.st_mode & 0o002:
        raise ConfigError(f"{directory} is writable by every user: chmod o-w {directory}")
    remove_stale_socket(path)
    return gid


def secure_app_socket(path: Path, gid: int, mode: int) -> None:
    """After binding: give the socket file its group and mode."""
    _chgrp(path, gid, "socket")
    os.chmod(path, mode)


def remove_app_socket(path: Path) -> None:
    """At shutdown: remove the socket file (the directory stays)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
