"""Isolated, pinned virtualenvs for the build tools (torch, transformers, optimum, ...).

Two environments, because the two export routes need different transformers versions:

- ``genai``: transformers 5.x + gguf + accelerate + the onnxruntime-genai model builder;
- ``optimum``: transformers < 4.58 + optimum + optimum-onnx.

Each lives in ``<build cache>/buildenv/<name>-<12 hex of sha256(requirements file)>``, so a
change of pins makes a new environment. Creation is idempotent and safe when several processes
ask at once: a file lock serializes builders, the venv is built in a temporary folder, a marker
file is written last, and the folder is renamed into place. The environment is only ever used
through ``<venv>/bin/python -m ...`` (console-script shebangs would still name the temporary
folder).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout

from handoffd.modelbuild.cache import cache_dir
from handoffd.modelbuild.errors import ModelBuildError
from handoffd.modelbuild.runner import ProgressCallback, isolated_env, log_tail, no_progress

EnvName = Literal["genai", "optimum"]
ENV_NAMES: tuple[EnvName, ...] = ("genai", "optimum")
MARKER = "handoffd-buildenv.json"
REQUIREMENTS_DIR = Path(__file__).resolve().parent
LOCK_TIMEOUT_S = 45 * 60
PIP_TIMEOUT_S = 40 * 60
REQUIRED_PYTHON = (3, 11)
# What must import in a finished environment (a cheap check that pip did its job).
SMOKE_IMPORTS: dict[EnvName, tuple[str, ...]] = {
    "genai": ("torch", "transformers", "gguf", "accelerate", "onnxruntime_genai", "onnx_ir"),
    "optimum": ("torch", "transformers", "optimum.onnxruntime", "optimum.exporters.onnx"),
}
_NOT_FOUND = re.compile(r"(?:No matching distribution found for|satisfies the requirement) (\S+)")


def requirements_file(name: EnvName) -> Path:
    """The exact pins of a build environment."""
    return REQUIREMENTS_DIR / f"requirements-{name}.txt"


def requirements_hash(name: EnvName) -> str:
    """12 hex digits of the sha256 of the requirements file (names the venv folder)."""
    return hashlib.sha256(requirements_file(name).read_bytes()).hexdigest()[:12]


def build_env_dir(name: EnvName) -> Path:
    """Where the environment lives (whether or not it exists yet)."""
    return cache_dir("buildenv") / f"{name}-{requirements_hash(name)}"


def venv_python(venv: Path) -> Path:
    """The interpreter of a venv."""
    if sys.platform == "win32":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _is_ready(venv: Path) -> bool:
    return (venv / MARKER).is_file() and venv_python(venv).is_file()


def base_python() -> str:
    """A Python 3.11 to create venvs with: the caller's own if it is 3.11, else ``python3.11``."""
    if sys.version_info[:2] == REQUIRED_PYTHON:
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise ModelBuildError(
            "the build tools need Python 3.11 (torch and onnxruntime-genai wheels are pinned for "
            "it), and no `python3.11` is on PATH: install Python 3.11 (e.g. `apt-get install "
            "python3.11 python3.11-venv`) and retry"
        )
    return found


def ensure_build_env(name: EnvName, *, on_progress: ProgressCallback = no_progress) -> Path:
    """Create the ``name`` build environment if needed; return its Python interpreter."""
    if name not in ENV_NAMES:
        raise ModelBuildError(f"unknown build environment {name!r}; use one of {ENV_NAMES}")
    venv = build_env_dir(name)
    if _is_ready(venv):
        return venv_python(venv)
    lock = FileLock(str(venv.parent / f"{venv.name}.lock"))
    on_progress(0.0, f"waiting for the {name} build environment")
    try:
        with lock.acquire(timeout=LOCK_TIMEOUT_S):
            if _is_ready(venv):  # another process finished it while we waited
                return venv_python(venv)
            _create(name, venv, on_progress)
    except Timeout as exc:
        raise ModelBuildError(
            f"another process has been building {venv} for over {LOCK_TIMEOUT_S // 60} min; "
            f"if none is running, delete {lock.lock_file} and retry"
        ) from exc
    return venv_python(venv)


