"""Continuous batching: aggregate decode speed and TTFT at 1, 2, 4 and 8 concurrent streams.

    python bench/concurrency.py [--model DIR] [--new-tokens 128] [--requests 2]

One in-process engine on the default model, greedy, a ~200-token chat prompt. For each N:

* **decode**: N streams start together; aggregate decode tok/s counts the tokens generated while
  all N are decoding (from the last stream's first token to the first stream's last token), so
  prompt processing is left out;
* **service**: N closed-loop clients each send ``--requests`` requests back to back, staggered by
  1/N of a single request's duration so that newcomers arrive while others decode (they join
  the running batch). Reported: end-to-end tok/s (all tokens / wall time, prompt processing
  included) and TTFT p50/p95 over all requests, p95 also as a multiple of one stream's TTFT.

Baseline, same run: the same engine with batching off (``max_batch_size=1``: requests wait in
the fair queue and run one at a time).
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
from engine import PROMPT, default_model_folder  # noqa: E402
from handoffd.domain import GenerationParams, Message, Role  # noqa: E402
from handoffd.engine import EngineLimits, LocalEngine  # noqa: E402
from handoffd.settings import ModelSettings  # noqa: E402

LEVELS = (1, 2, 4, 8)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _stream(engine: LocalEngine, new_tokens: int) -> tuple[float, list[float]]:
    """(start time, token arrival times) of one generation."""
    start = time.perf_counter()
    times = [time.perf_counter() async for _ in engine.generate(
        [Message(Role.USER, PROMPT)], GenerationParams(max_tokens=new_tokens))]
    return start, times


async def _decode_rate(engine: LocalEngine, clients: int, new_tokens: int) -> float:
    runs = await asyncio.gather(*(_stream(engine, new_tokens) for _ in range(clients)))
    begin = max(times[0] for _, times in runs)
    end = min(times[-1] for _, times in runs)
    if clients == 1 or end <= begin:
        # one stream, or streams that ran one after another (batching off): their own rate
        return statistics.mean((len(t) - 1) / (t[-1] - t[0]) for _, t in runs)
    tokens = sum(1 for _, times in runs for t in times if begin < t <= end)
    return tokens / (end - begin)


async def _service(
    engine: LocalEngine, clients: int, requests: int, new_tokens: int, stagger_s: float
) -> dict[str, float]:
    ttfts: list[float] = []

    async def client(index: int) -> int:
        await asyncio.sleep(index * stagger_s)
        count = 0
        for _ in range(requests):
            start, times = await _stream(engine, new_tokens)
            ttfts.append((times[0] - start) * 1000.0)
            count += len(times)
        return count

    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(client(i) for i in range(clients))))
    wall = time.perf_counter() - start
    return {"tok_s": tokens / wall, "ttft_p50": statistics.median(ttfts),
            "ttft_p95": _quantile(ttfts, 0.95)}


async def run(args: argparse.Namespace) -> str:
    model = default_model_folder(args.model)
    settings = ModelSettings(path=model, providers=("CPUExecutionProvider",))
    decode: dict[str, dict[int, float]] = {}
    service: dict[str, dict[int, dict[str, float]]] = {}
    single_s = 0.0
    for label, limits in (("on", EngineLimits(max_batch_size=8)),
                          ("off", EngineLimits(max_batch_size=1))):
        engine = await asyncio.to_thread(LocalEngine.load, settings, limits)
        try:
            await _stream(engine, args.new_tokens)  # warm-up
            if not single_s:
                start, times = await _stream(engine, args.new_tokens)
                single_s = times[-1] - start
            decode[label], service[label] = {}, {}
            for n in LEVELS:
                decode[label][n] = await _decode_rate(engine, n, args.new_tokens)
                service[label][n] = await _service(
                    engine, n, args.requests, args.new_tokens, single_s / n
                )
                print(f"batching {label} N={n}: decode {decode[label][n]:.1f} tok/s, "
                      f"service {service[label][n]}", file=sys.stderr)
        finally:
            await engine.aclose()
    on, off = service["on"], service["off"]
    base_decode, base_ttft = decode["on"][1], on[1]["ttft_p50"]
    rows = [
        "| streams | decode tok/s | vs 1 stream | batching off | end-to-end tok/s | batching off "
        "| TTFT p50 ms | TTFT p95 ms | p95 vs 1 stream | batching off: TTFT p95 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in LEVELS:
        rows.append(
            f"| {n} | {decode['on'][n]:.0f} | {decode['on'][n] / base_decode:.2f}x | "
            f"{decode['off'][n]:.0f} | {on[n]['tok_s']:.0f} | {off[n]['tok_s']:.0f} | "
            f"{on[n]['ttft_p50']:.0f} | {on[n]['ttft_p95']:.0f} | "
            f"{on[n]['ttft_p95'] / base_ttft:.2f}x | {off[n]['ttft_p95']:.0f} |"
        )
    return (
        "## Concurrent streams (continuous batching)\n\n"
        f"`python bench/concurrency.py --requests {args.requests} --new-tokens "
        f"{args.new_tokens}` on {machine()}, {today()}; load average at the end "
        f"{load_average()}. Default model ({model.name}), in-process engine, greedy, "
        f"{args.new_tokens} new tokens per request. *decode*: N streams started together, "
        "tokens generated while all N decode / that time. *end-to-end* and TTFT: N closed-loop "
        f"clients, {args.requests} requests each, staggered by 1/N of one request's duration "
        "(prompt processing included). Baseline: the same engine with batching off "
        "(max_batch_size=1).\n\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default-model folder (default: the daemon's)")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    markdown = asyncio.run(run(args))
    print(markdown)
    if not args.no_write:
        write_section("concurrency", markdown)


if __name__ == "__main__":
    main()
