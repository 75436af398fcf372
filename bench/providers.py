"""Execution providers: which one really runs, do its tokens match CPU's, and how fast.

    python bench/providers.py [--model DIR ...] [--providers CPUExecutionProvider
        CUDAExecutionProvider] [--new-tokens 64] [--streams 8] [--threads 0] [--out FILE.json]
        [--no-write]

Per model folder (default: the build cache's tiny test models, and the default model if built)
and provider list (CPU alone, then each accelerator as ``(ACCEL, CPU)``), one in-process engine:
the provider that really runs (a fallback to CPU is flagged loudly), greedy ids of 3 prompts vs
CPU's, ``--streams`` concurrent streams vs solo, TTFT and tok/s. A failure stays in its row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "daemon")]

import onnxruntime as ort  # noqa: E402
from benchdoc import machine, today, write_section  # noqa: E402
from engine import default_model_folder  # noqa: E402
from handoffd.domain import GenerationParams, Message, Role  # noqa: E402
from handoffd.engine import EngineLimits, LocalEngine  # noqa: E402
from handoffd.logsetup import configure_logging  # noqa: E402
from handoffd.modelbuild.cache import build_cache_root  # noqa: E402
from handoffd.settings import ModelSettings, default_model_dir  # noqa: E402

CPU = "CPUExecutionProvider"
PROMPTS = ("What is the capital of France?", "Write a haiku about the sea.",
           "List three prime numbers and explain why they are prime.")
Run = tuple[list[int], float, list[float]]  # token ids, start time, token arrival times
Event = dict[str, Any]


@dataclass
class Row:
    model: str
    asked: list[str]
    ran: str = ""
    fallback: str = ""  # non-empty: the accelerator asked for is NOT the provider that runs
    kv: str = ""
    max_batch: int = 0
    ids: list[list[int]] = field(default_factory=list)
    parity: str = ""
    batched: str = ""
    ttft_ms: float | None = None
    decode_tok_s: float | None = None
    streams_tok_s: float | None = None
    warnings: list[Event] = field(default_factory=list)
    error: str = ""


class _ProviderEvents(logging.Handler):
    """Keeps the engine's provider warnings (unavailable, failed, fallback) for the rows."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.events: list[Event] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict) and "provider" in str(record.msg.get("event", "")):
            self.events.append({k: str(v) for k, v in record.msg.items() if k[0] != "_"})


def _fallback_reason(asked: str, ran: str, events: list[Event]) -> str:
    why = f"{asked} asked, but the session runs {ran} first"
    for e in events:
        if e["event"] == "engine.provider_unavailable" and e.get("provider") == asked:
            why = f"{asked} not available in this onnxruntime build"
        elif e["event"] == "engine.provider_failed" and e.get("provider") == asked:
            why = f"{asked} failed to initialise ({e.get('error', '')})"
        elif e["event"] == "engine.provider_fallback" and e.get("requested") == asked:
            why = f"onnxruntime could not create {asked} (CUDA/cuDNN libraries? see stderr)"
    return f"{why} → ran on {ran}"


def _compare(got: list[list[int]], want: list[list[int]], labels: list[int]) -> str:
    """``equal``, or each differing prompt's first diverging position: #prompt@position/length."""
    bad = []
    for label, a, b in zip(labels, got, want, strict=True):
        at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                  None if len(a) == len(b) else min(len(a), len(b)))
        if at is not None:
            bad.append(f"#{label}@{at}/{len(b)}")
    return "DIFFERS at " + ", ".join(bad) if bad else "equal"


async def _generate(engine: LocalEngine, prompt: str, new_tokens: int) -> Run:
    start, ids, times = time.perf_counter(), list[int](), list[float]()
    params = GenerationParams(max_tokens=new_tokens, temperature=0.0)  # greedy
    async for chunk in engine.generate([Message(Role.USER, prompt)], params):
        ids.append(chunk.token_id)
        times.append(time.perf_counter())
    return ids, start, times


async def _measure(row: Row, folder: Path, args: argparse.Namespace, cpu: Row | None,
                   events: list[Event]) -> None:
    since = len(events)
    settings = ModelSettings(path=folder, providers=tuple(row.asked),
                             intra_op_threads=args.threads)
    engine = await asyncio.to_thread(LocalEngine.load, settings, EngineLimits(max_batch_size=8))
    try:
        row.ran, row.max_batch = engine.info.execution_provider, engine._worker.max_batch
        row.kv = type(engine._worker._runner).__name__
        if row.asked[0] != CPU and row.ran != row.asked[0]:
            row.fallback = _fallback_reason(row.asked[0], row.ran, events[since:])
            print(f"!!! {folder.name}: FELL BACK: {row.fallback}", file=sys.stderr)
        row.ids = [(await _generate(engine, p, args.new_tokens))[0] for p in PROMPTS]
        row.parity = "(baseline)" if cpu is None else (
            "n/a (CPU row failed)" if not cpu.ids else _compare(row.ids, cpu.ids, [0, 1, 2]))
        row.parity += " (both ran on CPU)" if row.fallback else ""
        which = [i % len(PROMPTS) for i in range(args.streams)]
        began = time.perf_counter()
        runs = await asyncio.gather(*(_generate(engine, PROMPTS[i], args.new_tokens)
                                      for i in which))
        row.streams_tok_s = sum(len(r[0]) for r in runs) / (time.perf_counter() - began)
        row.batched = _compare([r[0] for r in runs], [row.ids[i] for i in which], which)
        solo = [await _generate(engine, PROMPTS[0], args.new_tokens) for _ in range(3)]
        row.ttft_ms = statistics.median((t[0] - start) * 1000.0 for _, start, t in solo)
        rates = [(len(t) - 1) / (t[-1] - t[0]) for _, _, t in solo if len(t) > 1]
        row.decode_tok_s = statistics.median(rates) if rates else None
    finally:
        await engine.aclose()


