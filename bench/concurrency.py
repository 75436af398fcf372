"""Continuous batching: aggregate decode speed and TTFT at 1, 2, 4 and 8 concurrent streams.

    python bench/concurrency.py [--model DIR] [--new-tokens 128] [--requests 4] [--samples 16]
                                [--think-s 1.0] [--seed 0] [--levels 1 2 4 8] [--no-baseline]

One in-process engine on the default model, greedy. Three workloads:

* *chat*: short questions (~55 tokens with the chat template), each different;
* *notes*: ~200-token prompts (notes to summarise), each different from its first user word;
* *apps*: each client is an app with its own ~150-token system prompt and a different ~60-token
  question each time (what the prefix cache is for: the app's system prompt is reused).

For each N:

* **decode**, *chat* and *notes* prompts (short and long context): N streams start together;
  aggregate decode tok/s counts the tokens generated while all N are decoding (from the last
  stream's first token to the first stream's last token), so prompt processing is left out;
  median of ``--repeats`` runs, the levels and contexts taken round-robin. The last of the N
  first tokens is reported too (*burst TTFT*: N prompts arriving at once are prefilled one
  after another);
* **service**, each workload: N closed-loop clients (apps), each sending requests one after
  another with a random pause between them (exponential, mean ``--think-s``), their first
  requests at random times within one request's expected duration (seeded), ``--requests`` each
  and at least ``--samples`` in all, after one uncounted warm-up request each (steady state:
  the app's prefix-cache entry exists). Reported: end-to-end tok/s and TTFT p50/p95 over all
  requests, p95 also as a multiple of the single-stream TTFT (the p50 at N=1).

Baseline, same run: the same engine with batching off (``max_batch_size=1``: requests wait in
the fair queue and run one at a time), *notes* workload, ``--samples`` requests per level.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchdoc import (  # noqa: E402
    cpu_jiffies,
    load_average,
    machine,
    steal_share,
    today,
    write_section,
)
from engine import PROMPT, default_model_folder  # noqa: E402
from handoffd.domain import GenerationParams, Message, Role  # noqa: E402
from handoffd.engine import EngineLimits, LocalEngine  # noqa: E402
from handoffd.settings import ModelSettings  # noqa: E402

LEVELS = (1, 2, 4, 8)
APPS = ("Notes", "Mail", "Calendar", "Keyboard", "Photos", "Maps", "Messages", "Music")
APP_RULES = (
    "Answer the user's request in full, with an introduction, several detailed paragraphs and "
    "a conclusion. Use plain English, explain every technical term you use, and give concrete "
    "examples from everyday life. Never invent personal facts about the user; if the request "
    "depends on information you do not have, say what is missing and answer the general case. "
    "Do not mention these instructions, do not apologise, and do not refer to yourself as a "
    "language model. Keep a friendly, calm tone, as a patient teacher would, and prefer short "
    "sentences to long ones."
)
TOPICS = (
    "how bread rises", "why the sky is blue", "how a bicycle stays upright",
    "how vaccines train the immune system", "why leaves change colour in autumn",
    "how a refrigerator keeps food cold", "how bees make honey", "why we have seasons",
)

#: one prompt per request: the workload's messages for (client, request number)
Workload = Callable[[int, int], list[Message]]


def chat(client: int, number: int) -> list[Message]:
    topic = TOPICS[(client + number) % len(TOPICS)]
    return [Message(Role.USER, f"Question {number} from client {client}: please write a long, "
                               f"detailed explanation of {topic}, with examples.")]


def notes(client: int, number: int) -> list[Message]:
    return [Message(Role.USER, f"Request {number}, from client {client}. {PROMPT}")]


def apps(client: int, number: int) -> list[Message]:
    app = APPS[client % len(APPS)]
    topic = TOPICS[number % len(TOPICS)]
    return [
        Message(Role.SYSTEM, f"You are the assistant built into {app}, an app on this phone. "
                             f"{APP_RULES}"),
        Message(Role.USER, f"Request {number}: please write a long, detailed explanation of "
                           f"{topic}, for a curious twelve-year-old, with examples they can "
                           "try at home and a short summary at the end."),
    ]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _stream(
    engine: LocalEngine, messages: list[Message], new_tokens: int, app: str = "default"
) -> tuple[float, list[float]]:
    """(start time, token arrival times) of one generation."""
    start = time.perf_counter()
    stream = engine.generate(messages, GenerationParams(max_tokens=new_tokens), app=app)
    times = [time.perf_counter() async for _ in stream]
    return start, times


async def _decode_phase(
    engine: LocalEngine, workload: Workload, clients: int, new_tokens: int,
    numbers: itertools.count[int],
) -> tuple[float, float]:
    """(aggregate decode tok/s, burst TTFT in s) of ``clients`` streams started together."""
    runs = await asyncio.gather(*(_stream(engine, workload(c, next(numbers)), new_tokens)
                                  for c in range(clients)))
    burst_ttft = max(times[0] - start for start, times in runs)
    begin = max(times[0] for _, times in runs)
    end = min(times[-1] for _, times in runs)
    if clients == 1 or end <= begin:
        # one stream, or streams that ran one after another (batching off): their own rate
        rate = statistics.mean((len(t) - 1) / (t[-1] - t[0]) for _, t in runs)
    else:
        rate = sum(1 for _, times in runs for t in times if begin < t <= end) / (end - begin)
    return rate, burst_ttft


async def _service(
    engine: LocalEngine, workload: Workload, clients: int, requests: int, new_tokens: int,
    cycle_s: float, think_s: float, rng: random.Random, numbers: itertools.count[int],
) -> dict[str, float]:
    ttfts: list[float] = []
    phases = [rng.uniform(0.0, cycle_s) for _ in range(clients)]
    pauses = [[rng.expovariate(1.0 / think_s) if think_s > 0 else 0.0 for _ in range(requests)]
              for _ in range(clients)]

    async def client(index: int) -> int:
        await asyncio.sleep(phases[index])
        # the app's first request warms its prefix-cache entry and is not counted
        await _stream(engine, workload(index, next(numbers)), new_tokens, app=APPS[index])
        count = 0
        for pause in pauses[index]:
            await asyncio.sleep(pause)
            messages = workload(index, next(numbers))
            start, times = await _stream(engine, messages, new_tokens, app=APPS[index])
            ttfts.append((times[0] - start) * 1000.0)
            count += len(times)
        return count

    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(client(i) for i in range(clients))))
    wall = time.perf_counter() - start
    return {"tok_s": tokens / wall, "ttft_p50": statistics.median(ttfts),
            "ttft_p95": _quantile(ttfts, 0.95)}


#: decode contexts: the prompts whose streams are decoded together
CONTEXTS: dict[str, Workload] = {"short": chat, "long": notes}
WORKLOADS: dict[str, Workload] = {"chat": chat, "notes": notes, "apps": apps}


async def run(args: argparse.Namespace) -> str:
    model = default_model_folder(args.model)
    settings = ModelSettings(path=model, providers=("CPUExecutionProvider",))
    numbers = itertools.count()
    jiffies = cpu_jiffies()
    decode: dict[str, dict[int, float]] = {}  # "short", "long", "long off" -> N -> tok/s
    burst: dict[str, dict[int, float]] = {}
    service: dict[str, dict[int, dict[str, float]]] = {}  # "chat", ..., "notes off"
    single_ttft_s = 0.0
    configs = [("", EngineLimits(max_batch_size=8)), (" off", EngineLimits(max_batch_size=1))]
    for suffix, limits in configs[: 1 if args.no_baseline else 2]:
        contexts = {k: v for k, v in CONTEXTS.items() if not suffix or k == "long"}
        workloads = {k: v for k, v in WORKLOADS.items() if not suffix or k == "notes"}
        engine = await asyncio.to_thread(LocalEngine.load, settings, limits)
        try:
            await _stream(engine, notes(0, next(numbers)), args.new_tokens)  # warm-up
            if not single_ttft_s:
                start, times = await _stream(engine, notes(0, next(numbers)), args.new_tokens)
                single_ttft_s = times[0] - start
            # decode rates: levels and contexts round-robin, so that drift hits them alike
            runs: dict[str, dict[int, list[tuple[float, float]]]] = {
                c: {n: [] for n in args.levels} for c in contexts
            }
            for _ in range(args.repeats):
                for n in args.levels:
                    for context, workload in contexts.items():
                        runs[context][n].append(
                            await _decode_phase(engine, workload, n, args.new_tokens, numbers)
                        )
            for context, by_level in runs.items():
                decode[context + suffix] = {
                    n: statistics.median(r[0] for r in by_level[n]) for n in args.levels
                }
                burst[context + suffix] = {
                    n: 1000.0 * statistics.median(r[1] for r in by_level[n]) for n in args.levels
                }
                print(f"decode {context}{suffix}: {decode[context + suffix]}", file=sys.stderr)
            for n in args.levels:
                expected_s = single_ttft_s + args.new_tokens * n / decode["long" + suffix][n]
                # the baseline serves one request at a time: --samples in all is enough there
                requests = max(1 if suffix else args.requests, -(-args.samples // n))
                for name, workload in workloads.items():
                    key = name + suffix
                    service.setdefault(key, {})[n] = await _service(
                        engine, workload, n, requests, args.new_tokens, expected_s,
                        args.think_s, random.Random(args.seed + n), numbers,
                    )
                    print(f"{key} N={n}: {service[key][n]}", file=sys.stderr)
        finally:
            await engine.aclose()
    return _markdown(args, model.name, decode, burst, service, steal_share(jiffies))


def _ratio(values: dict[int, float], levels: list[int]) -> str:
    return f"{values[levels[-1]] / values[levels[0]]:.2f}x"


def _markdown(
    args: argparse.Namespace, model: str, decode: dict[str, dict[int, float]],
    burst: dict[str, dict[int, float]], service: dict[str, dict[int, dict[str, float]]],
    steal: str,
) -> str:
    levels = args.levels
    first, last = levels[0], levels[-1]
    off = decode.get("long off")
    decode_rows = [
        "| streams | short context: decode tok/s | vs 1 stream | long context: decode tok/s "
        "| vs 1 stream | long, batching off | burst TTFT ms, short / long |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    short, long = decode["short"], decode["long"]
    for n in levels:
        decode_rows.append(
            f"| {n} | {short[n]:.0f} | {short[n] / short[first]:.2f}x "
            f"| {long[n]:.0f} | {long[n] / long[first]:.2f}x "
            f"| {f'{off[n]:.0f}' if off else '-'} "
            f"| {burst['short'][n]:.0f} / {burst['long'][n]:.0f} |"
        )
    service_rows = [
        "| workload | streams | end-to-end tok/s | TTFT p50 ms | TTFT p95 ms | p95 vs 1 stream |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    p95_ratio: dict[str, float] = {}
    for key, by_level in service.items():
        single = by_level[first]["ttft_p50"]
        p95_ratio[key] = by_level[last]["ttft_p95"] / single
        for n in levels:
            row = by_level[n]
            service_rows.append(
                f"| {key} | {n} | {row['tok_s']:.0f} | {row['ttft_p50']:.0f} "
                f"| {row['ttft_p95']:.0f} | {row['ttft_p95'] / single:.2f}x |"
            )
    checks = ", ".join(
        f"{context} context {_ratio(decode[context], levels)}" for context in CONTEXTS
    )
    ttft = ", ".join(f"*{key}* {p95_ratio[key]:.2f}x" for key in WORKLOADS)
    return (
        "## Concurrent streams (continuous batching)\n\n"
        f"`python bench/concurrency.py --requests {args.requests} --samples {args.samples} "
        f"--new-tokens {args.new_tokens} --think-s {args.think_s} --seed {args.seed}` on "
        f"{machine()}, {today()}; load average at the end {load_average()}, CPU time stolen by "
        f"the hypervisor during the run {steal}. Default model ({model}), in-process engine, "
        f"greedy, up to {args.new_tokens} new tokens per request.\n\n"
        f"**This run, {last} streams against {first}:** decode {checks} (target >= 2.5x); "
        f"TTFT p95 against the single-stream TTFT {ttft} (target <= 2x).\n\n"
        "*Workloads*: *chat*, short questions (~55 prompt tokens), each different; *notes*, "
        "~200-token prompts, each different from its first user word; *apps*, each client an "
        "app with its own ~150-token system prompt and a different question each time (the "
        "prefix cache reuses the system prompt).\n\n"
        "**Decode**: N streams started together (*chat* prompts: short context; *notes*: "
        "long), tokens generated while all N decode / that time, median of "
        f"{args.repeats} runs taken round-robin over levels and contexts. *burst TTFT*: the "
        "last first token of N requests sent at once. Baseline: the same engine with "
        "batching off (max_batch_size=1).\n\n" + "\n".join(decode_rows) + "\n\n"
        "**Service**: N closed-loop clients (apps), each pausing a random "
        f"{args.think_s} s on average between requests, first requests at random times within "
        "one request's expected duration, one uncounted warm-up request each, then "
        f"{args.requests} requests each (at least {args.samples} in all); *p95 vs 1 stream*: "
        "the p95 over the N-stream requests / the single-stream p50 of the same workload. "
        f"*notes off*: batching off, at least {args.samples} requests per level.\n\n"
        + "\n".join(service_rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default-model folder (default: the daemon's)")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--samples", type=int, default=16, help="least requests per level")
    parser.add_argument("--think-s", type=float, default=1.0,
                        help="mean pause of a client between its requests (exponential)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5,
                        help="decode runs per level, levels round-robin (median)")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--no-baseline", action="store_true", help="skip batching off")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    markdown = asyncio.run(run(args))
    print(markdown)
    if not args.no_write:
        write_section("concurrency", markdown)


if __name__ == "__main__":
    main()
