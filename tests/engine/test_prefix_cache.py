"""The prompt prefix cache: its bookkeeping, and reuse inside the engine on the tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from handoffd.domain import GenerationParams, Message, Role
from handoffd.engine import LocalEngine
from handoffd.engine.prefix_cache import MIN_PREFILL, PrefixCache

from tests.engine.enginekit import loaded

PER_TOKEN = 10
SYSTEM = (
    "You are the assistant inside the Notes app on this phone. Answer in one short paragraph, "
    "never invent facts, say when you do not know, keep the user's own words where you can, "
    "and do not mention that you are a language model."
)


def _kv(count: int, fill: float = 1.0) -> list[np.ndarray]:
    return [np.full((2, count, 4), fill, dtype=np.float32) for _ in range(4)]


def test_lookup_gives_the_longest_shared_prefix_of_the_same_app_only() -> None:
    cache = PrefixCache(10_000, PER_TOKEN, min_tokens=4)
    cache.store("notes", list(range(20)), _kv(20))
    cache.store("notes", [*range(10), 99, 98, 97, 96, 95], _kv(15, 2.0))
    count, kv = cache.lookup("notes", [*range(12), 7, 7])
    assert count == 12
    assert kv[0].shape == (2, 12, 4)
    assert float(kv[0][0, 0, 0]) == 1.0
    assert cache.lookup("mail", list(range(20))) == (0, [])  # another app: nothing
    # the prompt's last MIN_PREFILL tokens are always left to run
    assert cache.lookup("notes", list(range(20)))[0] == 20 - MIN_PREFILL
    assert cache.lookup("notes", [1, 2, 3]) == (0, [])  # shorter than min_tokens
    assert cache.hits == 2
    assert cache.tokens_reused == 12 + 20 - MIN_PREFILL


def test_budget_evicts_least_recent_and_subsumed_entries_go() -> None:
    cache = PrefixCache(600, PER_TOKEN, min_tokens=4)  # 60 tokens
    cache.store("a", list(range(20)), _kv(20))
    cache.store("a", [*range(20), 50, 51], _kv(22))  # extends the first: replaces it
    assert cache.bytes == 220
    cache.store("b", list(range(100, 125)), _kv(25))
    cache.lookup("a", [*range(20), 50, 51, 5, 6])  # "a" is now the most recent
    cache.store("c", list(range(200, 230)), _kv(30))  # over budget: "b" goes
    assert cache.lookup("b", list(range(100, 125)))[0] == 0
    assert cache.lookup("a", [*range(20), 50, 51, 5, 6])[0] == 22
    assert cache.bytes == 520
    assert not cache.wants(31)  # over half the budget: never kept
    cache.store("d", list(range(31)), _kv(31))
    assert cache.lookup("d", list(range(32)))[0] == 0


def test_a_busy_app_evicts_its_own_entries_before_the_fair_share_of_others() -> None:
    cache = PrefixCache(900, PER_TOKEN, min_tokens=4)  # 90 tokens: a fair share of 30 for 3 apps
    cache.store("mail", list(range(100, 125)), _kv(25))
    cache.store("notes", list(range(200, 225)), _kv(25))
    for question in range(5):  # the keyboard asks on: 5 entries of 25 tokens, different ends
        cache.store("keyboard", [*range(300, 320), *range(question * 5, question * 5 + 5)],
                    _kv(25))
    # mail and notes were used least recently, but keep their share; keyboard keeps the rest
    assert cache.lookup("mail", list(range(100, 125)))[0] == 25 - MIN_PREFILL
    assert cache.lookup("notes", list(range(200, 225)))[0] == 25 - MIN_PREFILL
    assert cache.lookup("keyboard", [*range(300, 320), 20, 21, 22, 23, 24])[0] == 25 - MIN_PREFILL
    assert cache.lookup("keyboard", [*range(300, 320), 0, 1, 2, 3, 4])[0] == 20  # its oldest
    assert cache.bytes == 750
    cache.store("mail", list(range(400, 440)), _kv(40))  # over budget: keyboard is over share
    assert cache.lookup("notes", list(range(200, 225)))[0] == 25 - MIN_PREFILL
    assert cache.bytes <= 900


def _messages(*turns: str) -> list[Message]:
    roles = [Role.USER, Role.ASSISTANT]
    return [Message(Role.SYSTEM, SYSTEM)] + [
        Message(roles[i % 2], text) for i, text in enumerate(turns)
    ]


async def _answer(engine: LocalEngine, messages: list[Message], app: str) -> list[int]:
    stream = engine.generate(messages, GenerationParams(max_tokens=24), app=app)
    return [chunk.token_id async for chunk in stream]


async def test_reuse_leaves_greedy_answers_unchanged(tiny_genai_model: Path) -> None:
    """Same app, same system prompt: the second prompt reuses it, the third (a chat turn) reuses
    the whole first exchange, another app reuses nothing; answers equal a cache-less engine's."""
    first, other = "Summarise my shopping list: eggs, milk, bread.", "What about the dentist?"
    async with loaded(tiny_genai_model, prefix_cache_mb=0) as plain:
        answer = plain.codec.decode(await _answer(plain, _messages(first), "notes"))
        asks = [
            ("notes", _messages(first)),
            ("notes", _messages(other)),
            ("notes", _messages(first, answer, "And tea?")),
            ("mail", _messages(other)),
        ]
        expected = [await _answer(plain, messages, app) for app, messages in asks]
    async with loaded(tiny_genai_model) as engine:
        answers, reused = [], []
        for app, messages in asks:
            answers.append(await _answer(engine, messages, app))
            reused.append(engine.stats.prompt_tokens_reused_total)
        system_tokens = engine.count_prompt_tokens([Message(Role.SYSTEM, SYSTEM)])
        first_prompt = engine.count_prompt_tokens(asks[0][1])
    assert answers == expected
    assert reused[0] == 0
    assert reused[1] >= system_tokens - 4  # the system prompt, up to the user turn's start
    assert reused[2] - reused[1] >= first_prompt  # the whole first exchange
    assert reused[3] == reused[2]  # another app: nothing


async def test_optimum_layout_runs_without_the_cache(tiny_optimum_model: Path) -> None:
    async with loaded(tiny_optimum_model) as engine:
        for _ in range(2):
            await _answer(engine, _messages("What did I write about the dentist?"), "notes")
        assert engine.stats.prompt_tokens_reused_total == 0
