"""The router eval end to end on a scripted fake model: run, cache, fit, sweep, report, CLI."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from handoffd.cli.router_cmds import router
from handoffd.domain import (
    ChatRequest,
    GenerationParams,
    Message,
    ModelInfo,
    Role,
    Route,
    TokenChunk,
)
from handoffd.errors import ConfigError
from handoffd.router import RouteInput, Router
from handoffd.router.cascade import CascadeMonitor
from handoffd.router.rules import SoftRules
from handoffd.routereval.calibrate import calibrate, snippet
from handoffd.routereval.dataset import EvalItem, dump_items
from handoffd.routereval.evaluate import evaluate, fit_learned
from handoffd.routereval.plot import plot_curves
from handoffd.routereval.report import render_markdown, write_section
from handoffd.routereval.results import ResultCache
from handoffd.routereval.runner import RunSettings, run_items
from handoffd.routereval.session import collect
from handoffd.schema.routing import CascadeConfig, LearnedConfig, RoutingConfig, RulesConfig

# question -> (answer, per-token logprob, P(No) of the self-assessment, answer with the marker)
SCRIPT: dict[str, tuple[str, float, float, str]] = {}


def _add(
    category: str,
    n: int,
    question: str,
    reference: str,
    answer: str,
    logprob: float,
    p_no: float,
    marker_answer: str | None = None,
) -> EvalItem:
    SCRIPT[question] = (answer, logprob, p_no, marker_answer or answer)
    return EvalItem(
        id=f"{category}-{n}",
        category=category,
        split="tune" if n % 2 == 0 else "test",
        messages=(Message(Role.USER, question),),
        grader="numeric",
        reference=reference,
    )


def build_items() -> list[EvalItem]:
    items = []
    for n in range(8):  # small sums: the fake model is right and sure
        a, b = n + 1, n + 2
        items.append(
            _add("easy", n, f"What is {a} + {b}?", str(a + b), f"It is {a + b}.", -0.1, 0.2)
        )
    for n in range(8):  # big products: always wrong, mostly confidently so; sometimes the
        a, b = 300 + n, 700 + n  # model calls the handoff
        marker = "[[HANDOFF]]: too big" if n in (1, 2, 5) else None
        items.append(
            _add(
                "hard",
                n,
                f"What is {a} * {b}?",
                str(a * b),
                "It is 12.",
                -2.5 if n in (1, 2, 4) else -0.05,
                0.7,
                marker,
            )
        )
    return items


class FakeModel:
    """Speaks the EvalModel protocol from a script; counts calls."""

    info = ModelInfo(
        name="fake-135m",
        layout="genai",
        precision="int8",
        context_window=4096,
        execution_provider="CPUExecutionProvider",
        path="/fake",
    )

    def __init__(self) -> None:
        self.generate_calls = 0

    def encode(self, text: str) -> list[int]:
        return list(range(len(text.strip()) // 4 + 1))

    def count_prompt_tokens(
        self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        return sum(len(m.content.split()) for m in messages) + 10

    async def generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> AsyncIterator[TokenChunk]:
        self.generate_calls += 1
        answer, logprob, _, marker_answer = SCRIPT[messages[-1].content]
        instructed = messages[0].role is Role.SYSTEM and "[[HANDOFF]]" in messages[0].content
        text = marker_answer if instructed else answer
        for n, word in enumerate(text.split(" ")[: params.max_tokens]):
            yield TokenChunk(("" if n == 0 else " ") + word, n, logprob, -logprob)

    async def score_next_token(
        self, messages: Sequence[Message], candidates: Sequence[str], *, suffix: str = ""
    ) -> dict[str, float]:
        question = next(q for q in SCRIPT if q in messages[-1].content)
        p_no = SCRIPT[question][2]
        return {"Yes": math.log(1 - p_no), "No": math.log(p_no), "yes": -20.0, "no": -20.0}


async def test_run_cache_and_rerun_is_instant(tmp_path: Path) -> None:
    """Every item runs once; a second run over the same cache runs nothing."""
    items = build_items()
    model = FakeModel()
    settings = RunSettings(max_tokens=16)
    cache = ResultCache.open(tmp_path / "c.json", settings.cache_key(model.info, items))
    results = await run_items(model, items, cache, settings)
    assert model.generate_calls == 2 * len(items)
    assert results["easy-0"].correct
    assert not results["hard-0"].correct
    assert results["hard-1"].handoff_called
    assert results["hard-1"].handoff_reason == "too big"
    assert len(results["easy-0"].logprobs) == 3
    assert results["easy-0"].max_word_tokens == 2  # "What" -> 4 chars -> 2 tokens
    again = ResultCache.open(tmp_path / "c.json", settings.cache_key(model.info, items))
    await run_items(model, items, again, settings)
    assert model.generate_calls == 2 * len(items)


async def test_cache_with_other_settings_is_refused(tmp_path: Path) -> None:
    """A cache made with other settings is not silently reused."""
    items = build_items()
    model = FakeModel()
    await collect(
        items,
        model_dir=None,
        cache_path=tmp_path / "c.json",
        settings=RunSettings(max_tokens=16),
        model=model,
    )
    with pytest.raises(ConfigError, match="max_tokens"):
        await collect(
            items,
            model_dir=None,
            cache_path=tmp_path / "c.json",
            settings=RunSettings(max_tokens=32),
            model=model,
        )


async def test_evaluate_and_report(tmp_path: Path) -> None:
    """Fit on tune, measure on test: the learned router and the oracle beat random, the
    perfect-router APGR is reported, and the report and plot are written."""
    items = build_items()
    _, results = await collect(
        items,
        model_dir=None,
        cache_path=None,
        settings=RunSettings(max_tokens=16),
        model=FakeModel(),
    )
    report = evaluate(
        items,
        results,
        cascade=CascadeConfig(hold_back_tokens=4),
        model="fake-135m",
        target_rate=0.5,
    )
    by_name = {s.name: s for s in report.strategies}
    assert report.local_accuracy == pytest.approx(0.5)
    assert report.perfect_apgr == pytest.approx(0.75)
    assert by_name["oracle"].apgr == pytest.approx(0.75)
    assert by_name["learned"].apgr == pytest.approx(0.75)
    assert by_name["pre_score"].apgr == pytest.approx(0.75)
    assert by_name["cascade.mean"].apgr < 0.75
    assert by_name["model_handoff"].points[1].call_rate == pytest.approx(0.25)
    calibrated = by_name["learned"].calibrated
    assert calibrated is not None
    assert calibrated.test_rate == pytest.approx(0.5)
    assert calibrated.test_quality == pytest.approx(1.0)
    markdown = render_markdown(report, plot_name="curves.png", machine="test box")
    assert "| learned |" in markdown
    assert "perfect router's APGR here: **0.750**" in markdown
    png = plot_curves(
        [(s.name, [(p.call_rate, p.quality) for p in s.points]) for s in report.strategies]
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    bench = tmp_path / "benchmarks.md"
    bench.write_text(
        "# Benchmarks\n\n<!-- bench:engine:start -->\nengine\n<!-- bench:engine:end -->\n"
    )
    write_section(bench, "first")
    write_section(bench, "second")
    text = bench.read_text()
    assert text.count("<!-- bench:router:start -->") == 1
    assert "second" in text
    assert "first" not in text
    assert "engine\n" in text


def test_cli_eval_calibrate_fit_from_a_full_cache(tmp_path: Path) -> None:
    """With a cache holding every item, the CLI evaluates, calibrates and fits without loading
    a model."""
    items = build_items()
    dataset = tmp_path / "set.jsonl"
    dataset.write_text(dump_items(items))
    cache = tmp_path / "cache.json"
    asyncio.run(
        collect(
            items,
            model_dir=None,
            cache_path=cache,
            settings=RunSettings(max_tokens=16),
            model=FakeModel(),
        )
    )
    runner = CliRunner()
    common = ["--dataset", str(dataset), "--cache", str(cache), "--max-tokens", "16", "--quiet"]
    out = tmp_path / "out"
    bench = tmp_path / "docs" / "benchmarks.md"
    result = runner.invoke(
        router,
        ["eval", *common, "--out", str(out), "--benchmarks", str(bench), "--target-rate", "0.5"],
    )
    assert result.exit_code == 0, result.output
    assert "APGR" in result.output
    assert (out / "router_curves.png").read_bytes().startswith(b"\x89PNG")
    assert "<!-- bench:router:start -->" in bench.read_text()
    assert (bench.parent / "assets" / "router_curves.png").exists()
    result = runner.invoke(router, ["calibrate", *common, "--target-rate", "0.5"])
    assert result.exit_code == 0, result.output
    assert "routing:" in result.output
    assert "threshold:" in result.output
    weights = tmp_path / "w.json"
    result = runner.invoke(router, ["fit", *common, "-o", str(weights)])
    assert result.exit_code == 0, result.output
    assert json.loads(weights.read_text())["meta"]["split"] == "tune"


@pytest.mark.parametrize(
    "strategy", ["cascade.mean", "rules.prompt_tokens", "learned", "learned+pre_score"]
)
async def test_calibrated_value_reproduces_the_rate_at_run_time(strategy: str) -> None:
    """The printed config value, applied by the run-time component, hands off the same tune
    items the calibration counted (no sign or off-by-one slip between eval and router)."""
    items = build_items()
    _, results = await collect(
        items,
        model_dir=None,
        cache_path=None,
        settings=RunSettings(max_tokens=16),
        model=FakeModel(),
    )
    cascade = CascadeConfig(hold_back_tokens=4)
    cal = calibrate(
        items, results, strategy=strategy, target_rate=0.25, cascade=cascade, model="fake"
    )
    assert cal.value is not None
    text = snippet(cal)
    assert "routing:" in text
    tune = [i for i in items if i.split == "tune"]
    handed = 0
    for item in tune:
        result = results[item.id]
        if strategy == "cascade.mean":
            monitor = CascadeMonitor(cascade.model_copy(update={"threshold": cal.value}))
            steps = [monitor.feed(TokenChunk("x", 0, lp, 0.0)) for lp in result.logprobs]
            steps.append(monitor.finish())
            handed += any(s.handoff for s in steps)
        elif strategy == "rules.prompt_tokens":
            rules = SoftRules(RulesConfig(max_local_prompt_tokens=int(cal.value)))
            request = ChatRequest(messages=item.messages)
            decision = rules.decide(RouteInput(request, result.prompt_tokens, 4096))
            handed += decision is not None
        else:
            weights = fit_learned(
                items, results, pre_score=strategy == "learned+pre_score", model="fake"
            )
            r = Router(
                RoutingConfig(strategies=("learned",), learned=LearnedConfig(threshold=cal.value)),
                learned=weights,
                encode=FakeModel().encode,
            )
            inp = RouteInput(ChatRequest(messages=item.messages), result.prompt_tokens, 4096)
            handed += r.decide(inp, pre_score=result.pre_score).route is Route.CLOUD
    assert handed / len(tune) == pytest.approx(cal.tune_rate)
