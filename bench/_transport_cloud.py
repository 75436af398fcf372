"""The cloud side of ``bench/transport.py``: the test suite's FakeCloud in its own process.

    python bench/_transport_cloud.py --first-byte-ms 100

Every chat request waits ``--first-byte-ms`` before the first byte of its answer
(:class:`tests.fakecloud.SlowFirstByte`), then streams :data:`REPLY` word by word. Writes
``{"url": ...}`` on stdout once listening, and stops when stdin closes.

It doubles as the control for the daemon's event-loop lag: ``{"cmd": "probe_start"}`` /
``{"cmd": "probe_stop"}`` run the same 1 ms sleep loop in this (otherwise idle) process, so the
machine's own scheduling delays can be told apart from the daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _lagprobe import LagProbe  # noqa: E402

from tests.fakecloud import FakeCloud, SlowFirstByte  # noqa: E402

REPLY = (
    "Printing with movable type began in China and Korea, and Gutenberg's press made books "
    "cheap in Europe: literacy rose, and scientists could share exact copies of their work."
)


async def serve(first_byte_s: float) -> None:
    async with FakeCloud(reply=REPLY) as cloud:
        cloud.inject(SlowFirstByte(first_byte_s), times=None)
        print(json.dumps({"url": cloud.url}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        probe = LagProbe()
        while line := await reader.readline():  # until the driver closes stdin
            cmd = json.loads(line)["cmd"]
            if cmd == "probe_start":
                probe.start()
                print(json.dumps({"ok": True}), flush=True)
            elif cmd == "probe_stop":
                print(json.dumps({"lags_ms": await probe.stop()}), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first-byte-ms", type=float, default=100.0)
    args = parser.parse_args()
    asyncio.run(serve(args.first_byte_ms / 1000.0))


if __name__ == "__main__":
    main()
