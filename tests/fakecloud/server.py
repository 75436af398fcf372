"""FakeCloud: the fake OpenAI-compatible server on 127.0.0.1, in a test's loop or a thread.

    async with FakeCloud(reply="Paris.") as cloud:      # in an async test
        client = AsyncOpenAI(base_url=cloud.url, api_key="x")
        ...
        assert cloud.chat_bodies()[0]["messages"][-1]["content"] == "..."

    with FakeCloud.start_in_thread(api_key="sk-test") as cloud:   # for a daemon subprocess
        ...

Faults are queued with :meth:`FakeCloud.inject` and consumed by chat requests in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

import uvicorn

from tests.fakecloud.app import (
    ECHO,
    FakeCloudApp,
    FakeCloudState,
    RecordedRequest,
    Reply,
    _Scheduled,
)
from tests.fakecloud.faults import Fault

__all__ = ["ECHO", "FakeCloud"]


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers (the test runner keeps Ctrl-C), stopping as soon as
    :meth:`request_exit` is called rather than at its next 100 ms poll."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter += 10  # on_tick refreshes the Date header when counter % 10 == 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 1.0)


class FakeCloud:
    def __init__(
        self,
        *,
        reply: Reply = "Hello from the fake cloud.",
        api_key: str | None = None,
        model: str = "fake-model",
        models: Sequence[str] | None = None,
        cached_tokens: int = 0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        """``api_key``: when set, requests without ``Authorization: Bearer <key>`` get 401.
        ``models``: the model ids that exist (others get 404); default: any."""
        self.state = FakeCloudState(
            reply=reply,
            api_key=api_key,
            model=model,
            models=tuple(models) if models is not None else None,
            cached_tokens=cached_tokens,
            chunk_delay_s=chunk_delay_s,
        )
        self._app = FakeCloudApp(self.state)
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- where it is -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeCloud is not running: use 'async with FakeCloud()'")
        return self._port

    @property
    def url(self) -> str:
        """Base URL for an OpenAI client, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -----------------------------------------------------------------------------

    def set_reply(self, reply: Reply) -> None:
        """A fixed text, :data:`ECHO` (the last user message), or ``fn(request_body) -> str``."""
        with self.state.lock:
            self.state.reply = reply

    def inject(
        self,
        fault: Fault,
        *,
        times: int | None = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Apply ``fault`` to the next ``times`` chat requests (``None``: all, until
        :meth:`clear_faults`), or only to those whose JSON body ``when`` accepts. Faults
        queued earlier are used first."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        with self.state.lock:
            self.state.faults.append(_Scheduled(fault, times, when))

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def reset(self) -> None:
        """Forget recorded requests and queued faults."""
        with self.state.lock:
            self.state.faults.clear()
            self.state.requests.clear()

    # -- what it received ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (including refused ones)."""
        with self.state.lock:
            return list(self.state.requests)

    def chat_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of every chat completion request, in order."""
        return [
            r.body
            for r in self.requests
            if r.path.endswith("/chat/completions") and r.body is not None
        ]

    async def wait_for_chat_requests(self, count: int, timeout_s: float = 10.0) -> None:
        """Wait until at least ``count`` chat requests have arrived (TimeoutError after
        ``timeout_s``). Polls: the server may be filling the record from another thread."""
        async with asyncio.timeout(timeout_s):
            while len(self.chat_bodies()) < count:  # noqa: ASYNC110 - written by another thread
                await asyncio.sleep(0.01)

    def all_text_sent(self) -> str:
        """Every byte of every request body, decoded: for "X never left the device" checks."""
        return "\n".join(r.raw_body.decode("utf-8", "replace") for r in self.requests)

    # -- running in the caller's loop -----------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FakeCloud is already running")
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says
        # TCP, and without it every keep-alive response waits ~40 ms (Nagle + delayed ACK)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        self._app.stopping = asyncio.Event()
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise RuntimeError("FakeCloud's server exited during startup")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        if self._app.stopping is not None:
            self._app.stopping.set()
        self._server.request_exit()
        await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> FakeCloud:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- running in a thread of its own ---------------------------------------------------------

    @classmethod
    def start_in_thread(cls, **kwargs: Any) -> FakeCloud:
        """Start a FakeCloud with its own loop in a daemon thread; stop it with
        :meth:`stop_thread` (or use it as a ``with`` block)."""
        cloud = cls(**kwargs)
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            cloud._thread_loop = asyncio.get_running_loop()
            try:
                await cloud.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                raise
            ready.set()
            assert cloud._task is not None
            await cloud._task

        cloud._thread = threading.Thread(
            target=lambda: asyncio.run(main()), name="fakecloud", daemon=True
        )
        cloud._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("FakeCloud did not start within 30 s")
        if failure:
            raise RuntimeError("FakeCloud failed to start") from failure[0]
        return cloud

    def stop_thread(self) -> None:
        if self._thread is None or self._thread_loop is None:
            return
        server, stopping = self._server, self._app.stopping

        def _signal() -> None:
            if stopping is not None:
                stopping.set()
            if server is not None:
                server.request_exit()

        self._thread_loop.call_soon_threadsafe(_signal)
        self._thread.join(timeout=30)
        self._thread = None
        self._thread_loop = None
        self._server = None
        self._task = None

    def __enter__(self) -> FakeCloud:
        if self._thread is None:
            raise RuntimeError("use FakeCloud.start_in_thread() for a 'with' block")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()
