"""The daemon side of ``bench/transport.py``: a real handoffd in its own process.

    python bench/_transport_daemon.py --model DIR --cloud-url URL --state DIR --socket PATH

Starts :class:`handoffd.server.Daemon` (gRPC on a Unix socket, the HTTP facade on 127.0.0.1:0,
one cloud target ``cloud`` at ``--cloud-url``, the default policy with its rate limits raised
so that a benchmark's back-to-back requests are not refused), then answers JSON commands, one
per line on stdin, with one JSON line on the protocol pipe (the original stdout; everything
else the process prints goes to stderr):

* ``{"cmd": "inprocess", "text": ..., "new_tokens": N}``: one LOCAL_ONLY request through
  ``pipeline.stream`` in this process (no transport), timed like a client would;
* ``{"cmd": "probe_start"}`` / ``{"cmd": "probe_stop"}``: start a task in the daemon's event
  loop that sleeps 1 ms in a loop and records each overshoot; stop it and return the overshoots;
* ``{"cmd": "stamps"}``: the per-request timestamps recorded since the last call (see
  :class:`RequestStamps`), then forget them; with the process's CPU seconds;
* ``{"cmd": "cpu"}``: CPU seconds of the process and of its event-loop thread;
* ``{"cmd": "fill_budget", "rows": N}``: write N settled reservations of this month into the
  budget store (a month of history);
* ``{"cmd": "fsync_probe"}``: ms of 20 durable 4 KiB writes next to the ledger, two ways.

The first line written is ``{"ready": true, "socket": ..., "http_port": ..., "token": ...}``
(the token is an app token for the HTTP facade; it goes only down the pipe to the driver).
Timestamps are ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux, so they compare across
processes on one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import datetime as dt
import json
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import yaml
from _lagprobe import LagProbe

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"


def bench_policy(dest: Path) -> Path:
    """The default policy with rate limits raised (budgets, privacy and routing unchanged)."""
    policy = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    for limit in policy.get("rate_limits", []):
        for key in ("requests_per_minute", "tokens_per_minute"):
            if key in limit:
                limit[key] = 10_000_000
        if "max_concurrent" in limit:
            limit["max_concurrent"] = 64
    policy.pop("tests", None)
    dest.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    return dest


class RequestStamps:
    """Timestamps of each request's steps, taken by wrapping the daemon's own objects (the
    pipeline, the audit ledger, the budget ledger and the cloud client) on the instance. The
    record of the request being served is found through a context variable, so concurrent
    requests keep their own."""

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []
        self._current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
            "bench_stamps", default=None
        )

    def _now(self, key: str) -> None:
        record = self._current.get()
        if record is not None and key not in record:
            record[key] = time.perf_counter()

    def install(self, daemon: Any) -> None:
        from handoffd.domain import DeltaEvent

        pipeline = daemon.state.pipeline
        components = daemon.components
        stream = pipeline.stream

        async def timed_stream(request: Any) -> AsyncIterator[Any]:
            record = {"enter": time.perf_counter()}
            self.records.append(record)
            self._current.set(record)
            async for event in stream(request):
                if isinstance(event, DeltaEvent) and event.text:
                    now = time.perf_counter()
                    record.setdefault("first_delta", now)
                    record["last_delta"] = now
                yield event

        setattr(pipeline, "stream", timed_stream)  # noqa: B010 - instrumenting an instance
        self._wrap_call(components.ledger, "record_intent", "intent")
        if components.budget is not None:
            self._wrap_call(components.budget, "reserve", "reserve")
        if components.cloud is not None:
            cloud = components.cloud
            stream_chat = cloud.stream_chat

            async def timed_stream_chat(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                self._now("cloud_call")
                async for delta in stream_chat(*args, **kwargs):
                    if getattr(delta, "text", ""):
                        self._now("cloud_first")
                    yield delta

            setattr(cloud, "stream_chat", timed_stream_chat)  # noqa: B010

    def _wrap_call(self, owner: Any, name: str, label: str) -> None:
        method: Callable[..., Any] = getattr(owner, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            self._now(f"{label}_start")
            try:
                return await method(*args, **kwargs)
            finally:
                self._now(f"{label}_end")

        setattr(owner, name, timed)

    def take(self) -> list[dict[str, float]]:
        records, self.records = self.records, []
        return records


def cpu_now() -> dict[str, float]:
    """CPU seconds (user + system) of this whole process (every thread: onnxruntime's too), and
    of the calling thread, the event loop's: the pipeline's and the transports' Python work."""
    times = os.times()
    return {"cpu_s": times.user + times.system, "loop_cpu_s": time.thread_time()}


def fill_budget(path: Path, rows: int) -> int:
    """Write ``rows`` settled reservations (app ``default``, 10 nano-USD each, far below every
    budget), spread evenly over the current UTC month so far, into the budget store at
    ``path`` through a second connection (WAL: the daemon's own connection stays open)."""
    now = time.time()
    month_start = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    step = (now - month_start.timestamp()) / (rows + 1)
    db = sqlite3.connect(path, timeout=30)
    try:
        with db:
            db.executemany(
                "INSERT INTO budget_reservations (id, app, target, request_id, created_at, "
                "expires_at, reserved_nanos, settled_nanos, state) "
                "VALUES (?, 'default', 'cloud', '', ?, ?, 1000, 10, 'settled')",
                ((uuid.uuid4().hex, now - (i + 1) * step, now) for i in range(rows)),
            )
    finally:
        db.close()
    return rows


def fsync_probe(directory: Path, count: int) -> dict[str, list[float]]:
    """ms of ``count`` durable 4 KiB writes to a file in ``directory`` (the ledger's file
    system), two ways: appending + ``fsync`` (the file grows: its size is journaled too) and
    overwriting a block in place + ``fdatasync`` (what SQLite does to a WAL being reused)."""
    path = directory / "fsync-probe.bin"
    result: dict[str, list[float]] = {"append_fsync": [], "overwrite_fdatasync": []}
    with path.open("wb") as handle:
        for _ in range(count):
            start = time.perf_counter()
            handle.write(os.urandom(4096))
            handle.flush()
            os.fsync(handle.fileno())
            result["append_fsync"].append((time.perf_counter() - start) * 1000.0)
    fd = os.open(path, os.O_WRONLY)
    try:
        for i in range(count):
            start = time.perf_counter()
            os.pwrite(fd, os.urandom(4096), 4096 * i)
            os.fdatasync(fd)
            result["overwrite_fdatasync"].append((time.perf_counter() - start) * 1000.0)
    finally:
        os.close(fd)
    path.unlink()
    return result


async def inprocess_run(pipeline: Any, text: str, new_tokens: int) -> dict[str, Any]:
    """One LOCAL_ONLY request straight through ``pipeline.stream``, timed client-side."""
    from handoffd.domain import (
        ChatRequest,
        DeltaEvent,
        FinalEvent,
        GenerationParams,
        HandoffPreference,
        Message,
        Role,
    )
    from handoffd.schema.auth import DEFAULT_APP

    request = ChatRequest(
        messages=(Message(Role.USER, text),),
        params=GenerationParams(max_tokens=new_tokens),
        preference=HandoffPreference.LOCAL_ONLY,
        app=DEFAULT_APP,
    )
    start = time.perf_counter()
    first = last = 0.0
    tokens, parts = 0, []
    async for event in pipeline.stream(request):
        if isinstance(event, DeltaEvent) and event.text:
            last = time.perf_counter()
            first = first or last
            parts.append(event.text)
        elif isinstance(event, FinalEvent):
            tokens = event.result.usage.completion_tokens
    return {"start": start, "first": first, "last": last, "tokens": tokens, "text": "".join(parts)}


async def serve(args: argparse.Namespace, out: IO[str]) -> None:
    from handoffd.auth import TokenStore, default_token_file
    from handoffd.domain import CallerRole
    from handoffd.schema.cloud import CloudSettings, CloudTargetSettings
    from handoffd.schema.policy import PolicySettings
    from handoffd.server import Daemon
    from handoffd.settings import HttpSettings, ModelSettings, ServerSettings, Settings, state_dir

    def reply(payload: dict[str, Any]) -> None:
        out.write(json.dumps(payload) + "\n")
        out.flush()

    token = TokenStore(default_token_file(state_dir())).add("bench", CallerRole.APP)
    target = CloudTargetSettings(
        base_url=args.cloud_url,
        model="fake-model",
        no_api_key=True,
        price_usd_per_mtok={"input": 1.0, "output": 2.0},
        max_retries=0,
    )
    settings = Settings(
        model=ModelSettings(path=Path(args.model), providers=("CPUExecutionProvider",)),
        server=ServerSettings(socket=Path(args.socket)),
        http=HttpSettings(listen="127.0.0.1:0"),
        cloud=CloudSettings(targets={"cloud": target}),
        policy=PolicySettings(files=(bench_policy(Path(args.state) / "bench-policy.yaml"),)),
    )
    daemon = await Daemon.start(settings)
    try:
        await daemon.load()
        stamps = RequestStamps()
        stamps.install(daemon)
        probe = LagProbe()
        if daemon.http is None:
            raise RuntimeError("the HTTP facade did not start")
        reply(
            {
                "ready": True,
                "socket": str(daemon.socket_path),
                "http_port": daemon.http.port,
                "token": token,
            }
        )
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = json.loads(line)
            cmd = command["cmd"]
            if cmd == "inprocess":
                pipeline = daemon.state.require_pipeline()
                reply(await inprocess_run(pipeline, command["text"], command["new_tokens"]))
            elif cmd == "probe_start":
                probe.start()
                reply({"ok": True})
            elif cmd == "probe_stop":
                reply({"lags_ms": await probe.stop()})
            elif cmd == "stamps":
                reply({"records": stamps.take(), **cpu_now()})
            elif cmd == "cpu":
                reply(cpu_now())
            elif cmd == "fill_budget":
                if daemon.components.budget is None:
                    raise RuntimeError("no budget store: is a cloud target configured?")
                path = daemon.components.budget.path
                reply({"rows": await asyncio.to_thread(fill_budget, path, command["rows"])})
            elif cmd == "fsync_probe":
                reply(await asyncio.to_thread(fsync_probe, Path(args.state), 20))
            else:
                reply({"error": f"unknown command {cmd!r}"})
    finally:
        await daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--cloud-url", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--socket", required=True)
    args = parser.parse_args()
    os.environ["STATE_DIRECTORY"] = args.state
    # the protocol keeps the real stdout; anything else printed (logs) goes to stderr
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from handoffd.logsetup import configure_logging

    configure_logging("warning", "json")
    asyncio.run(serve(args, out))


if __name__ == "__main__":
    main()
