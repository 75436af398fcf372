"""Transport and handoff costs: in-process vs gRPC vs the HTTP facade, cloud handoff TTFT, and
the daemon's event-loop lag while it generates.

    python bench/transport.py [--runs 5] [--new-tokens 128] [--cloud-runs 40] [--model DIR]
                              [--first-byte-ms 100] [--streams 4] [--budget-rows 30000]
                              [--no-waker] [--no-write] [--json PATH] [--strict]

Three processes: a real handoffd (``bench/_transport_daemon.py``: gRPC on a Unix socket, the
HTTP facade on loopback, the default policy with its rate limits raised), the test suite's
FakeCloud (``bench/_transport_cloud.py``: every answer waits ``--first-byte-ms`` before its first
byte, then streams word by word), and this driver, which is the client.

1. Local model, three ways, same daemon and engine, the same ~200-token prompt, greedy,
   ``--new-tokens`` tokens, LOCAL_ONLY: ``pipeline.stream`` inside the daemon process (no
   transport), gRPC ``ChatStream`` (grpc.aio), and ``/v1/chat/completions`` streaming through
   ``openai.AsyncOpenAI`` (and, to tell the facade's cost from the SDK's, the same request read
   as bare SSE lines with httpx2 and ``json.loads``). One 16-token warm-up each, then
   ``--runs`` rounds, one run of each way per round (order rotated), so that load from other
   work on the machine hits them alike.
   During these rounds another process (the FakeCloud's) wakes every 1 ms: on the VM this was
   written on, the daemon decoded ~15% faster while any other process kept the vCPUs from
   idling (onnxruntime's threads do not spin, so each parallel section wakes sleeping threads),
   and the clients' own activity favours the transports over the in-process baseline; the
   waker narrows that bias without removing it. ``--no-waker`` turns it off.
2. Cloud handoff TTFT: the openai SDK straight to the FakeCloud (the cloud's own TTFT) against a
   gRPC ``ChatStream`` PREFER_CLOUD through handoffd (privacy scan, policy, router, redaction,
   ledger intent, rate limits, budget reservation, cloud call), alternating, ``--cloud-runs``
   each after two warm-ups. The daemon stamps each step (its own objects wrapped on the instance)
   so the extra time is broken down. Then the same again (half as many runs) after
   ``--budget-rows`` settled reservations of the current month were written to the budget
   store, as a device that hands off ~1,000 requests a day has after a month.
3. Event-loop lag: a task in the daemon's loop sleeps 1 ms in a loop and records the overshoot,
   idle (baseline) and while ``--streams`` gRPC streams generate at once.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import grpc  # noqa: E402
import httpx2  # noqa: E402
import openai  # noqa: E402
from _transport_clients import (  # noqa: E402
    Child,
    LocalRun,
    StreamTiming,
    chat_request,
    grpc_stream,
    median,
    openai_stream,
    quantile,
    raw_sse_stream,
)
from _transport_report import report  # noqa: E402
from benchdoc import load_average, machine, today, write_section  # noqa: E402
from engine import PROMPT  # noqa: E402
from handoffd.v1 import handoffd_pb2 as pb  # noqa: E402
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc  # noqa: E402

WAYS = ("in-process", "gRPC", "HTTP", "HTTP raw")
CLOUD_PROMPT = "Explain in two sentences what the printing press changed for ordinary people."


def resolve_model(path: str | None) -> tuple[Path, str]:
    """(model folder, note): ``--model``, the built default model, a fresh build of it, or, if
    that build fails, the tiny test model (said so in the report)."""
    from handoffd.modelbuild.default_model import build_default_model, is_built
    from handoffd.settings import default_model_dir

    if path:
        return Path(path), f"`{path}` (given with --model)"
    dest = default_model_dir()
    if is_built(dest):
        return dest, f"the default model (SmolLM2-135M-Instruct, genai int8) at `{dest}`"
    print(f"building the default model into {dest} (minutes, once)", file=sys.stderr)
    try:
        return build_default_model(dest), f"the default model, built now at `{dest}`"
    except Exception as exc:
        from handoffd.modelbuild.tiny import build_tiny_model

        tiny = build_tiny_model("genai")
        return tiny, (
            f"**the tiny random test model** `{tiny}` (building the default model "
            f"failed: {type(exc).__name__}); numbers are NOT the default model's"
        )


async def local_phase(
    daemon: Child,
    stub: pb_grpc.HandoffdStub,
    http: openai.AsyncOpenAI,
    raw: httpx2.AsyncClient,
    token: str,
    args: argparse.Namespace,
) -> dict[str, list[LocalRun]]:
    grpc_request = chat_request(PROMPT, args.new_tokens, pb.LOCAL_ONLY)

    async def run(way: str) -> StreamTiming:
        if way == "in-process":
            reply = await daemon.ask(
                {"cmd": "inprocess", "text": PROMPT, "new_tokens": args.new_tokens}
            )
            return StreamTiming.from_dict(reply)
        if way == "gRPC":
            return await grpc_stream(stub, grpc_request, pb.LOCAL)
        if way == "HTTP raw":
            return await raw_sse_stream(raw, token, PROMPT, args.new_tokens)
        return await openai_stream(
            http, "local", PROMPT, args.new_tokens, extra_body={"handoff": "local"}
        )

    async def measured(way: str) -> LocalRun:
        before = await daemon.ask({"cmd": "cpu"})
        client_cpu = time.process_time()
        timing = await run(way)
        client_cpu = time.process_time() - client_cpu
        after = await daemon.ask({"cmd": "stamps"})
        if len(after["records"]) != 1:
            raise RuntimeError(f"{way}: {len(after['records'])} pipeline calls for one request")
        return LocalRun(
            timing,
            after["records"][0],
            daemon_cpu_s=after["cpu_s"] - before["cpu_s"],
            loop_cpu_s=after["loop_cpu_s"] - before["loop_cpu_s"],
            client_cpu_s=client_cpu,
        )

    warm_up = {"cmd": "inprocess", "text": PROMPT, "new_tokens": 16}
    await daemon.ask(warm_up)
    await grpc_stream(stub, chat_request(PROMPT, 16, pb.LOCAL_ONLY), pb.LOCAL)
    await openai_stream(http, "local", PROMPT, 16, extra_body={"handoff": "local"})
    await raw_sse_stream(raw, token, PROMPT, 16)
    await daemon.ask({"cmd": "stamps"})
    results: dict[str, list[LocalRun]] = {way: [] for way in WAYS}
    for round_ in range(args.runs):
        shift = round_ % len(WAYS)
        order = WAYS[shift:] + WAYS[:shift]
        for way in order:
            one = await measured(way)
            results[way].append(one)
            print(
                f"[local] round {round_ + 1}/{args.runs} {way}: ttft {one.timing.ttft_ms:.0f} "
                f"ms (transport in {one.transport_in_ms:.1f} + out {one.transport_out_ms:.1f}), "
                f"{one.timing.decode_tok_s:.1f} tok/s (daemon {one.daemon_decode_tok_s:.1f}), "
                f"{one.timing.tokens} tokens",
                file=sys.stderr,
            )
    return results


async def lag_phase(
    daemon: Child, control: Child, stub: pb_grpc.HandoffdStub, args: argparse.Namespace
) -> dict[str, Any]:
    """The daemon's loop lag, idle and while ``--streams`` streams generate; the same probe in
    the (idle) FakeCloud process at the same time is the control for the machine's own delays."""
    probes = (daemon, control)
    await asyncio.gather(*(p.ask({"cmd": "probe_start"}) for p in probes))
    await asyncio.sleep(2.0)
    idle, control_idle = (
        r["lags_ms"] for r in await asyncio.gather(*(p.ask({"cmd": "probe_stop"}) for p in probes))
    )
    request = chat_request(PROMPT, args.new_tokens, pb.LOCAL_ONLY)
    await asyncio.gather(*(p.ask({"cmd": "probe_start"}) for p in probes))
    streams = await asyncio.gather(
        *(grpc_stream(stub, request, pb.LOCAL) for _ in range(args.streams))
    )
    busy, control_busy = (
        r["lags_ms"] for r in await asyncio.gather(*(p.ask({"cmd": "probe_stop"}) for p in probes))
    )
    print(
        f"[lag] {len(busy)} samples while generating, p99 {quantile(busy, 0.99):.2f} ms "
        f"(control process p99 {quantile(control_busy, 0.99):.2f} ms)",
        file=sys.stderr,
    )
    return {
        "idle": idle,
        "busy": busy,
        "control_idle": control_idle,
        "control_busy": control_busy,
        "streams": list(streams),
    }


