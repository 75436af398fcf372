"""The event-loop lag probe shared by ``bench/transport.py``'s helper processes."""

from __future__ import annotations

import asyncio
import contextlib
import time


class LagProbe:
    """Sleeps 1 ms in a loop in the running event loop and records how late each wake-up is."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags_ms.append(max(0.0, time.perf_counter() - start - 0.001) * 1000.0)

    def start(self) -> None:
        self.lags_ms = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self.lags_ms
