"""The real ``handoffd`` as a subprocess, for whole-daemon system tests.

:class:`DaemonProcess` starts ``python -m handoffd.server --config FILE`` in its own session with
its stdout (JSON logs) and stderr in files, waits for readiness through the gRPC health service
with a bounded timeout, and signals, kills and reaps it. :class:`DaemonFleet` writes configs,
starts daemons and, when the test ends, kills whatever still runs and scans every daemon's output
for strings that must never be logged (prompts, API keys, app tokens).

``run_ctl`` runs the ``handoffctl`` console script the way a user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.log_scan import Finding, scan_lines

REPO = Path(__file__).resolve().parents[2]
HANDOFFCTL = Path(sys.executable).parent / "handoffctl"
POLICY = REPO / "policies" / "default.yaml"

#: how long a daemon may take to answer SERVING (imports + tiny model load on a busy 2-core box)
READY_TIMEOUT_S = 90.0
#: how long one handoffctl run may take
CTL_TIMEOUT_S = 90.0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DaemonFailed(AssertionError):
    """The daemon exited or never became ready; the message carries its stderr and log tail."""


def cloud_target(
    url: str,
    *,
    api_key_env: str | None = None,
    input_price: float = 1.0,
    output_price: float = 2.0,
    **extra: Any,
) -> dict[str, Any]:
    """A ``cloud.targets.<name>`` entry for the fake cloud at ``url``."""
    target: dict[str, Any] = {
        "base_url": url,
        "model": "fake-model",
        "price_usd_per_mtok": {"input": input_price, "output": output_price},
        "max_retries": 0,
        "max_concurrent": 128,
    }
    if api_key_env is not None:
        target["api_key_env"] = api_key_env
    else:
        target["no_api_key"] = True
    target.update(extra)
    return target


def daemon_config(
    model: Path,
    socket: Path,
    *,
    grace_period_s: float = 5.0,
    cloud: Mapping[str, Any] | None = None,
    policy_files: Iterable[Path] = (),
    policy: Mapping[str, Any] | None = None,
    ledger: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A daemon config (as plain data) for the tiny model on CPU with JSON logs."""
    config: dict[str, Any] = {
        "model": {"path": str(model), "providers": ["CPUExecutionProvider"]},
        "server": {"socket": str(socket), "grace_period_s": grace_period_s},
        "log": {"format": "json", "level": "info"},
        "ledger": {"checkpoint_every_s": 0, **(ledger or {})},
    }
    if cloud:
        config["cloud"] = {"targets": {"cloud": dict(cloud)}}
    files = [str(p) for p in policy_files]
    if files or policy:
        config["policy"] = {"files": files, **(policy or {})}
    return config