def _create(name: EnvName, venv: Path, on_progress: ProgressCallback) -> None:
    for stale in venv.parent.glob(f".{venv.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if venv.exists():  # a folder without its marker: damaged, start over
        shutil.rmtree(venv)
    tmp = venv.parent / f".{venv.name}.tmp-{uuid.uuid4().hex[:8]}"
    log_path = venv.parent / f"{venv.name}.log"
    started = time.monotonic()
    try:
        on_progress(0.02, f"creating the {name} build environment")
        _run_logged([base_python(), "-m", "venv", str(tmp)], log_path, "w", "create the venv")
        python = venv_python(tmp)
        _pip_install(name, python, log_path, on_progress)
        on_progress(0.96, f"checking the {name} build environment")
        code = "import " + ", ".join(SMOKE_IMPORTS[name])
        _run_logged([str(python), "-c", code], log_path, "a", "import the installed build tools")
        marker = {
            "name": name,
            "requirements_sha256": hashlib.sha256(requirements_file(name).read_bytes()).hexdigest(),
            "python": ".".join(map(str, sys.version_info[:3])),
            "created_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.monotonic() - started, 1),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        tmp.rename(venv)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    on_progress(1.0, f"{name} build environment ready")


def _pip_install(
    name: EnvName, python: Path, log_path: Path, on_progress: ProgressCallback
) -> None:
    req = requirements_file(name)
    total = sum(1 for line in req.read_text("utf-8").splitlines() if line.split("#")[0].strip())
    cmd = [
        str(python),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--prefer-binary",
        "-r",
        str(req),
    ]
    seen = 0
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        with subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=isolated_env(),
            text=True,
            encoding="utf-8",
            errors="replace",
        ) as proc:
            if proc.stdout is None:  # pragma: no cover - Popen was given stdout=PIPE
                raise ModelBuildError("pip produced no output stream")
            try:
                for line in proc.stdout:
                    log.write(line)
                    if line.startswith(("Collecting ", "Processing ")):
                        seen += 1
                        fraction = 0.05 + 0.75 * min(seen / total, 1.0)
                        on_progress(fraction, f"{name}: {line.strip()}")
                    elif line.startswith("Installing collected packages"):
                        on_progress(0.82, f"{name}: installing {total} packages")
                returncode = proc.wait(timeout=PIP_TIMEOUT_S)
            except BaseException:
                proc.kill()
                raise
    if returncode != 0:
        raise ModelBuildError(_pip_failure(name, log_path))


def _pip_failure(name: EnvName, log_path: Path) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace")
    missing = _NOT_FOUND.findall(text)
    if missing:
        return (
            f"pip could not install {missing[-1]} for the {name} build environment: check access "
            "to PyPI (or your index: `pip config list`, PIP_INDEX_URL) and retry. "
            f"Log: {log_path}"
        )
    return (
        f"pip failed while creating the {name} build environment; last lines:\n"
        f"{log_tail(log_path)}\nFull log: {log_path}. Check network access to PyPI and free "
        "disk space (about 1.5 GB per environment), then retry"
    )


def _run_logged(cmd: list[str], log_path: Path, mode: str, what: str) -> None:
    with log_path.open(mode, encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        done = subprocess.run(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=isolated_env(),
            check=False,
        )
    if done.returncode != 0:
        hint = ""
        if "venv" in cmd:
            hint = " (on Debian/Ubuntu: `apt-get install python3.11-venv`)"
        raise ModelBuildError(
            f"could not {what}{hint}; last lines:\n{log_tail(log_path)}\nFull log: {log_path}"
        )


def remove_build_env(name: EnvName) -> bool:
    """Delete the environment (e.g. to rebuild it); True if there was one."""
    venv = build_env_dir(name)
    if not venv.exists():
        return False
    with FileLock(str(venv.parent / f"{venv.name}.lock")):
        shutil.rmtree(venv, ignore_errors=True)
    return True
