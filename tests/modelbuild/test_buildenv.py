"""Build venvs: exact pins, idempotent creation, one builder at a time, clear pip errors.

The real environments take minutes; these tests swap in a requirements file with nothing (or
one impossible package) in it, so the locking, marker and error paths run in seconds.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from handoffd.modelbuild import buildenv
from handoffd.modelbuild.buildenv import (
    ENV_NAMES,
    MARKER,
    build_env_dir,
    ensure_build_env,
    requirements_file,
)
from handoffd.modelbuild.errors import ModelBuildError

PIN = re.compile(r"^[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.+\-]*$")


@pytest.mark.parametrize("name", ENV_NAMES)
def test_requirements_are_exact_pins(name: str) -> None:
    """Every requirement line pins one exact version; torch is the 2.13.0 CPU build's version."""
    lines = [
        line.strip()
        for line in requirements_file(name).read_text(encoding="utf-8").splitlines()  # type: ignore[arg-type]
        if line.strip() and not line.startswith("#")
    ]
    assert lines, "no requirements"
    assert all(PIN.match(line) for line in lines), [x for x in lines if not PIN.match(x)]
    assert "torch==2.13.0" in lines


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An env named "genai" whose requirements file is empty and whose smoke import is json."""
    monkeypatch.setenv("HANDOFFD_BUILD_CACHE", str(tmp_path / "cache"))
    reqs = tmp_path / "requirements-genai.txt"
    reqs.write_text("# nothing to install\n", encoding="utf-8")
    monkeypatch.setattr(buildenv, "REQUIREMENTS_DIR", tmp_path)
    monkeypatch.setitem(buildenv.SMOKE_IMPORTS, "genai", ("json",))
    return reqs


def test_created_once_even_when_asked_concurrently(
    fake_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two concurrent callers get the same interpreter; the venv is built once, marker last.

    Then a venv folder without its marker (a killed build of an old version) is started over.
    """
    creations: list[str] = []
    original = buildenv._create

    def counting_create(*args: Any) -> None:
        creations.append("x")
        original(*args)

    monkeypatch.setattr(buildenv, "_create", counting_create)
    results: list[Path] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(ensure_build_env("genai"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(creations) == 1
    assert results[0] == results[1]
    assert results[0].is_file()
    venv = build_env_dir("genai")
    marker = json.loads((venv / MARKER).read_text(encoding="utf-8"))
    assert marker["name"] == "genai"
    assert not list(venv.parent.glob(f".{venv.name}.tmp-*")), "temp folder left behind"
    # a later call is a no-op that returns the same interpreter
    assert ensure_build_env("genai") == results[0]
    assert len(creations) == 1
    # a damaged venv (no marker) is rebuilt
    (venv / MARKER).unlink()
    assert ensure_build_env("genai") == results[0]
    assert len(creations) == 2
    assert (venv / MARKER).is_file()


def test_changed_pins_make_a_new_env(fake_env: Path) -> None:
    """The folder name carries the requirements hash, so new pins never reuse an old venv."""
    first = build_env_dir("genai")
    fake_env.write_text("# other pins\n", encoding="utf-8")
    assert build_env_dir("genai") != first


def test_pip_failure_names_the_package_and_the_fix(fake_env: Path) -> None:
    """A package pip cannot find is named, with the advice to check access to the index."""
    fake_env.write_text("handoffd-no-such-package-xyz==0.0.1\n", encoding="utf-8")
    with pytest.raises(ModelBuildError, match=r"pip could not install handoffd-no-such-package"):
        ensure_build_env("genai")
    venv = build_env_dir("genai")
    assert not venv.exists()
    assert not list(venv.parent.glob(f".{venv.name}.tmp-*"))


def test_unknown_env_name() -> None:
    """Only the two known environments exist."""
    with pytest.raises(ModelBuildError, match="unknown build environment"):
        ensure_build_env("cuda")  # type: ignore[arg-type]
