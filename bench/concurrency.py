"""Continuous batching: aggregate decode speed and TTFT at 1, 2, 4 and 8 concurrent streams.

    python bench/concurrency.py [--model DIR] [--new-tokens 128] [--requests 3]

For each N, N clients each send ``--requests`` chat requests back to back (greedy, ~200-token
prompt, ``--new-tokens`` tokens) to one in-process engine on the default model. Clients start
staggered by one N-th of a single request's duration, so arrivals spread out as they do in
service and newcomers join running batches. Reported per N: aggregate decode tok/s (all tokens
generated / wall time), TTFT p50/p95 over all requests, and the same run with batching off
(``max_batch_size=1``: requests wait in the fair queue and run one at a time) as the named
baseline. A second table starts all N clients at the same instant (burst): its TTFT is bounded
by N prefills on the same cores, batching or not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchdoc import load_average, machine, today, write_section  # noqa: E402
from engine import PROMPT, _default_model  # noqa: E402

from handoffd.domain import GenerationParams, Message, Role  # noqa: E402
from handoffd.engine import EngineLimits, LocalEngine  # noqa: E402
from handoffd.settings import ModelSettings  # noqa: E402

LEVELS = (1, 2, 4, 8)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _one(engine: LocalEngine, new_tokens: int, ttfts: list[float]) -> int:
    start = time.perf_counter()
    count = 0
    async for _ in engine.generate([Message(Role.USER, PROMPT)],
                                   GenerationParams(max_tokens=new_tokens)):
        if count == 0:
            ttfts.append((time.perf_counter() - start) * 1000.0)
        count += 1
    return count


async def _level(
    engine: LocalEngine, clients: int, requests: int, new_tokens: int, stagger_s: float
) -> dict[str, float]:
    ttfts: list[float] = []

    async def client(index: int) -> int:
        await asyncio.sleep(index * stagger_s)
        return sum([await _one(engine, new_tokens, ttfts) for _ in range(requests)])

    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(client(i) for i in range(clients))))
    wall = time.perf_counter() - start
    return {
        "tok_s": tokens / wall,
        "ttft_p50": statistics.median(ttfts),
        "ttft_p95": _quantile(ttfts, 0.95),
    }


async def run(args: argparse.Namespace) -> str:
    model = _default_model(args.model)
    settings = ModelSettings(path=model, providers=("CPUExecutionProvider",))
    results: dict[str, dict[int, dict[str, float]]] = {}
    single_s = 0.0
    for label, limits in (("batching", EngineLimits(max_batch_size=8)),
                          ("batching off", EngineLimits(max_batch_size=1))):
        engine = await asyncio.to_thread(LocalEngine.load, settings, limits)
        try:
            await _one(engine, args.new_tokens, [])  # warm-up
            if not single_s:
                t = time.perf_counter()
                await _one(engine, args.new_tokens, [])
                single_s = time.perf_counter() - t
            results[label] = {}
            results[label + " burst"] = {}
            for n in LEVELS:
                results[label][n] = await _level(
                    engine, n, args.requests, args.new_tokens, single_s / n
                )
                results[label + " burst"][n] = await _level(engine, n, 1, args.new_tokens, 0.0)
                print(f"{label} N={n}: {results[label][n]}", file=sys.stderr)
        finally:
            await engine.aclose()
    on, off = results["batching"], results["batching off"]
    base_tok, base_ttft = on[1]["tok_s"], on[1]["ttft_p50"]
    rows = [
        "| streams | aggregate tok/s | vs 1 stream | TTFT p50 ms | TTFT p95 ms | p95 vs 1-stream "
        "TTFT | batching off: tok/s | batching off: TTFT p95 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in LEVELS:
        r, b = on[n], off[n]
        rows.append(
            f"| {n} | {r['tok_s']:.0f} | {r['tok_s'] / base_tok:.2f}x | {r['ttft_p50']:.0f} | "
            f"{r['ttft_p95']:.0f} | {r['ttft_p95'] / base_ttft:.2f}x | {b['tok_s']:.0f} | "
            f"{b['ttft_p95']:.0f} |"
        )
    burst = ["| streams | batching: tok/s | TTFT p95 ms | batching off: tok/s | TTFT p95 ms |",
             "|---:|---:|---:|---:|---:|"]
    for n in LEVELS:
        r, b = results["batching burst"][n], results["batching off burst"][n]
        burst.append(f"| {n} | {r['tok_s']:.0f} | {r['ttft_p95']:.0f} | {b['tok_s']:.0f} | "
                     f"{b['ttft_p95']:.0f} |")
    return (
        "## Concurrent streams (continuous batching)\n\n"
        f"`python bench/concurrency.py --requests {args.requests} --new-tokens "
        f"{args.new_tokens}` on {machine()}, {today()}; load average at the end "
        f"{load_average()}. Default model ({model.name}), in-process engine, greedy, "
        f"{args.new_tokens} new tokens per request, {args.requests} requests per client, clients "
        "staggered by 1/N of a single request's duration.\n\n"
        + "\n".join(rows)
        + "\n\nAll N clients starting at once (one request each):\n\n"
        + "\n".join(burst) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default-model folder (default: the daemon's)")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    markdown = asyncio.run(run(args))
    print(markdown)
    if not args.no_write:
        write_section("concurrency", markdown)


if __name__ == "__main__":
    main()
