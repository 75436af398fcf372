"""Contenders of bench/engine.py that run in the project's venv (one process each).

    python bench/_engine_workers.py handoffd|grpc|naive --model DIR

Each loads its model, prints ``{"ready": true}`` and answers JSON lines on stdin the way
``bench/_ref_worker.py`` does (``{"text", "ids", "new_tokens"}`` -> one timed greedy generation;
``{"cmd": "rss"}`` -> peak RSS, and for handoffd the event-loop lag seen while generating).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ref_worker import _timing  # the same reply shape as the reference workers
from benchdoc import peak_rss_mb

#: the lag probe's sleep: 200 wake-ups a second, about what a daemon streaming tokens sees (a
#: 1 ms probe wakes the loop so often that it slows the generation it watches on 2 cores)
PROBE_S = 0.005


def _lag_probe(lags: list[float], stop: asyncio.Event) -> asyncio.Task[None]:
    async def probe() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            lags.append(max(0.0, time.perf_counter() - t - PROBE_S) * 1000.0)

    return asyncio.create_task(probe())


async def _serve_handoffd(model: Path) -> None:
    from handoffd.domain import GenerationParams, Message, Role
    from handoffd.engine import LocalEngine
    from handoffd.settings import ModelSettings

    engine = await asyncio.to_thread(
        LocalEngine.load, ModelSettings(path=model, providers=("CPUExecutionProvider",))
    )
    _reply({"ready": True})
    lags: list[float] = []
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("cmd") == "rss":
            _reply({"peak_rss_mb": peak_rss_mb(),
                    "lag_p99_ms": _quantile(lags, 0.99), "lag_max_ms": max(lags, default=0.0)})
            continue
        messages = [Message(Role.USER, request["text"])]
        params = GenerationParams(max_tokens=int(request["new_tokens"]))
        stop = asyncio.Event()
        probe = _lag_probe(lags, stop)
        start = time.perf_counter()
        first, out = 0.0, []
        async for chunk in engine.generate(messages, params):
            if not first:
                first = time.perf_counter()
            out.append(chunk.token_id)
        end = time.perf_counter()
        stop.set()
        await probe
        _reply(_timing(start, first, end, out))
    await engine.aclose()


def _serve_grpc(model: Path) -> None:
    """A real ``handoffd`` daemon process on a temp Unix socket, driven by a gRPC client."""
    with tempfile.TemporaryDirectory(prefix="handoffd-enginebench-", dir="/tmp") as tmp:
        socket = Path(tmp) / "h.sock"
        config = Path(tmp) / "handoffd.yaml"
        config.write_text(
            f"model:\n  path: {model}\n  providers: [CPUExecutionProvider]\n"
            f"server:\n  socket: {socket}\nlog:\n  level: warning\n  format: json\n"
        )
        daemon = subprocess.Popen(  # its log goes to this worker's stderr (the bench's log)
            [str(Path(sys.executable).parent / "handoffd"), "--config", str(config)],
            stdout=sys.stderr, stderr=sys.stderr,
        )
        try:
            asyncio.run(_grpc_client(socket, daemon))
        finally:
            daemon.terminate()
            daemon.wait(30)


async def _grpc_client(socket: Path, daemon: subprocess.Popen[bytes]) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from handoffd.v1 import handoffd_pb2 as pb
    from handoffd.v1 import handoffd_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            if daemon.poll() is not None:
                raise SystemExit(f"the handoffd daemon exited with {daemon.returncode} at start")
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
        stub = pb_grpc.HandoffdStub(channel)
        _reply({"ready": True})
        for line in sys.stdin:  # the client has nothing in flight while it waits here
            request = json.loads(line)
            if request.get("cmd") == "rss":
                _reply({"peak_rss_mb": peak_rss_mb(daemon.pid)})
                continue
            chat = pb.ChatRequest(
                messages=[pb.Message(role=pb.ROLE_USER, content=request["text"])],
                params=pb.GenerationParams(max_tokens=int(request["new_tokens"])),
                handoff=pb.LOCAL_ONLY,
            )
            start = time.perf_counter()
            first = last = 0.0
            tokens = 0
            async for event in stub.ChatStream(chat):
                kind = event.WhichOneof("event")
                if kind == "delta":
                    last = time.perf_counter()
                    first = first or last
                elif kind == "final":
                    tokens = event.final.usage.completion_tokens
            _reply(_timing(start, first, last, [0] * tokens))


def _serve_naive(model: Path) -> None:
    """Plain InferenceSession.run, KV fed back as numpy (the graph concatenates)."""
    import numpy as np
    import onnxruntime as ort
    from handoffd.engine.folder import read_model_folder

    spec = read_model_folder(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        str(spec.onnx_path), options, providers=["CPUExecutionProvider"]
    )
    names = {i.name for i in session.get_inputs()}
    past = [n for i in range(spec.num_layers)
            for n in (spec.past_key_name % i, spec.past_value_name % i)]
    outputs = ["logits"] + [n for i in range(spec.num_layers)
                            for n in (spec.present_key_name % i, spec.present_value_name % i)]
    empty = np.zeros((1, spec.num_kv_heads, 0, spec.head_size), dtype=np.float32)
    _reply({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("cmd") == "rss":
            _reply({"peak_rss_mb": peak_rss_mb()})
            continue
        ids, new_tokens = request["ids"], int(request["new_tokens"])
        start = time.perf_counter()
        feeds: dict[str, Any] = {n: empty for n in past}
        step = np.array([ids], dtype=np.int64)
        length, out, first = 0, [], 0.0
        for _ in range(new_tokens):
            count = step.shape[1]
            feeds["input_ids"] = step
            feeds["attention_mask"] = np.ones((1, length + count), dtype=np.int64)
            if "position_ids" in names:
                feeds["position_ids"] = np.arange(length, length + count, dtype=np.int64)[None]
            results = session.run(outputs, feeds)
            length += count
            token = int(np.argmax(results[0][0, -1]))
            out.append(token)
            first = first or time.perf_counter()
            feeds.update(zip(past, results[1:], strict=True))
            step = np.array([[token]], dtype=np.int64)
        _reply(_timing(start, first, time.perf_counter(), out))


def _quiet_logs() -> None:
    """Workers answer on stdout: send handoffd's log lines to stderr."""
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def _reply(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["handoffd", "grpc", "naive"])
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    _quiet_logs()
    model = Path(args.model)
    if args.kind == "handoffd":
        asyncio.run(_serve_handoffd(model))
    elif args.kind == "grpc":
        _serve_grpc(model)
    else:
        _serve_naive(model)


if __name__ == "__main__":
    main()