async def cloud_phase(
    daemon: Child,
    stub: pb_grpc.HandoffdStub,
    cloud: openai.AsyncOpenAI,
    args: argparse.Namespace,
) -> dict[str, Any]:
    request = chat_request(CLOUD_PROMPT, args.new_tokens, pb.PREFER_CLOUD)

    async def direct() -> StreamTiming:
        return await openai_stream(cloud, "fake-model", CLOUD_PROMPT, args.new_tokens)

    async def via_handoffd() -> StreamTiming:
        return await grpc_stream(stub, request, pb.CLOUD)

    async def rounds(count: int, label: str) -> dict[str, Any]:
        await daemon.ask({"cmd": "stamps"})  # forget earlier requests' stamps
        own: list[StreamTiming] = []
        through: list[StreamTiming] = []
        for round_ in range(count):
            pair = (direct, via_handoffd) if round_ % 2 == 0 else (via_handoffd, direct)
            for fn in pair:
                (own if fn is direct else through).append(await fn())
        stamps = (await daemon.ask({"cmd": "stamps"}))["records"]
        print(
            f"[cloud{label}] own TTFT p50 {median([t.ttft_ms for t in own]):.1f} ms, through "
            f"handoffd p50 {median([t.ttft_ms for t in through]):.1f} ms",
            file=sys.stderr,
        )
        return {"own": own, "through": through, "stamps": stamps}

    for _ in range(2):
        await direct()
        await via_handoffd()
    result = await rounds(args.cloud_runs, "")
    if args.budget_rows > 0:
        await daemon.ask({"cmd": "fill_budget", "rows": args.budget_rows})
        result["history"] = await rounds(max(5, args.cloud_runs // 2), ", month of history")
    return result


async def drive(args: argparse.Namespace, model: Path, tmp: Path) -> dict[str, Any]:
    cloud_child = Child(
        "fakecloud",
        [str(BENCH / "_transport_cloud.py"), "--first-byte-ms", str(args.first_byte_ms)],
        tmp / "fakecloud.log",
    )
    daemon: Child | None = None
    try:
        cloud_url = (await asyncio.to_thread(cloud_child.read))["url"]
        (tmp / "state").mkdir()
        daemon = Child(
            "handoffd",
            [
                str(BENCH / "_transport_daemon.py"),
                "--model",
                str(model),
                "--cloud-url",
                cloud_url,
                "--state",
                str(tmp / "state"),
                "--socket",
                str(tmp / "h.sock"),
            ],
            tmp / "handoffd.log",
        )
        ready = await asyncio.to_thread(daemon.read)
        print(
            f"[setup] daemon ready on {ready['socket']} and port {ready['http_port']}",
            file=sys.stderr,
        )
        base_url = f"http://127.0.0.1:{ready['http_port']}/v1"
        http = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=ready["token"],
            max_retries=0,
        )
        cloud = openai.AsyncOpenAI(base_url=cloud_url, api_key="unused", max_retries=0)
        async with grpc.aio.insecure_channel(f"unix://{ready['socket']}") as channel:
            stub = pb_grpc.HandoffdStub(channel)
            if args.waker:
                await cloud_child.ask({"cmd": "probe_start"})
            async with httpx2.AsyncClient(base_url=base_url, timeout=600) as raw:
                local = await local_phase(daemon, stub, http, raw, ready["token"], args)
            if args.waker:
                await cloud_child.ask({"cmd": "probe_stop"})
            lag = await lag_phase(daemon, cloud_child, stub, args)
            handoff = await cloud_phase(daemon, stub, cloud, args)
            handoff["fsync_ms"] = await daemon.ask({"cmd": "fsync_probe"})
        await http.close()
        await cloud.close()
        return {"local": local, "lag": lag, "cloud": handoff}
    finally:
        if daemon is not None:
            daemon.close()
        cloud_child.close()


def _raw(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--cloud-runs", type=int, default=40)
    parser.add_argument("--first-byte-ms", type=float, default=100.0)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument(
        "--budget-rows",
        type=int,
        default=30_000,
        help="then repeat the handoff runs with this many settled reservations of the current "
        "month in the budget store (0: skip)",
    )
    parser.add_argument(
        "--no-waker",
        dest="waker",
        action="store_false",
        help="run the local rounds without the 1 ms waker process (see the module docstring)",
    )
    parser.add_argument("--model", help="model folder (default: the built default model)")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a must-show fails")
    args = parser.parse_args()
    model, model_note = resolve_model(args.model)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="hfd-tb-", dir="/tmp") as tmp:
        results = asyncio.run(drive(args, model, Path(tmp)))
    context = {
        "date": today(),
        "machine": machine(),
        "model": model_note,
        "load": f"{load_before} before, {load_average()} after",
    }
    if args.json is not None:
        args.json.write_text(json.dumps(results, default=_raw, indent=1), encoding="utf-8")
    markdown, failures = report(results, args, context)
    print(markdown)
    if not args.no_write:
        write_section("transport", markdown)
    return 1 if failures and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