def _folders(args: argparse.Namespace) -> list[Path]:
    if args.model:
        return [Path(m) for m in args.model]
    tiny = build_cache_root() / "tiny"
    found = sorted(p for pat in ("genai-*", "optimum-*") for p in tiny.glob(pat) if p.is_dir())
    dest = default_model_dir()
    if (dest / "handoffd-manifest.json").is_file():
        from handoffd.modelbuild.default_model import is_built

        # default_model_folder builds a missing model (minutes, network): only on a built one
        found.append(default_model_folder(None) if is_built(dest) else dest)
    if not found:
        raise SystemExit(f"no model folders under {tiny} nor {dest}: pass --model DIR")
    return found


def _header() -> dict[str, Any]:
    smi = shutil.which("nvidia-smi")
    try:
        gpu = "no GPU" if not smi else subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        gpu = f"nvidia-smi failed: {exc}"
    return {"machine": machine(), "gpu": gpu, "onnxruntime": ort.__version__,
            "available_providers": ort.get_available_providers(), "date": today(),
            "python": sys.version.split()[0], "argv": sys.argv[1:]}


def _table(rows: list[Row], head: dict[str, Any], args: argparse.Namespace) -> str:
    def num(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "## Execution providers: which one runs, parity with CPU, speed\n",
        f"`python bench/providers.py {' '.join(head['argv'])}` on {head['machine']}; GPU: "
        f"{head['gpu']}; Python {head['python']}, onnxruntime {head['onnxruntime']} (providers: "
        f"{', '.join(head['available_providers'])}); {head['date']}. Greedy, {args.new_tokens} "
        "new tokens (fewer at EOS). Parity: ids vs the CPU row, `#prompt@first difference/length`"
        " (fp32 near-ties in a random tiny model may differ). batched==solo: concurrent streams "
        "vs solo ids, same provider. TTFT, decode tok/s: one stream, median of 3.\n",
        "| model | providers asked | provider ran | KV runner | parity vs CPU | batched==solo "
        f"| TTFT ms | decode tok/s | {args.streams}-stream tok/s |",
        "|---|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        ran = f"**FELL BACK: {r.fallback}**" if r.fallback else (r.ran or "-")
        if r.error:
            ran += f" **ERROR: {r.error[:300]}**".replace("|", "/").replace("\n", " ")
        kv = f"{r.kv} (batch {r.max_batch})" if r.kv else "-"
        lines.append(f"| {r.model} | {', '.join(r.asked)} | {ran} | {kv} | {r.parity or '-'} | "
                     f"{r.batched or '-'} | {num(r.ttft_ms, 0)} | {num(r.decode_tok_s, 1)} | "
                     f"{num(r.streams_tok_s, 1)} |")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace, events: list[Event]) -> list[Row]:
    rows: list[Row] = []
    for folder in _folders(args):
        cpu: Row | None = None
        for asked in [[CPU]] + [[p, CPU] for p in args.providers if p != CPU]:
            row, since = Row(model=folder.name, asked=asked), len(events)
            print(f"[{folder.name}] {' + '.join(asked)}", file=sys.stderr)
            try:
                await _measure(row, folder, args, cpu, events)
            except Exception as exc:
                row.error = f"{type(exc).__name__}: {exc}"
                print(f"[{folder.name}] {asked} failed:", file=sys.stderr)
                traceback.print_exc()
            row.warnings = events[since:]
            rows.append(row)
            cpu = cpu or row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="extend", nargs="+", help="model folder(s)")
    parser.add_argument("--providers", nargs="+", default=[CPU, "CUDAExecutionProvider"])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ort's)")
    parser.add_argument("--out", type=Path, help="raw results as JSON")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    configure_logging("warning", "json")  # the engine's provider warnings, on stderr
    root = logging.getLogger()
    for handler in root.handlers:
        cast("logging.StreamHandler[Any]", handler).setStream(sys.stderr)
    events = _ProviderEvents()
    root.addHandler(events)
    head = _header()
    print(json.dumps(head), file=sys.stderr, flush=True)
    rows = asyncio.run(run(args, events.events))
    markdown = _table(rows, head, args)
    print(markdown)
    if args.out:
        args.out.write_text(json.dumps({"header": head, "rows": [asdict(r) for r in rows]},
                                       indent=1) + "\n", encoding="utf-8")
    if not args.no_write:
        write_section("providers", markdown)


if __name__ == "__main__":
    main()
