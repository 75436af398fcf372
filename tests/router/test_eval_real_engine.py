"""The router eval and the router against the real engine (tiny random genai model).

The answers of a random model are nonsense; what is checked is the seam: the engine speaks the
eval's model protocol, the self-assessment scores every candidate, the tokenizer feeds the
rare-word feature, and the gate consumes real TokenChunks.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from handoffd.domain import ChatRequest, GenerationParams, Route
from handoffd.engine import LocalEngine
from handoffd.router import RouteInput, Router
from handoffd.router.prescore import CANDIDATES
from handoffd.routereval.datagen import build_items
from handoffd.routereval.results import ResultCache
from handoffd.routereval.runner import RunSettings, run_items
from handoffd.schema.routing import RoutingConfig
from handoffd.settings import ModelSettings


async def test_eval_runs_on_the_real_engine(tiny_genai_model: Path) -> None:
    """Three items through all passes of the real engine give complete, cacheable results."""
    engine = await asyncio.to_thread(LocalEngine.load, ModelSettings(path=tiny_genai_model))
    try:
        items = [
            i for i in build_items() if i.id in ("fact_known-000", "arith_mul_3d-000", "code-000")
        ]
        settings = RunSettings(max_tokens=6)
        cache = ResultCache.open(None, settings.cache_key(engine.info, items))
        results = await run_items(engine, items, cache, settings, concurrency=2)
        for item in items:
            result = results[item.id]
            assert 1 <= result.completion_tokens <= 6
            assert len(result.logprobs) == result.completion_tokens
            assert all(lp <= 0.0 for lp in result.logprobs)
            assert set(result.pre_score) == set(CANDIDATES)
            assert all(math.isfinite(v) and v <= 0.0 for v in result.pre_score.values())
            assert result.max_word_tokens is not None
            assert result.max_word_tokens >= 1
    finally:
        await engine.aclose()


async def test_router_gate_on_real_chunks(tiny_genai_model: Path) -> None:
    """The router decides with the real tokenizer and its gate passes a real stream through:
    what the client would see is the generated text, unless the gate hands off."""
    engine = await asyncio.to_thread(LocalEngine.load, ModelSettings(path=tiny_genai_model))
    try:
        router = Router(
            RoutingConfig.model_validate(
                {
                    "strategies": ["rules", "learned", "model_handoff", "cascade"],
                    "cascade": {"hold_back_tokens": 3, "threshold": -50.0},
                }
            ),
            encode=engine.encode,
        )
        item = next(i for i in build_items() if i.id == "fact_obscure-000")
        request = ChatRequest(messages=item.messages, params=GenerationParams(max_tokens=8))
        inp = RouteInput(
            request, engine.count_prompt_tokens(item.messages), engine.info.context_window
        )
        decision = router.decide(inp)
        assert decision.route in (Route.LOCAL, Route.CLOUD)
        assert "learned.p_wrong" in decision.scores
        gate = router.answer_gate(inp)
        shown, generated = [], []
        async for chunk in engine.generate(
            router.local_messages(inp), request.params, tools=router.local_tools(inp)
        ):
            generated.append(chunk.text)
            step = gate.feed(chunk)
            shown.append(step.emit)
            if step.handoff:
                break
        else:
            final = gate.finish()
            shown.append(final.emit)
            if not final.handoff:
                assert "".join(shown) == "".join(generated)
    finally:
        await engine.aclose()
