"""Clients and helpers for ``bench/transport.py``: timed streams over gRPC and the OpenAI SDK,
the child processes' JSON-line protocol, and the statistics.

Every timing is client-side ``time.perf_counter()``: TTFT from just before the request is made
to the first chunk with non-empty text; decode tok/s = (completion tokens - 1) / (time of the
last text chunk - time of the first).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx2
import openai
from handoffd.v1 import handoffd_pb2 as pb
from handoffd.v1 import handoffd_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class StreamTiming:
    start: float
    first: float
    last: float
    tokens: int
    text: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamTiming:
        return cls(d["start"], d["first"], d["last"], int(d["tokens"]), d.get("text", ""))

    @property
    def ttft_ms(self) -> float:
        return (self.first - self.start) * 1000.0 if self.first else float("nan")

    @property
    def decode_tok_s(self) -> float:
        elapsed = self.last - self.first
        return (self.tokens - 1) / elapsed if self.tokens > 1 and elapsed > 0 else 0.0

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class LocalRun:
    """One local generation: the client's timing, the daemon's stamps for it (``enter``,
    ``first_delta``, ``last_delta`` of ``pipeline.stream``) and CPU seconds spent meanwhile by
    the daemon process, by its event-loop thread, and by this (client) process."""

    timing: StreamTiming
    stamps: dict[str, float]
    daemon_cpu_s: float
    loop_cpu_s: float
    client_cpu_s: float

    @property
    def daemon_ttft_ms(self) -> float:
        return (self.stamps["first_delta"] - self.stamps["enter"]) * 1000.0

    @property
    def transport_ttft_ms(self) -> float:
        """What the transport added to TTFT: the client's TTFT minus the pipeline's own."""
        return self.timing.ttft_ms - self.daemon_ttft_ms

    @property
    def transport_in_ms(self) -> float:
        """From the client's call to the daemon's ``pipeline.stream`` call."""
        return (self.stamps["enter"] - self.timing.start) * 1000.0

    @property
    def transport_out_ms(self) -> float:
        """From the pipeline's first text to the client's first text chunk."""
        return (self.timing.first - self.stamps["first_delta"]) * 1000.0

    @property
    def daemon_decode_tok_s(self) -> float:
        elapsed = self.stamps["last_delta"] - self.stamps["first_delta"]
        tokens = self.timing.tokens
        return (tokens - 1) / elapsed if tokens > 1 and elapsed > 0 else 0.0

    def cpu_ms_per_token(self, which: str) -> float:
        """``which``: "daemon" (whole process), "loop" (its event-loop thread) or "client"."""
        seconds = {"daemon": self.daemon_cpu_s, "loop": self.loop_cpu_s}.get(
            which, self.client_cpu_s
        )
        return seconds * 1000.0 / max(1, self.timing.tokens)


def chat_request(text: str, new_tokens: int, prefer: int) -> pb.ChatRequest:
    return pb.ChatRequest(
        messages=[pb.Message(role=pb.ROLE_USER, content=text)],
        params=pb.GenerationParams(max_tokens=new_tokens),
        handoff=prefer,  # type: ignore[arg-type]
    )


async def grpc_stream(
    stub: pb_grpc.HandoffdStub, request: pb.ChatRequest, expect_route: int
) -> StreamTiming:
    """One ChatStream; tokens from the final event's usage. Raises unless the answer came by
    ``expect_route`` (a fallback would time something else)."""
    start = time.perf_counter()
    first = last = 0.0
    tokens, parts = 0, []
    async for event in stub.ChatStream(request):
        kind = event.WhichOneof("event")
        if kind == "delta" and event.delta.text:
            last = time.perf_counter()
            first = first or last
            parts.append(event.delta.text)
        elif kind == "final":
            tokens = event.final.usage.completion_tokens
            if event.final.route != expect_route:
                got, want = pb.Route.Name(event.final.route), pb.Route.Name(expect_route)
                raise RuntimeError(f"answered by {got}, expected {want}")
    return StreamTiming(start, first, last, tokens, "".join(parts))


async def openai_stream(
    client: openai.AsyncOpenAI,
    model: str,
    text: str,
    new_tokens: int,
    extra_body: dict[str, Any] | None = None,
) -> StreamTiming:
    """One streamed chat completion through the openai SDK; tokens from the usage chunk."""
    start = time.perf_counter()
    first = last = 0.0
    tokens, parts = 0, []
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        max_tokens=new_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra_body,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return StreamTiming(start, first, last, tokens, "".join(parts))


async def raw_sse_stream(
    client: httpx2.AsyncClient, token: str, text: str, new_tokens: int
) -> StreamTiming:
    """The same request as :func:`openai_stream` to the HTTP facade, read as bare SSE lines
    with ``json.loads`` (no SDK): what the facade costs without the SDK's per-chunk work."""
    body = {
        "model": "local",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": new_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "handoff": "local",
    }
    start = time.perf_counter()
    first = last = 0.0
    tokens, parts = 0, []
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("POST", "/chat/completions", json=body, headers=headers) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            content = choices[0].get("delta", {}).get("content") if choices else None
            if content:
                last = time.perf_counter()
                first = first or last
                parts.append(content)
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
    return StreamTiming(start, first, last, tokens, "".join(parts))


class Child:
    """A helper process speaking JSON lines: commands on its stdin, replies on its stdout.
    Its stderr goes to ``log`` (shown when it dies)."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
        self._log_handle: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_handle,
            text=True,
            env=env,
        )

    def read(self) -> dict[str, Any]:
        if self.proc.stdout is None:
            raise RuntimeError(f"{self.name}: no stdout pipe")
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited (status {self.proc.poll()}):\n{tail}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    def ask_blocking(self, command: dict[str, Any]) -> dict[str, Any]:
        if self.proc.stdin is None:
            raise RuntimeError(f"{self.name}: no stdin pipe")
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.read()

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.ask_blocking, command)

    def close(self, timeout_s: float = 60.0) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_handle.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (q in [0, 1])."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
