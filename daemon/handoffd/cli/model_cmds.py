"""``handoffctl model ...``: build and check local model folders."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from handoffd.domain import GenerationParams, Message, Role
from handoffd.engine import LocalEngine
from handoffd.errors import ModelError
from handoffd.modelbuild.default_model import GOLDEN_EXPECTED, GOLDEN_PROMPT
from handoffd.settings import ModelSettings, default_model_dir


async def _greedy_answer(engine: LocalEngine, prompt: str, max_tokens: int = 48) -> str:
    parts = []
    params = GenerationParams(max_tokens=max_tokens)
    async for chunk in engine.generate([Message(Role.USER, prompt)], params):
        parts.append(chunk.text)
    return "".join(parts)


def golden_check(model_dir: Path) -> str:
    """Load the built model with the daemon's own engine and check a known greedy answer (the
    build already checked it with onnxruntime-genai's generator; this checks our engine)."""
    engine = LocalEngine.load(ModelSettings(path=model_dir))

    async def run() -> str:
        try:
            return await _greedy_answer(engine, GOLDEN_PROMPT)
        finally:
            await engine.aclose()

    answer = asyncio.run(run())
    if GOLDEN_EXPECTED not in answer:
        raise ModelError(
            f"golden check failed for {model_dir}: the answer to {GOLDEN_PROMPT!r} does not "
            f"contain {GOLDEN_EXPECTED!r}, so the graph is broken. Rebuild with "
            "`handoffctl model build-default --force`"
        )
    return answer


@click.group()
def model() -> None:
    """Build and check local model folders."""


@model.command("build-default")
@click.option(
    "--dest",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Model folder (default: the daemon's default model folder).",
)
@click.option("--force", is_flag=True, help="Rebuild even if a valid model is there.")
@click.option(
    "--precision",
    type=click.Choice(["int8", "int4"]),
    default="int8",
    show_default=True,
    help="int4 is smaller and faster but answers worse (see docs/benchmarks.md).",
)
def build_default(dest: Path | None, force: bool, precision: str) -> None:
    """Build the embedded default model (SmolLM2-135M-Instruct) offline, then check it."""
    from handoffd.modelbuild.default_model import build_default_model, is_built

    target = dest or default_model_dir()
    console = Console(stderr=True, highlight=False)
    if not force and is_built(target, precision):
        console.print(f"default model already built at {target} (use --force to rebuild)")
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("default model", total=1.0)

        def on_progress(fraction: float, message: str) -> None:
            progress.update(task, completed=fraction, description=message)

        path = build_default_model(
            target, precision=precision, force=force, on_progress=on_progress
        )
        progress.update(task, completed=1.0, description="golden check")
        golden_check(path)
        progress.update(task, completed=1.0, description="ready")
    console.print(f"default model ready at {path}")
