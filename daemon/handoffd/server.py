"""``handoffd``: the daemon's entry point and composition root.

Start-up order: settings → logging → listeners (health NOT_SERVING, so callers can watch) →
model load in a worker thread → pipeline → health SERVING. On SIGTERM/SIGINT: health NOT_SERVING,
running streams get ``server.grace_period_s`` to finish, then are aborted; exit 0.
Exit status 78 (EX_CONFIG) means a configuration error: fix the file, restarting will not help.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from handoffd.engine import LocalEngine
from handoffd.errors import ConfigError, HandoffdError
from handoffd.logsetup import configure_logging, get_logger
from handoffd.pipeline import ChatPipeline
from handoffd.rpc.servicer import HandoffdServicer, ServingState
from handoffd.settings import Settings, load_settings
from handoffd.v1 import handoffd_pb2, handoffd_pb2_grpc

log = get_logger("handoffd.server")

EXIT_CONFIG = 78
SERVICE_NAME = handoffd_pb2.DESCRIPTOR.services_by_name["Handoffd"].full_name


def _prepare_socket(path: Path, mode: int) -> None:
    """Create the socket's directory (0750) and remove a stale socket file.

    A socket file that still accepts connections belongs to a running daemon: refuse to steal it.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise ConfigError(f"{path} exists and is not a socket: remove it or choose server.socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # stale: nobody listens
        return
    finally:
        probe.close()
    raise ConfigError(f"{path}: another handoffd is already listening there; stop it first")


@dataclass
class Daemon:
    settings: Settings
    state: ServingState
    health: health_aio.HealthServicer
    server: grpc.aio.Server
    socket_path: Path
    engine: LocalEngine | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Daemon:
        state = ServingState()
        health = health_aio.HealthServicer()
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.server.max_request_bytes),
                ("grpc.max_send_message_length", 64 << 20),
            ],
            maximum_concurrent_rpcs=settings.server.max_concurrent_streams,
        )
        handoffd_pb2_grpc.add_HandoffdServicer_to_server(HandoffdServicer(state), server)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME),
            server,
        )
        for name in ("", SERVICE_NAME):
            await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

        socket_path = settings.server.resolved_socket()
        mode = int(settings.server.socket_mode, 8)
        _prepare_socket(socket_path, mode)
        old_umask = os.umask(0o777 & ~mode)
        try:
            server.add_insecure_port(f"unix://{socket_path}")
            if settings.server.tcp:
                port = server.add_insecure_port(settings.server.tcp)
                log.info("server.listen_tcp", address=settings.server.tcp, port=port)
            await server.start()
        finally:
            os.umask(old_umask)
        os.chmod(socket_path, mode)
        log.info("server.listen_unix", socket=str(socket_path), mode=settings.server.socket_mode)
        return cls(settings, state, health, server, socket_path)

    async def load(self) -> None:
        """Load the model off the event loop, then start serving."""
        log.info("model.loading", path=str(self.settings.model.resolved_path()))
        engine = await asyncio.to_thread(LocalEngine.load, self.settings.model)
        self.engine = engine
        info = engine.info
        log.info(
            "model.loaded",
            model=info.name,
            layout=info.layout,
            precision=info.precision,
            provider=info.execution_provider,
            context_window=info.context_window,
        )
        self.state.pipeline = ChatPipeline(engine, self.settings)
        self.state.ready = True
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self) -> None:
        log.info("server.stopping", grace_s=self.settings.server.grace_period_s)
        self.state.ready = False
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.server.grace_period_s)
        if self.engine is not None:
            await self.engine.aclose()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log.info("server.stopped")


async def serve(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    daemon = await Daemon.start(settings)
    try:
        load = asyncio.create_task(daemon.load())
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({load, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if load in done:
            load.result()  # raise a load error
            await stopping
        else:
            load.cancel()
    finally:
        await daemon.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="handoffd", description="Local-first LLM daemon with policy-governed cloud handoff."
    )
    parser.add_argument("--config", type=Path, help="YAML config file (default: $HANDOFFD_CONFIG)")
    parser.add_argument("--socket", type=Path, help="override server.socket")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.socket is not None:
            settings = settings.model_copy(
                update={"server": settings.server.model_copy(update={"socket": args.socket})}
            )
    except ConfigError as exc:
        print(f"handoffd: configuration error:\n{exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        log.error("server.config_error", error=exc.message)
        print(f"handoffd: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except HandoffdError as exc:
        log.error("server.failed", error_class=type(exc).__name__, error=exc.message)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - signal handlers take care of it
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
