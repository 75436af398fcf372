"""Per-app sockets: the directory and file permissions are the access control."""

from __future__ import annotations

import grp
import os
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from handoffd.auth import app_socket_path, prepare_app_socket, secure_app_socket
from handoffd.auth.app_sockets import remove_app_socket
from handoffd.errors import ConfigError
from handoffd.schema.auth import AppSocketSettings

SYSTEM_PYTHON = Path("/usr/bin/python3")
NOBODY = 65534


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A short, traversable runtime dir like /run/handoffd (0711)."""
    with tempfile.TemporaryDirectory(prefix="hfd-s-", dir="/tmp") as d:
        os.chmod(d, 0o711)
        yield Path(d)


def _my_group() -> str:
    return grp.getgrgid(os.getgid()).gr_name


def test_default_path_is_under_the_runtime_dir(runtime_dir: Path) -> None:
    """Without socket:, an app's socket is RUNTIME/apps/NAME/handoffd.sock."""
    app = AppSocketSettings(group="video")
    assert app_socket_path(runtime_dir, "kiosk", app) == (
        runtime_dir / "apps" / "kiosk" / "handoffd.sock"
    )
    custom = AppSocketSettings(group="video", socket=Path("/run/kiosk/h.sock"))
    assert app_socket_path(runtime_dir, "kiosk", custom) == Path("/run/kiosk/h.sock")


def test_overlong_socket_path_is_a_config_error(runtime_dir: Path) -> None:
    """Paths past the kernel's 107-byte sun_path limit fail at start-up, naming the key."""
    app = AppSocketSettings(group="video", socket=Path("/run/" + "x" * 120 + "/h.sock"))
    with pytest.raises(ConfigError, match=r"auth\.apps\.kiosk\.socket"):
        app_socket_path(runtime_dir, "kiosk", app)


async def test_prepared_socket_has_the_group_and_mode(runtime_dir: Path) -> None:
    """apps/ is 0711, apps/NAME is 0750 with the app's group, the socket 0660 with that group."""
    group = _my_group()
    path = app_socket_path(runtime_dir, "kiosk", AppSocketSettings(group=group))
    gid = prepare_app_socket(path, group)
    server = grpc.aio.server()
    server.add_insecure_port(f"unix://{path}")
    await server.start()
    try:
        secure_app_socket(path, gid, 0o660)
        apps_dir, app_dir = path.parent.parent, path.parent
        assert stat.S_IMODE(apps_dir.stat().st_mode) == 0o711
        assert stat.S_IMODE(app_dir.stat().st_mode) == 0o750
        assert app_dir.stat().st_gid == gid
        st = path.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == gid
    finally:
        await server.stop(None)
    remove_app_socket(path)
    assert not path.exists()


def test_stale_socket_is_replaced_and_live_one_refused(runtime_dir: Path) -> None:
    """A socket nobody listens on is removed; one with a listener means another daemon runs."""
    group = _my_group()
    path = runtime_dir / "apps" / "kiosk" / "handoffd.sock"
    prepare_app_socket(path, group)
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen()
    try:
        with pytest.raises(ConfigError, match="another process is already listening"):
            prepare_app_socket(path, group)
    finally:
        live.close()
    assert path.exists()  # closed without unlink: now stale
    prepare_app_socket(path, group)
    assert not path.exists()


def test_non_socket_in_the_way_is_refused(runtime_dir: Path) -> None:
    """A regular file at the socket path is never deleted."""
    path = runtime_dir / "apps" / "kiosk" / "handoffd.sock"
    path.parent.mkdir(parents=True)
    path.write_text("important")
    with pytest.raises(ConfigError, match="is not a socket"):
        prepare_app_socket(path, _my_group())
    assert path.read_text() == "important"


def test_unknown_group_says_how_to_create_it(runtime_dir: Path) -> None:
    """A group that does not exist is a ConfigError with the groupadd/sysusers fix."""
    with pytest.raises(ConfigError, match="groupadd"):
        prepare_app_socket(runtime_dir / "apps" / "x" / "handoffd.sock", "no-such-group-hfd")


def _connect_as_nobody(path: Path, extra_groups: list[int]) -> subprocess.CompletedProcess[str]:
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except PermissionError:\n"
        "    print('denied'); sys.exit(3)\n"
        "print('connected')\n"
    )
    return subprocess.run(
        [str(SYSTEM_PYTHON), "-I", "-c", code, str(path)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=extra_groups,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs /usr/bin/python3 for the client")
def test_only_members_of_the_group_can_connect(runtime_dir: Path) -> None:
    """A user outside the app's group is refused by the kernel; a member connects."""
    group = next((g for g in ("adm", "video", "render", "users") if _group_exists(g)), None)
    if group is None:
        pytest.skip("no spare system group to test with")
    path = runtime_dir / "apps" / "kiosk" / "handoffd.sock"
    gid = prepare_app_socket(path, group)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    try:
        secure_app_socket(path, gid, 0o660)
        outsider = _connect_as_nobody(path, [])
        member = _connect_as_nobody(path, [gid])
    finally:
        listener.close()
    assert outsider.stdout.strip() == "denied", outsider.stderr
    assert member.stdout.strip() == "connected", member.stderr


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
