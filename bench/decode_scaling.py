"""Where batched decode time goes: the runner alone, 1 stream against N, by context length, and
onnxruntime's own profile of a decode step by operator.

    python bench/decode_scaling.py [--model DIR] [--contexts 64 232 424] [--batch 8]
                                   [--steps 48] [--repeats 3] [--no-write]

No engine and no event loop: a ``SharedKvRunner`` on the default model, with the daemon's session
options. Each slot is prefilled with ``context - steps / 2`` tokens, then ``--steps`` decode steps
of the whole batch are timed, so ``context`` is the mean context length while decoding; median of
``--repeats``, batch sizes taken in turn. This is the ceiling for ``bench/concurrency.py``, whose
engine adds sampling, detokenizing and the event loop.

The profile: the middle context again, with onnxruntime's profiler on, kernel time per operator
type per decode step at batch 1 and at ``--batch`` (the profiler slows kernels down: compare its
rows with each other, not with the timings above).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import onnxruntime as ort  # noqa: E402
from benchdoc import cpu_jiffies, machine, steal_share, today, write_section  # noqa: E402
from engine import default_model_folder  # noqa: E402
from handoffd.engine.folder import ModelSpec, read_model_folder  # noqa: E402
from handoffd.engine.kv_shared import SharedKvRunner  # noqa: E402
from handoffd.engine.session import session_options  # noqa: E402

CPU = ["CPUExecutionProvider"]


def _runner(spec: ModelSpec, batch: int, capacity: int, profile: str = "") -> SharedKvRunner:
    options = session_options(0)
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    session = ort.InferenceSession(str(spec.onnx_path), options, providers=CPU)
    return SharedKvRunner(session, spec, max_batch=batch, capacity=capacity)


def _decode_ms(runner: SharedKvRunner, batch: int, prompt: int, steps: int) -> float:
    """Mean ms per decode step of ``batch`` rows after a ``prompt``-token prefill each."""
    slots = list(range(batch))
    for slot in slots:
        runner.prefill(slot, [100 + (i + slot) % 1000 for i in range(prompt)], 0)
    start = time.perf_counter()
    for _ in range(steps):
        runner.decode(slots, [5] * batch)
    elapsed = time.perf_counter() - start
    for slot in slots:
        runner.release(slot)
    return 1000.0 * elapsed / steps


def _profile(
    spec: ModelSpec, batch: int, prompt: int, steps: int, capacity: int
) -> dict[str, float]:
    """Kernel ms per decode step by operator type."""
    with tempfile.TemporaryDirectory() as tmp:
        runner = _runner(spec, batch, capacity, profile=str(Path(tmp) / "decode"))
        _decode_ms(runner, batch, prompt, steps)
        events: list[dict[str, Any]] = json.loads(
            Path(runner._session.end_profiling()).read_text(encoding="utf-8")
        )
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    first = runs[-steps]["ts"]  # the decode runs are the last ``steps``
    totals: collections.Counter[str] = collections.Counter()
    for event in events:
        if (event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
                and event["ts"] >= first):
            totals[event["args"]["op_name"]] += event["dur"]
    return {op: micros / steps / 1000.0 for op, micros in totals.items()}


def run(args: argparse.Namespace) -> str:
    model = default_model_folder(args.model)
    spec = read_model_folder(model)
    capacity = max(args.contexts) + args.steps
    runner = _runner(spec, args.batch, capacity)
    _decode_ms(runner, args.batch, 16, 4)  # warm-up
    jiffies = cpu_jiffies()
    rows = [
        "| mean context, tokens | 1 stream: ms/step | "
        f"{args.batch} streams: ms/step | {args.batch} streams: tok/s vs 1 stream |",
        "|---:|---:|---:|---:|",
    ]
    for context in args.contexts:
        prompt = context - args.steps // 2
        times: dict[int, list[float]] = {1: [], args.batch: []}
        for _ in range(args.repeats):
            for batch, measured in times.items():
                measured.append(_decode_ms(runner, batch, prompt, args.steps))
        one, many = statistics.median(times[1]), statistics.median(times[args.batch])
        rows.append(f"| {context} | {one:.1f} | {many:.1f} | {args.batch * one / many:.2f}x |")
        print(rows[-1], file=sys.stderr)
    middle = args.contexts[len(args.contexts) // 2]
    profiles = {b: _profile(spec, b, middle - args.steps // 2, args.steps, capacity)
                for b in (1, args.batch)}
    ops = sorted(profiles[args.batch], key=lambda op: -profiles[args.batch][op])
    shown = [op for op in ops if profiles[args.batch][op] >= 0.5]
    profile_rows = [
        f"| operator | 1 stream: ms/step | {args.batch} streams: ms/step | growth |",
        "|---|---:|---:|---:|",
    ]
    for op in [*shown, "all"]:
        one = sum(profiles[1].values()) if op == "all" else profiles[1].get(op, 0.0)
        many = sum(profiles[args.batch].values()) if op == "all" else profiles[args.batch][op]
        profile_rows.append(f"| {op} | {one:.2f} | {many:.2f} | {many / one:.1f}x |")
    return (
        "## Decode scaling: the runner alone, by context length\n\n"
        f"`python bench/decode_scaling.py --contexts {' '.join(map(str, args.contexts))} "
        f"--batch {args.batch} --steps {args.steps} --repeats {args.repeats}` on {machine()}, "
        f"{today()}; CPU time stolen by the hypervisor during the timings "
        f"{steal_share(jiffies)}. Default model ({model.name}), `SharedKvRunner` alone (no "
        "engine, no event loop), the daemon's session options; each slot prefilled, then "
        f"{args.steps} decode steps of the whole batch timed; *mean context* is the mean "
        f"length while decoding; median of {args.repeats}. This is the ceiling for the "
        "engine's numbers in *Concurrent streams*.\n\n" + "\n".join(rows) + "\n\n"
        f"onnxruntime's profiler at a mean context of {middle} tokens, kernel time per decode "
        "step by operator type (the profiler slows kernels: compare rows with each other):\n\n"
        + "\n".join(profile_rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default-model folder (default: the daemon's)")
    parser.add_argument("--contexts", type=int, nargs="+", default=[64, 232, 424])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if min(args.contexts) <= args.steps // 2 + 1:
        parser.error(f"--contexts must be above {args.steps // 2 + 1} (steps / 2 + 2)")
    markdown = run(args)
    print(markdown)
    if not args.no_write:
        write_section("decode_scaling", markdown)


if __name__ == "__main__":
    main()
