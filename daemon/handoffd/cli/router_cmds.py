"""``handoffctl router eval | calibrate | fit``: measure and tune the router offline.

All three run the local model over the eval set once (results cached, later runs are instant),
then work on the cached evidence:

- ``eval``: every strategy's call-rate/quality curve on the TEST split, APGR, CPT(50%/80%),
  a markdown report and a PNG plot; ``--benchmarks docs/benchmarks.md`` writes the router
  section there;
- ``calibrate --target-rate 0.2``: the threshold that hands off that share of the TUNE split,
  printed as a ``routing:`` snippet for the policy file;
- ``fit``: fit the learned strategy's weights on TUNE and write them as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from handoffd.router.learned import LogisticModel
from handoffd.routereval.calibrate import CALIBRATABLE, calibrate, snippet
from handoffd.routereval.dataset import EvalItem, load_dataset
from handoffd.routereval.evaluate import evaluate, fit_learned
from handoffd.routereval.plot import plot_curves
from handoffd.routereval.report import render_markdown, write_section
from handoffd.routereval.results import LocalResult
from handoffd.routereval.runner import RunSettings
from handoffd.routereval.session import collect, load_cloud_answers
from handoffd.schema.routing import CascadeConfig


def _common(fn: Any) -> Any:
    options = [
        click.option(
            "--dataset",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Eval set (JSONL). Default: the shipped set.",
        ),
        click.option(
            "--model",
            "model_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Local model folder. Default: the default model.",
        ),
        click.option(
            "--cache",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Result cache (JSON). Default: under $XDG_CACHE_HOME/handoffd/routereval.",
        ),
        click.option("--max-tokens", type=click.IntRange(1, 4096), default=64, show_default=True),
        click.option(
            "--handoff-mode",
            type=click.Choice(["marker", "tool"]),
            default="marker",
            show_default=True,
            help="How the model is offered the handoff in the model_handoff pass.",
        ),
        click.option(
            "--hold-back",
            type=click.IntRange(1, 256),
            default=8,
            show_default=True,
            help="Cascade: tokens judged before streaming (K).",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 64),
            default=4,
            show_default=True,
            help="Items in flight at once (the engine batches them).",
        ),
        click.option("--quiet", is_flag=True, help="No progress lines."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _progress(quiet: bool) -> Any:
    def report(n: int, total: int, result: LocalResult) -> None:
        if not quiet:
            mark = "ok " if result.correct else "bad"
            call = " handoff" if result.handoff_called else ""
            click.echo(f"[{n}/{total}] {mark} {result.id}{call}", err=True)

    return report


def _results(
    dataset: Path | None,
    model_dir: Path | None,
    cache: Path | None,
    max_tokens: int,
    handoff_mode: str,
    quiet: bool,
    concurrency: int = 4,
) -> tuple[list[EvalItem], str, dict[str, LocalResult]]:
    items = load_dataset(dataset)
    settings = RunSettings(
        max_tokens=max_tokens, handoff_mode="tool" if handoff_mode == "tool" else "marker"
    )
    name, results = asyncio.run(
        collect(
            items,
            model_dir=model_dir,
            cache_path=cache,
            settings=settings,
            progress=_progress(quiet),
            default_cache=True,
            concurrency=concurrency,
        )
    )
    return items, name, results


@click.group()
def router() -> None:
    """Evaluate, calibrate and fit the router on an eval set."""


@router.command("eval")
@_common
@click.option(
    "--target-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.2,
    show_default=True,
    help="Share of cloud calls to calibrate each strategy for (on tune).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for router_eval.md and router_curves.png.",
)
@click.option(
    "--benchmarks",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the router section of this file (docs/benchmarks.md).",
)
@click.option(
    "--cloud-answers",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='A cloud model\'s answers (JSONL {"id", "answer"}); default: oracle cloud.',
)
def eval_command(
    dataset: Path | None,
    model_dir: Path | None,
    cache: Path | None,
    max_tokens: int,
    handoff_mode: str,
    hold_back: int,
    concurrency: int,
    quiet: bool,
    target_rate: float,
    out: Path | None,
    benchmarks: Path | None,
    cloud_answers: Path | None,
) -> None:
    """Score every strategy on the TEST split: APGR, CPT(50%), CPT(80%), curves."""
    items, name, results = _results(
        dataset, model_dir, cache, max_tokens, handoff_mode, quiet, concurrency
    )
    cloud_ok = load_cloud_answers(cloud_answers, items) if cloud_answers else None
    label = f"graded answers from {cloud_answers.name}" if cloud_answers else None
    report = evaluate(
        items,
        results,
        cascade=CascadeConfig(hold_back_tokens=hold_back),
        model=name,
        target_rate=target_rate,
        cloud_ok=cloud_ok,
        **({"cloud_label": label} if label else {}),
    )
    note = (
        f"max_tokens {max_tokens}, greedy; cascade judges the first {hold_back} tokens "
        f"(quantile 0.1); model handoff offered as `{handoff_mode}`; calibration target "
        f"{target_rate:.0%} calls"
    )
    plot_name = None
    png = plot_curves(
        [(s.name, [(p.call_rate, p.quality) for p in s.points]) for s in report.strategies]
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot_name = "router_curves.png"
        (out / plot_name).write_bytes(png)
    if benchmarks is not None:
        assets = benchmarks.parent / "assets"
        assets.mkdir(parents=True, exist_ok=True)
        (assets / "router_curves.png").write_bytes(png)
        write_section(
            benchmarks,
            render_markdown(report, plot_name="assets/router_curves.png", settings_note=note),
        )
    markdown = render_markdown(report, plot_name=plot_name, settings_note=note)
    if out is not None:
        (out / "router_eval.md").write_text(markdown, "utf-8")
    click.echo(markdown)


@router.command("calibrate")
@_common
@click.option(
    "--target-rate",
    type=click.FloatRange(0.0, 1.0),
    required=True,
    help="Share of requests to hand off, e.g. 0.2.",
)
@click.option("--strategy", type=click.Choice(CALIBRATABLE), default="learned", show_default=True)
def calibrate_command(
    dataset: Path | None,
    model_dir: Path | None,
    cache: Path | None,
    max_tokens: int,
    handoff_mode: str,
    hold_back: int,
    concurrency: int,
    quiet: bool,
    target_rate: float,
    strategy: str,
) -> None:
    """Pick the threshold that hands off --target-rate of the TUNE split; print the config."""
    items, name, results = _results(
        dataset, model_dir, cache, max_tokens, handoff_mode, quiet, concurrency
    )
    cal = calibrate(
        items,
        results,
        strategy=strategy,
        target_rate=target_rate,
        cascade=CascadeConfig(hold_back_tokens=hold_back),
        model=name,
    )
    click.echo(snippet(cal), nl=False)


@router.command("fit")
@_common
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Weights file to write (JSON). Default: print to stdout.",
)
@click.option(
    "--pre-score/--no-pre-score",
    default=False,
    show_default=True,
    help="Use the model's self-assessment as a feature.",
)
def fit_command(
    dataset: Path | None,
    model_dir: Path | None,
    cache: Path | None,
    max_tokens: int,
    handoff_mode: str,
    hold_back: int,
    concurrency: int,
    quiet: bool,
    output: Path | None,
    pre_score: bool,
) -> None:
    """Fit the learned strategy's weights on the TUNE split."""
    del hold_back
    items, name, results = _results(
        dataset, model_dir, cache, max_tokens, handoff_mode, quiet, concurrency
    )
    model: LogisticModel = fit_learned(items, results, pre_score=pre_score, model=name)
    text = json.dumps(model.to_json(), indent=1) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, "utf-8")
        click.echo(f"wrote {output}: set routing.learned.weights to it", err=True)
