"""Tiny random Llama-style models of both layouts, for tests, and their reference generators.

A tiny model is built once per (layout, seed, build scripts, pinned requirements) and kept in
``<build cache>/tiny/``; later calls return the cached folder at once. The first call of a
layout also creates its build venv (minutes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Literal

from filelock import FileLock

from handoffd.engine.manifest import ManifestError, verify_manifest, write_manifest
from handoffd.modelbuild.buildenv import ensure_build_env, requirements_file
from handoffd.modelbuild.cache import cache_dir
from handoffd.modelbuild.errors import ModelBuildError
from handoffd.modelbuild.runner import SCRIPTS_DIR, ProgressCallback, no_progress, run_script

Layout = Literal["genai", "optimum"]
LAYOUTS: tuple[Layout, ...] = ("genai", "optimum")
TINY_TIMEOUT_S = 10 * 60
GENERATE_TIMEOUT_S = 5 * 60
TINY_SCRIPTS = ("make_tiny.py", "_common.py")


def _check_layout(layout: str) -> Layout:
    for known in LAYOUTS:
        if layout == known:
            return known
    raise ModelBuildError(f"unknown model layout {layout!r}; use one of {LAYOUTS}")


def tiny_cache_key(layout: Layout, seed: int) -> str:
    """What a tiny model depends on: layout, seed, its build script and the env's pins."""
    digest = hashlib.sha256(f"{layout}\0{seed}\0".encode())
    for name in TINY_SCRIPTS:
        digest.update(name.encode() + b"\0" + (SCRIPTS_DIR / name).read_bytes())
    digest.update(requirements_file(layout).read_bytes())
    return digest.hexdigest()[:16]


def build_tiny_model(
    layout: Layout, *, seed: int = 0, on_progress: ProgressCallback = no_progress
) -> Path:
    """Return the folder of the tiny random model for ``layout`` and ``seed`` (cached)."""
    layout = _check_layout(layout)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelBuildError(f"seed must be a non-negative integer, not {seed!r}")
    root = cache_dir("tiny")
    dest = root / f"{layout}-seed{seed}-{tiny_cache_key(layout, seed)}"
    if _is_valid(dest):
        return dest
    with FileLock(str(root / f".{dest.name}.lock")):
        if _is_valid(dest):
            return dest
        python = ensure_build_env(layout, on_progress=on_progress)
        for stale in root.glob(f".{dest.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        tmp = root / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            facts = run_script(
                python,
                "make_tiny.py",
                ["--layout", layout, "--out", str(tmp), "--seed", str(seed)],
                log_path=root / f"{dest.name}.log",
                on_progress=on_progress,
                timeout_s=TINY_TIMEOUT_S,
            )
            tools = facts.get("build_tools")
            write_manifest(
                tmp,
                {
                    "name": f"tiny-random-llama-{layout}",
                    "source": f"random weights, seed {seed} (handoffd make_tiny.py)",
                    "license": "Apache-2.0",
                    "layout": layout,
                    "precision": "fp32",
                    "build_tools": dict(tools) if isinstance(tools, dict) else {},
                },
            )
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune_older_builds(root, layout, seed, keep=dest)
    return dest


def _prune_older_builds(root: Path, layout: Layout, seed: int, *, keep: Path) -> None:
    """Delete builds of the same layout and seed made by older scripts or pins."""
    for old in root.glob(f"{layout}-seed{seed}-*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            old.with_suffix(".log").unlink(missing_ok=True)


def _is_valid(dest: Path) -> bool:
    try:
        verify_manifest(dest)
    except ManifestError:
        return False
    return True


def reference_generate(
    layout: Layout, model_dir: Path, input_ids: list[int], max_new_tokens: int
) -> list[int]:
    """Greedy new token ids from the layout's reference generator (og / Optimum), EOS included."""
    return reference_generate_batch(layout, model_dir, [input_ids], max_new_tokens)[0]


def reference_generate_batch(
    layout: Layout, model_dir: Path, prompts: list[list[int]], max_new_tokens: int
) -> list[list[int]]:
    """:func:`reference_generate` for several prompts in one process (one library import)."""
    layout = _check_layout(layout)
    if not prompts or not all(
        ids and all(not isinstance(t, bool) and isinstance(t, int) and t >= 0 for t in ids)
        for ids in prompts
    ):
        raise ModelBuildError("input_ids must be non-empty lists of non-negative integers")
    if max_new_tokens < 1:
        raise ModelBuildError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
    python = ensure_build_env(layout)
    log_path = cache_dir("logs") / f"reference-{layout}-{uuid.uuid4().hex[:8]}.log"
    out = run_script(
        python,
        "reference_generate.py",
        [
            "--layout",
            layout,
            "--model",
            str(Path(model_dir).absolute()),
            "--input-ids",
            json.dumps(prompts),
            "--max-new-tokens",
            str(max_new_tokens),
        ],
        log_path=log_path,
        timeout_s=GENERATE_TIMEOUT_S,
    )
    log_path.unlink(missing_ok=True)  # kept only when the run failed (the error names it)
    batch = out.get("batch")
    if not (
        isinstance(batch, list)
        and len(batch) == len(prompts)
        and all(isinstance(ids, list) and all(isinstance(t, int) for t in ids) for ids in batch)
    ):
        raise ModelBuildError(f"reference_generate.py returned no token ids: {out!r}")
    return [[int(t) for t in ids] for ids in batch]
