"""Running build scripts: progress lines, results, errors and the environment they get."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from handoffd.modelbuild import runner
from handoffd.modelbuild.cache import build_cache_root
from handoffd.modelbuild.errors import ModelBuildError
from handoffd.modelbuild.runner import isolated_env, run_script, scaled

SCRIPT = """
import os, sys
print("PROGRESS 0.25 loading things", flush=True)
print("library chatter on stdout is ignored", flush=True)
print("PROGRESS not-a-number ignored", flush=True)
print("traceback-ish noise", file=sys.stderr)
print("PROGRESS 0.75 building", flush=True)
if os.environ.get("PYTHONPATH") or os.environ.get("HF_HUB_OFFLINE") != "1":
    print("ERROR environment not isolated", flush=True)
    sys.exit(3)
if sys.argv[1] == "fail":
    print("ERROR the GGUF is broken: rebuild it", flush=True)
    sys.exit(2)
if sys.argv[1] == "crash":
    raise RuntimeError("boom")
if sys.argv[1] == "mute":
    sys.exit(0)
print('RESULT {"ok": true, "n": 1}', flush=True)
"""


@pytest.fixture
def fake_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "fake.py").write_text(SCRIPT, encoding="utf-8")
    monkeypatch.setattr(runner, "SCRIPTS_DIR", scripts)
    monkeypatch.setenv("HANDOFFD_BUILD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", "/somewhere/daemon")
    return tmp_path


def test_progress_and_result_are_parsed(fake_scripts: Path) -> None:
    """PROGRESS lines reach the callback in order; the RESULT JSON is returned; stderr is logged."""
    seen: list[tuple[float, str]] = []
    log = fake_scripts / "run.log"
    out = run_script(
        Path(sys.executable),
        "fake.py",
        ["ok"],
        log_path=log,
        on_progress=lambda f, m: seen.append((f, m)),
    )
    assert out == {"ok": True, "n": 1}
    assert seen == [(0.25, "loading things"), (0.75, "building")]
    assert "traceback-ish noise" in log.read_text(encoding="utf-8")


def test_error_line_becomes_the_message(fake_scripts: Path) -> None:
    """A script's own ERROR line is what the user reads, with the log's path."""
    with pytest.raises(ModelBuildError, match=r"the GGUF is broken: rebuild it[\s\S]*Full log"):
        run_script(Path(sys.executable), "fake.py", ["fail"], log_path=fake_scripts / "f.log")


def test_crash_quotes_the_log_tail(fake_scripts: Path) -> None:
    """Without an ERROR line, the exit code and the last lines of the log are quoted."""
    with pytest.raises(ModelBuildError, match=r"exited with code 1[\s\S]*RuntimeError: boom"):
        run_script(Path(sys.executable), "fake.py", ["crash"], log_path=fake_scripts / "c.log")


def test_missing_result_and_script(fake_scripts: Path) -> None:
    """A script that prints no RESULT, or one that does not exist, is an error."""
    with pytest.raises(ModelBuildError, match="without a result"):
        run_script(Path(sys.executable), "fake.py", ["mute"], log_path=fake_scripts / "m.log")
    with pytest.raises(ModelBuildError, match="is missing"):
        run_script(Path(sys.executable), "nope.py", [], log_path=fake_scripts / "n.log")


def test_scaled_maps_into_the_parent_range() -> None:
    """A sub-step's 0..1 lands on the parent's slice, clamped."""
    seen: list[float] = []
    report = scaled(lambda f, m: seen.append(f), 0.2, 0.6)
    for f in (-1.0, 0.0, 0.5, 1.0, 2.0):
        report(f, "x")
    assert seen == pytest.approx([0.2, 0.2, 0.4, 0.6, 0.6])


def test_cache_root_and_isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """HANDOFFD_BUILD_CACHE wins over XDG_CACHE_HOME; build processes run offline, no PYTHONPATH."""
    monkeypatch.delenv("HANDOFFD_BUILD_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build_cache_root() == tmp_path / "xdg" / "handoffd"
    monkeypatch.setenv("HANDOFFD_BUILD_CACHE", str(tmp_path / "explicit"))
    assert build_cache_root() == tmp_path / "explicit"
    monkeypatch.setenv("PYTHONPATH", "/x")
    env = isolated_env()
    assert "PYTHONPATH" not in env
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["PYTHONNOUSERSITE"] == "1"
