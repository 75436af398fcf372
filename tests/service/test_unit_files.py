"""The systemd unit, sysusers and tmpfiles snippets say what the daemon's code relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from handoffd.service.credentials import CLOUD_API_KEY, LEDGER_SIGNING_KEY
from handoffd.service.exitcodes import EX_CONFIG

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD / "handoffd.service"


def _unit() -> dict[str, list[str]]:
    """Key -> values of the [Service] and [Unit] sections (keys may repeat)."""
    values: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    return values


def test_notify_watchdog_restart_and_reload() -> None:
    """Type=notify with a watchdog, restart on failure except EX_CONFIG, reload via SIGHUP."""
    u = _unit()
    assert u["Type"] == ["notify"]
    assert u["NotifyAccess"] == ["main"]
    assert u["WatchdogSec"]
    assert u["Restart"] == ["on-failure"]
    assert str(EX_CONFIG) in u["RestartPreventExitStatus"][0].split()
    assert u["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_credentials_match_what_the_code_reads() -> None:
    """LoadCredential= ids are the names handoffd.service.credentials reads."""
    ids = {v.split(":", 1)[0] for v in _unit()["LoadCredential"]}
    assert ids == {CLOUD_API_KEY, LEDGER_SIGNING_KEY}


def test_directories_user_and_umask() -> None:
    """State/runtime/config directories, the static user, and a private umask."""
    u = _unit()
    for key in ("StateDirectory", "RuntimeDirectory", "ConfigurationDirectory"):
        assert u[key] == ["handoffd"]
    assert u["User"] == ["handoffd"]
    assert u["Group"] == ["handoffd"]
    assert u["UMask"] == ["0077"]
    assert u["RuntimeDirectoryMode"] == ["0711"]  # app sockets live in group-owned subdirs


def test_accelerators_stay_reachable() -> None:
    """No PrivateDevices= (it hides GPUs); a closed device policy allow-lists GPU/NPU nodes."""
    u = _unit()
    assert "PrivateDevices" not in u
    assert u["DevicePolicy"] == ["closed"]
    allowed = " ".join(u["DeviceAllow"])
    for needle in (
        "char-nvidia",
        "char-nvidia-uvm",
        "/dev/nvidiactl",
        "/dev/dri/renderD128",
        "char-accel",
    ):
        assert needle in allowed


def test_sysusers_and_tmpfiles_define_the_user_and_dirs() -> None:
    """The user exists, is in render/video, and the directories exist before the first start."""
    sysusers = (SYSTEMD / "handoffd.sysusers.conf").read_text()
    assert re.search(r"^u handoffd ", sysusers, re.M)
    assert re.search(r"^m handoffd render$", sysusers, re.M)
    tmpfiles = (SYSTEMD / "handoffd.tmpfiles.conf").read_text()
    for path in ("/var/lib/handoffd", "/etc/handoffd", "/etc/credstore"):
        assert re.search(rf"^d\s+{re.escape(path)}\s", tmpfiles, re.M)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_exposure_score_is_at_most_2() -> None:
    """systemd-analyze security --offline rates the unit 2.0 or better (lower is safer)."""
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 2.0


def test_install_script_dry_run_changes_nothing(tmp_path: Path) -> None:
    """install.sh --dry-run --root lists what it would do and creates nothing."""
    out = subprocess.run(
        ["bash", str(SYSTEMD / "install.sh"), "--dry-run", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "would install: /etc/systemd/system/handoffd.service" in out.stdout
    assert "would create: /etc/handoffd/config.yaml" in out.stdout
    assert list(tmp_path.iterdir()) == []