def write_yaml(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return path


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This test's environment (with its STATE_DIRECTORY) plus ``extra``, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("HANDOFFD_SOCKET", None)
    env.update(extra or {})
    return env


def _health_status(socket: Path, timeout_s: float) -> int | None:
    """The health service's answer for the whole server, or None if it did not answer."""
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


class DaemonProcess:
    """One ``handoffd`` subprocess; its output goes to ``<workdir>/<name>.stdout|stderr``."""

    def __init__(
        self,
        config: Path,
        socket: Path,
        workdir: Path,
        name: str,
        env: Mapping[str, str],
        *,
        prewarmed: bool = False,
    ) -> None:
        self.config = config
        self.prewarmed = prewarmed
        self.socket = socket
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.name = name
        self._env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> DaemonProcess:
        """Run ``python -m handoffd.server --config FILE`` (prewarmed: the imports only, see
        :mod:`tests.system.prewarmed_daemon`; :meth:`go` then starts the daemon)."""
        if self.proc is not None:
            raise RuntimeError(f"daemon {self.name} was already started")
        if self.prewarmed:
            argv = [sys.executable, "-m", "tests.system.prewarmed_daemon", str(self.config)]
        else:
            argv = [sys.executable, "-m", "handoffd.server", "--config", str(self.config)]
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.PIPE if self.prewarmed else subprocess.DEVNULL,
                env=self._env,
                cwd=REPO,
                start_new_session=True,
            )
        return self

    def go(self) -> None:
        """Let a prewarmed daemon run its entry point now."""
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError(f"daemon {self.name} is not a started prewarmed daemon")
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"daemon {self.name} is not started")
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise DaemonFailed(
                f"daemon {self.name} exited with {self.proc.returncode} before it was ready\n"
                + self.describe()
            )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until health says SERVING (DaemonFailed if it exits or takes too long)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            if self.socket.exists() and _health_status(self.socket, 2.0) == SERVING:
                return
            time.sleep(0.05)
        raise DaemonFailed(
            f"daemon {self.name} not SERVING after {timeout_s} s\n" + self.describe()
        )

    async def wait_ready_async(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """:meth:`wait_ready` with grpc.aio, for async tests (the loop keeps running)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            if self.socket.exists():
                async with grpc.aio.insecure_channel(f"unix://{self.socket}") as channel:
                    with contextlib.suppress(grpc.RpcError):
                        reply = await health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(service=""), timeout=2.0
                        )
                        if reply.status == SERVING:
                            return
            await asyncio.sleep(0.05)
        raise DaemonFailed(
            f"daemon {self.name} not SERVING after {timeout_s} s\n" + self.describe()
        )

    def signal(self, sig: int) -> None:
        if not self.running:
            raise DaemonFailed(f"daemon {self.name} is not running\n" + self.describe())
        os.kill(self.pid, sig)

    def wait(self, timeout_s: float) -> int:
        """The exit status, waiting at most ``timeout_s`` (DaemonFailed when it is still up)."""
        if self.proc is None:
            raise RuntimeError(f"daemon {self.name} is not started")
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DaemonFailed(
                f"daemon {self.name} still running after {timeout_s} s\n" + self.describe()
            ) from None

    async def wait_async(self, timeout_s: float) -> int:
        """:meth:`wait` without blocking the test's event loop."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.02)
        return self.wait(0.1)

    def kill(self) -> None:
        """SIGKILL the daemon's whole session (if still running) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    # -- what it wrote ---------------------------------------------------------------------------

    def stdout_lines(self) -> list[str]:
        if not self.stdout_path.exists():
            return []
        return self.stdout_path.read_text(errors="replace").splitlines()

    def stderr_text(self) -> str:
        if not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line, parsed (other lines are skipped)."""
        out = []
        for line in self.stdout_lines():
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    out.append(value)
        return out

    def event_names(self) -> list[str]:
        return [str(e.get("event", "")) for e in self.events()]

    def describe(self) -> str:
        stdout = "\n".join(self.stdout_lines()[-15:])
        return f"--- stderr ---\n{self.stderr_text()[-3000:]}\n--- stdout (tail) ---\n{stdout}"


class DaemonFleet:
    """Writes configs and starts daemons for one test; :meth:`close` kills and scans them."""

    def __init__(self, workdir: Path, model: Path) -> None:
        self.workdir = workdir
        self.model = model
        self.daemons: list[DaemonProcess] = []
        #: strings no daemon may ever log (prompts, keys, tokens); tests add theirs
        self.forbidden: list[str] = []

    def config(self, name: str = "handoffd", **kwargs: Any) -> Path:
        """Write ``<workdir>/<name>.yaml`` from :func:`daemon_config` keywords."""
        socket = kwargs.pop("socket", self.workdir / "h.sock")
        return write_yaml(
            self.workdir / f"{name}.yaml", daemon_config(self.model, socket, **kwargs)
        )

    def spawn(
        self,
        config: Path,
        *,
        socket: Path | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        prewarmed: bool = False,
    ) -> DaemonProcess:
        """Start a daemon on ``config`` (socket: the config's, default ``<workdir>/h.sock``).
        ``prewarmed``: only import it for now; :meth:`DaemonProcess.go` starts it."""
        if socket is None:
            data = yaml.safe_load(config.read_text()) or {}
            socket = Path(data.get("server", {}).get("socket") or self.workdir / "h.sock")
        daemon = DaemonProcess(
            config,
            socket,
            self.workdir,
            name or f"daemon{len(self.daemons)}",
            subprocess_env(env),
            prewarmed=prewarmed,
        )
        self.daemons.append(daemon)
        return daemon.start()

    def forbid(self, *texts: str) -> None:
        self.forbidden.extend(texts)

    def close(self) -> list[Finding]:
        """Kill every daemon still running; the forbidden strings found in their output."""
        for daemon in self.daemons:
            daemon.kill()
        findings: list[Finding] = []
        for daemon in self.daemons:
            lines = daemon.stdout_lines() + daemon.stderr_text().splitlines()
            findings += scan_lines(lines, self.forbidden)
        return findings


def run_ctl(
    *args: str, env: Mapping[str, str] | None = None, timeout_s: float = CTL_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run ``handoffctl ARGS`` and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(
        [str(HANDOFFCTL), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(env),
        cwd=REPO,
        timeout=timeout_s,
        check=False,
    )
