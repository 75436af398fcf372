"""Run the HTTP facade inside the daemon's event loop (uvicorn, no signal handlers of its own)."""

from __future__ import annotations

import socket

import uvicorn
from starlette.applications import Starlette

from handoffd.logsetup import get_logger

log = get_logger(__name__)


class HttpServer:
    """uvicorn's server driven by the daemon: the daemon owns signals and shutdown order."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        self._host = host
        self._port = port
        self.port = port

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (else ~40 ms stalls)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.set_inheritable(True)
        self._socket = sock
        await self._server.startup(sockets=[sock])
        self.port = sock.getsockname()[1]
        log.info("http.listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        self._server.should_exit = True
        await self._server.shutdown(sockets=[self._socket])
        self._socket.close()
