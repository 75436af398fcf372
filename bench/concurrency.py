"""Continuous batching: aggregate decode speed and TTFT at 1, 2, 4 and 8 concurrent streams.

    python bench/concurrency.py [--model DIR] [--new-tokens 128] [--requests 2]

One in-process engine on the default model, greedy, a ~200-token chat prompt. For each N:

* **decode**: N streams start together; aggregate decode tok/s counts the tokens generated while
  all N are decoding (from the last stream's first token to the first stream's last token), so
  prompt processing is left out. The last of the N first tokens is reported too (*burst TTFT*:
  N prompts arriving at once are prefilled one after another);
* **service**: N closed-loop clients send requests back to back (``--requests`` each, and at
  least ``--samples`` requests in all at every N). Their first requests are staggered by 1/N of
  a request's expected duration at N streams (one stream's TTFT + new tokens x N / the decode
  rate just measured), so that arrivals are spread over the cycle as in steady state: newcomers
  arrive while others decode and join the running batch. Reported: end-to-end tok/s (all
  tokens / wall time, prompt processing included) and TTFT p50/p95 over all requests, p95 also
  as a multiple of the single-stream TTFT (the p50 at N=1).

Baseline, same run: the same engine with batching off (``max_batch_size=1``: requests wait in
the fair queue and run one at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import random
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


async def _decode_phase(engine: LocalEngine, clients: int, new_tokens: int) -> tuple[float, float]:
    """(aggregate decode tok/s, burst TTFT in s) of ``clients`` streams started together."""
    runs = await asyncio.gather(*(_stream(engine, new_tokens) for _ in range(clients)))
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
    engine: LocalEngine, clients: int, requests: int, new_tokens: int, cycle_s: float,
    think_s: float, rng: random.Random,
) -> dict[str, float]:
    ttfts: list[float] = []
    phases = [rng.uniform(0.0, cycle_s) for _ in range(clients)]
    pauses = [[rng.expovariate(1.0 / think_s) if think_s > 0 else 0.0 for _ in range(requests)]
              for _ in range(clients)]

    async def client(index: int) -> int:
        await asyncio.sleep(phases[index])
        count = 0
        for pause in pauses[index]:
            start, times = await _stream(engine, new_tokens)
            ttfts.append((times[0] - start) * 1000.0)
            count += len(times)
            await asyncio.sleep(pause)
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
    burst: dict[str, dict[int, float]] = {}
    service: dict[str, dict[int, dict[str, float]]] = {}
    single_ttft_s = 0.0
    configs = [("on", EngineLimits(max_batch_size=8)), ("off", EngineLimits(max_batch_size=1))]
    for label, limits in configs[: 1 if args.no_baseline else 2]:
        engine = await asyncio.to_thread(LocalEngine.load, settings, limits)
        try:
            await _stream(engine, args.new_tokens)  # warm-up
            if not single_ttft_s:
                start, times = await _stream(engine, args.new_tokens)
                single_ttft_s = times[0] - start
            decode[label], burst[label], service[label] = {}, {}, {}
            for n in args.levels:
                rate, burst_s = await _decode_phase(engine, n, args.new_tokens)
                decode[label][n], burst[label][n] = rate, burst_s * 1000.0
                expected_s = single_ttft_s + args.new_tokens * n / rate
                requests = max(args.requests, -(-args.samples // n))
                service[label][n] = await _service(
                    engine, n, requests, args.new_tokens, expected_s, args.think_s,
                    random.Random(args.seed + n),
                )
                print(f"batching {label} N={n}: decode {rate:.1f} tok/s, burst TTFT "
                      f"{burst_s * 1000:.0f} ms, service {service[label][n]}", file=sys.stderr)
        finally:
            await engine.aclose()
    on, off = service["on"], service.get("off", {})
    base_decode, base_ttft = decode["on"][1], on[1]["ttft_p50"]
    rows = [
        "| streams | decode tok/s | vs 1 stream | batching off | end-to-end tok/s | batching off "
        "| TTFT p50 ms | TTFT p95 ms | p95 vs 1 stream | batching off: TTFT p95 ms "
        "| burst TTFT ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in args.levels:
        off_decode = f"{decode['off'][n]:.0f}" if "off" in decode else "-"
        off_tok_s = f"{off[n]['tok_s']:.0f}" if off else "-"
        off_p95 = f"{off[n]['ttft_p95']:.0f}" if off else "-"
        rows.append(
            f"| {n} | {decode['on'][n]:.0f} | {decode['on'][n] / base_decode:.2f}x | "
            f"{off_decode} | {on[n]['tok_s']:.0f} | {off_tok_s} | "
            f"{on[n]['ttft_p50']:.0f} | {on[n]['ttft_p95']:.0f} | "
            f"{on[n]['ttft_p95'] / base_ttft:.2f}x | {off_p95} | {burst['on'][n]:.0f} |"
        )
    return (
        "## Concurrent streams (continuous batching)\n\n"
        f"`python bench/concurrency.py --requests {args.requests} --samples {args.samples} "
        f"--new-tokens {args.new_tokens}` on {machine()}, {today()}; load average at the end "
        f"{load_average()}. Default model ({model.name}), in-process engine, greedy, "
        f"{args.new_tokens} new tokens per request. *decode*: N streams started together, "
        "tokens generated while all N decode / that time. *end-to-end* and TTFT: N closed-loop "
        f"clients, {args.requests} requests each (at least {args.samples} in all), first "
        "requests staggered by 1/N of a request's expected duration at N streams (prompt "
        "processing included). *burst TTFT*: the last first token of N requests sent at once. "
        "Baseline: the same "
        "engine with batching off (max_batch_size=1).\n\n" + "\n".join(rows) + "\n"
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
