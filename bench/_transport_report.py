"""The markdown section of ``bench/transport.py`` and its PASS/FAIL checks."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from _transport_clients import LocalRun, StreamTiming, median, quantile, verdict

# (label, from stamp, to stamp); "client_start"/"client_first" are the gRPC client's own
SEGMENTS = (
    ("gRPC request in (client call to `pipeline.stream`)", "client_start", "enter"),
    ("validate + privacy scan + policy + router + redaction", "enter", "intent_start"),
    ("ledger intent write (durable, `synchronous=FULL`)", "intent_start", "intent_end"),
    ("rate-limit admission", "intent_end", "reserve_start"),
    ("budget reservation (SQLite `BEGIN IMMEDIATE`)", "reserve_start", "reserve_end"),
    ("reservation to cloud call", "reserve_end", "cloud_call"),
    (
        "cloud call to its first text (daemon's SDK, incl. the first-byte delay)",
        "cloud_call",
        "cloud_first",
    ),
    ("placeholder restore to first delta out of the pipeline", "cloud_first", "first_delta"),
    ("gRPC response out (pipeline to client)", "first_delta", "client_first"),
)


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN check


LABELS = {
    "in-process": "in-process `pipeline.stream` (baseline)",
    "gRPC": "gRPC `ChatStream`, Unix socket, grpc.aio",
    "HTTP": "HTTP facade, `openai.AsyncOpenAI` streaming",
}


def _paired(
    a: list[LocalRun], b: list[LocalRun], fn: Callable[[LocalRun, LocalRun], float]
) -> float:
    """Median over rounds of ``fn(a_run, b_run)``: robust to load that drifts during the run."""
    return median([fn(x, y) for x, y in zip(a, b, strict=True)])


def _local(
    results: dict[str, list[LocalRun]], args: argparse.Namespace
) -> tuple[str, dict[str, bool]]:
    inproc, grpc_, http = results["in-process"], results["gRPC"], results["HTTP"]
    grpc_vs_inproc = _paired(
        grpc_, inproc, lambda g, i: g.timing.decode_tok_s / i.timing.decode_tok_s
    )
    http_vs_grpc = _paired(http, grpc_, lambda h, g: h.timing.decode_tok_s / g.timing.decode_tok_s)
    ttft_extra = _paired(http, grpc_, lambda h, g: h.timing.ttft_ms - g.timing.ttft_ms)
    transport_extra = _paired(http, grpc_, lambda h, g: h.transport_ttft_ms - g.transport_ttft_ms)
    runs = [r for way in results.values() for r in way]
    digests = {r.timing.digest for r in runs}
    tokens = sorted({r.timing.tokens for r in runs})
    rows = [
        "| way | TTFT ms p50 | TTFT added by the transport, ms p50 (in / out) "
        "| decode tok/s p50 (min-max) | client rate / daemon rate | daemon CPU ms/token "
        "| client CPU ms/token |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for way, one in results.items():
        speed = [r.timing.decode_tok_s for r in one]
        rows.append(
            f"| {LABELS[way]} | {median([r.timing.ttft_ms for r in one]):.0f} | "
            f"{median([r.transport_ttft_ms for r in one]):.2f} "
            f"({median([r.transport_in_ms for r in one]):.2f} / "
            f"{median([r.transport_out_ms for r in one]):.2f}) | "
            f"{median(speed):.1f} ({min(speed):.1f}-{max(speed):.1f}) | "
            f"{median([r.timing.decode_tok_s / r.daemon_decode_tok_s for r in one]):.4f} | "
            f"{median([r.cpu_ms_per_token('daemon') for r in one]):.1f} | "
            f"{median([r.cpu_ms_per_token('client') for r in one]):.2f} |"
        )
    same = (
        "the same text every run and way"
        if len(digests) == 1
        else f"{len(digests)} different texts (!)"
    )
    checks = {
        f"gRPC decode tok/s within 5% of in-process: {grpc_vs_inproc:.3f}x": (
            grpc_vs_inproc >= 0.95
        ),
        f"HTTP facade costs <= 5% decode tok/s against gRPC: {http_vs_grpc:.3f}x": (
            http_vs_grpc >= 0.95
        ),
        f"HTTP facade adds <= 10 ms TTFT against gRPC, end to end: {ttft_extra:+.1f} ms": (
            ttft_extra <= 10.0
        ),
        "HTTP facade adds <= 10 ms TTFT against gRPC, the transport's own share: "
        f"{transport_extra:+.2f} ms": transport_extra <= 10.0,
    }
    text = (
        f"### 1. Local model, three ways\n\n{args.runs} rounds after a 16-token warm-up each, "
        f"{args.new_tokens} new tokens (greedy, LOCAL_ONLY), completions of {tokens} tokens; "
        f"{same}. Ratios and differences in the checks are medians of per-round pairs. "
        "*TTFT added by the transport* = the client's TTFT minus the pipeline's own (the "
        "daemon's `pipeline.stream` call to its first text), the same run: it leaves out the "
        "prefill, whose time swings with the machine's load. *Client rate / daemon rate* "
        "compares the client's decode rate with the pipeline's in the same run (1.0: the "
        "transport keeps up). CPU = user + system time of the whole process, all threads "
        "(the daemon's includes onnxruntime's threads, which spin while waiting).\n\n"
        + "\n".join(rows)
    )
    return text, checks


def _lag(lag: dict[str, Any], args: argparse.Namespace) -> tuple[str, dict[str, bool]]:
    rows = ["| daemon loop | samples | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for key, label in (
        ("idle", "idle, 2 s (baseline)"),
        ("busy", f"{args.streams} gRPC streams generating"),
    ):
        v = lag[key]
        rows.append(
            f"| {label} | {len(v)} | {_fmt(quantile(v, 0.5), 2)} | "
            f"{_fmt(quantile(v, 0.99), 2)} | {_fmt(max(v, default=float('nan')), 2)} |"
        )
    streams: list[StreamTiming] = lag["streams"]
    busy_p99 = quantile(lag["busy"], 0.99)
    wall = max(t.last for t in streams) - min(t.start for t in streams)
    aggregate = sum(t.tokens for t in streams) / wall
    text = (
        f"### 3. Event-loop lag while generating\n\nA task in the daemon's event loop sleeps 1 ms "
        f"in a loop and records how late it wakes, while {args.streams} gRPC streams "
        f"({args.new_tokens} tokens each, started together) generate; their TTFT p50 "
        f"{median([t.ttft_ms for t in streams]):.0f} ms, per-stream decode p50 "
        f"{median([t.decode_tok_s for t in streams]):.1f} tok/s, aggregate "
        f"{aggregate:.1f} "
        "tok/s.\n\n" + "\n".join(rows)
    )
    return text, {
        f"event-loop lag p99 <= 10 ms while generating: {busy_p99:.2f} ms": busy_p99 <= 10.0
    }


def _cloud(cloud: dict[str, Any], args: argparse.Namespace) -> tuple[str, dict[str, bool]]:
    own = [t.ttft_ms for t in cloud["own"]]
    through = [t.ttft_ms for t in cloud["through"]]
    extra_p50 = median(through) - median(own)
    extra_p95 = quantile(through, 0.95) - quantile(own, 0.95)
    rows = ["| TTFT | runs | p50 ms | p95 ms | min ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for label, v in (
        ("the cloud's own (openai SDK straight to the FakeCloud; baseline)", own),
        ("through handoffd (gRPC `ChatStream`, PREFER_CLOUD)", through),
    ):
        rows.append(
            f"| {label} | {len(v)} | {median(v):.1f} | {quantile(v, 0.95):.1f} | "
            f"{min(v):.1f} | {max(v):.1f} |"
        )
    stamps: list[dict[str, float]] = cloud["stamps"]
    parts = ["| step (median over runs) | ms |", "|---|---:|"]
    if len(stamps) == len(cloud["through"]):
        for record, timing in zip(stamps, cloud["through"], strict=True):
            record["client_start"], record["client_first"] = timing.start, timing.first
        for label, a, b in SEGMENTS:
            values = [(r[b] - r[a]) * 1000.0 for r in stamps if a in r and b in r]
            parts.append(f"| {label} | {_fmt(median(values), 2)} |")
        parts.append(
            f"| **handoffd's extra TTFT over the cloud's own (p50 - p50)** | **{extra_p50:.2f}** |"
        )
        fsync = cloud.get("fsync_ms", [])
        parts.append(
            f"\nFor scale, a bare 4 KiB append + `fsync` on the ledger's file system "
            f"took {_fmt(median(fsync), 2)} ms p50 ({_fmt(quantile(fsync, 0.95), 2)} ms "
            f"p95) over {len(fsync)} tries in the same run."
        )
        breakdown = "\n".join(parts)
    else:
        breakdown = f"(stamps missing: {len(stamps)} records for {len(through)} runs)"
    checks = {
        f"handoff TTFT within 50 ms of the cloud's own, p50: {extra_p50:+.1f} ms": extra_p50 <= 50,
        f"handoff TTFT within 50 ms of the cloud's own, p95: {extra_p95:+.1f} ms": extra_p95 <= 50,
    }
    text = (
        f"### 2. Cloud handoff TTFT\n\nThe FakeCloud waits {args.first_byte_ms:.0f} ms before the "
        f"first byte of every answer, then streams word by word. {args.cloud_runs} runs each, "
        "alternating, after two warm-ups; a ~15-token prompt, default policy (rate limits "
        "raised), one target. Where handoffd's time goes, from timestamps taken in the daemon "
        "(its pipeline, audit ledger, budget ledger and cloud client wrapped on the instance; "
        "CLOCK_MONOTONIC across processes):\n\n" + "\n".join(rows) + "\n\n" + breakdown
    )
    return text, checks


def report(
    results: dict[str, Any], args: argparse.Namespace, context: dict[str, str]
) -> tuple[str, list[str]]:
    """(markdown, the failed checks)."""
    local, local_checks = _local(results["local"], args)
    cloud, cloud_checks = _cloud(results["cloud"], args)
    lag, lag_checks = _lag(results["lag"], args)
    checks = {**local_checks, **cloud_checks, **lag_checks}
    lines = "\n".join(f"- **{verdict(ok)}** {name}" for name, ok in checks.items())
    header = (
        "## Transport and handoff (`bench/transport.py`)\n\n"
        f"{context['date']}, {context['machine']}; load average {context['load']}. "
        f"Model: {context['model']}, CPUExecutionProvider. One handoffd process (gRPC on a Unix "
        "socket, HTTP facade on loopback), one FakeCloud process, the driver as client; times "
        "are client-side `perf_counter`: TTFT from the call to the first non-empty text chunk, "
        "decode tok/s = (completion tokens - 1) / (last text chunk - first).\n\n"
        f"Must-shows:\n\n{lines}\n"
    )
    markdown = "\n\n".join([header, local, cloud, lag])
    return markdown, [name for name, ok in checks.items() if not ok]
