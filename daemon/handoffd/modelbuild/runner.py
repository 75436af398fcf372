"""Run a build script inside a build virtualenv and follow its progress.

A script (see ``scripts/_common.py``) prints ``PROGRESS <fraction> <message>``, ``RESULT
<json>`` and ``ERROR <message>`` lines on stdout; its stderr (library chatter, tracebacks) goes
to a log file whose tail is quoted when the script fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from handoffd.modelbuild.cache import cache_dir
from handoffd.modelbuild.errors import ModelBuildError

ProgressCallback = Callable[[float, str], None]
SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
_TAIL_LINES = 15
# Variables that would let the daemon's environment leak into a build venv.
_DROPPED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "VIRTUAL_ENV",
    "PIP_REQUIRE_VIRTUALENV",
)


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that ignores everything."""


def scaled(on_progress: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """Map a sub-step's progress in [0, 1] onto [start, end] of the caller's bar."""

    def report(fraction: float, message: str) -> None:
        on_progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report


def isolated_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for build processes: no daemon paths, no hub access, quiet libraries."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(
        PYTHONNOUSERSITE="1",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(cache_dir("hf-home")),
        TOKENIZERS_PARALLELISM="false",
        TQDM_DISABLE="1",
    )
    if extra:
        env.update(extra)
    return env


def log_tail(log_path: Path, lines: int = _TAIL_LINES) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _parse_progress(rest: str) -> tuple[float, str] | None:
    head, _, message = rest.partition(" ")
    try:
        return float(head), message
    except ValueError:
        return None


def run_script(
    python: Path,
    script: str,
    args: Sequence[str],
    *,
    log_path: Path,
    on_progress: ProgressCallback = no_progress,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run ``scripts/<script>`` with ``python``; return the JSON of its last ``RESULT`` line.

    Raises :class:`ModelBuildError` with the script's own ``ERROR`` message (or the log's tail)
    when it exits non-zero, prints no result, or runs past ``timeout_s``.
    """
    script_path = SCRIPTS_DIR / script
    if not script_path.is_file():
        raise ModelBuildError(f"build script {script_path} is missing; reinstall handoffd")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] | None = None
    error: str | None = None
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"$ {python} {script_path} {' '.join(args)}\n")
        log.flush()
        with subprocess.Popen(
            [str(python), str(script_path), *args],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=isolated_env(),
            text=True,
            encoding="utf-8",
            errors="replace",
        ) as proc:
            try:
                payload, error = _follow(proc, log, on_progress)
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                raise ModelBuildError(
                    f"{script} ran past {timeout_s:.0f} s and was stopped; log: {log_path}"
                ) from exc
            except BaseException:
                proc.kill()
                raise
    if returncode != 0:
        cause = error or f"it exited with code {returncode}; last lines of the log:\n" + log_tail(
            log_path
        )
        raise ModelBuildError(f"{script} failed: {cause}\nFull log: {log_path}")
    if payload is None:
        raise ModelBuildError(f"{script} finished without a result; log: {log_path}")
    return payload


def _follow(
    proc: subprocess.Popen[str], log: Any, on_progress: ProgressCallback
) -> tuple[dict[str, Any] | None, str | None]:
    payload: dict[str, Any] | None = None
    error: str | None = None
    if proc.stdout is None:  # pragma: no cover - Popen was given stdout=PIPE
        return None, None
    for raw in proc.stdout:
        line = raw.rstrip("\n")
        log.write(line + "\n")
        kind, _, rest = line.partition(" ")
        if kind == "PROGRESS":
            parsed = _parse_progress(rest)
            if parsed is not None:
                on_progress(*parsed)
        elif kind == "RESULT":
            try:
                loaded = json.loads(rest)
            except json.JSONDecodeError:
                continue
            if isinstance(loaded, dict):
                payload = loaded
        elif kind == "ERROR":
            error = rest
    log.flush()
    return payload, error
