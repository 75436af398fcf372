"""One eval session: load the local model, fill the result cache, read cloud verdicts.

The command-line tools (``handoffctl router eval | calibrate | fit``) call these; they own the
engine's lifetime (loaded in a thread, closed at the end) and the cache location.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from handoffd.errors import ConfigError
from handoffd.routereval.dataset import EvalItem, dataset_digest
from handoffd.routereval.grading import grade
from handoffd.routereval.results import LocalResult, ResultCache
from handoffd.routereval.runner import EvalModel, RunSettings, run_items
from handoffd.settings import ModelSettings

Progress = Callable[[int, int, LocalResult], None]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "handoffd" / "routereval"


def default_cache_path(model_name: str, items: Sequence[EvalItem], settings: RunSettings) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_name)
    name = f"{safe}-{dataset_digest(items)}-{settings.max_tokens}-{settings.handoff_mode}.json"
    return cache_dir() / name


async def _load(model_dir: Path | None) -> Any:
    from handoffd.engine import LocalEngine

    settings = ModelSettings(path=model_dir)
    return await asyncio.to_thread(LocalEngine.load, settings)


async def collect(
    items: Sequence[EvalItem],
    *,
    model_dir: Path | None,
    cache_path: Path | None,
    settings: RunSettings,
    progress: Progress | None = None,
    model: EvalModel | None = None,
    default_cache: bool = False,
    concurrency: int = 1,
) -> tuple[str, dict[str, LocalResult]]:
    """The local results of ``items`` (run only those missing from the cache).

    ``cache_path`` None keeps the results in memory, unless ``default_cache`` asks for the
    default file under ``$XDG_CACHE_HOME/handoffd/routereval`` (named after model and settings).

    A ``cache_path`` that already holds every item for the same dataset and settings is used
    as it is, without loading the model (instant sweeps)."""
    if model is None and cache_path is not None:
        cached = ResultCache.peek(cache_path)
        if cached is not None and _covers(cached, items, settings):
            return str(cached.key.get("model", "unknown")), {
                i.id: cached.results[i.id] for i in items
            }
    loaded: Any = await _load(model_dir) if model is None else None
    engine: EvalModel = model if model is not None else loaded
    try:
        path = cache_path
        if path is None and default_cache:
            path = default_cache_path(engine.info.name, items, settings)
        cache = ResultCache.open(path, settings.cache_key(engine.info, items))
        results = await run_items(
            engine, items, cache, settings, progress=progress, concurrency=concurrency
        )
        return engine.info.name, results
    finally:
        if loaded is not None:
            await loaded.aclose()


def _covers(cache: ResultCache, items: Sequence[EvalItem], settings: RunSettings) -> bool:
    key = cache.key
    return (
        key.get("dataset") == dataset_digest(items)
        and key.get("max_tokens") == settings.max_tokens
        and key.get("handoff_mode") == settings.handoff_mode
        and all(i.id in cache.results for i in items)
    )


def load_cloud_answers(path: Path, items: Sequence[EvalItem]) -> dict[str, bool]:
    """Grade a cloud model's answers (JSONL: ``{"id": ..., "answer": ...}``) with each item's
    grader; an item without an answer counts as wrong."""
    answers: dict[str, str] = {}
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read cloud answers ({exc.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            answers[str(data["id"])] = str(data["answer"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(
                f'{path}:{number}: expected {{"id": ..., "answer": ...}} on each line'
            ) from None
    return {i.id: i.id in answers and grade(i, answers[i.id]) for i in items}
