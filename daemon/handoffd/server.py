"""``handoffd``: the daemon's entry point and composition root.

Start-up order: settings → logging → systemd watchdog → components (ledger, policy, cloud,
budgets) → listeners (main socket, per-app sockets, optional TCP and HTTP; health NOT_SERVING so
callers can watch) → model load in a worker thread → pipeline → health SERVING, READY=1.
SIGHUP reloads the policy (the files are also watched). On SIGTERM/SIGINT: health NOT_SERVING,
running streams get ``server.grace_period_s`` to finish, then are aborted; exit 0.
Exit status 78 (EX_CONFIG) means a configuration error: fix the file, restarting will not help.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from handoffd.assembly import Components
from handoffd.auth import (
    Authenticator,
    ListenerIdentity,
    TokenStore,
    app_socket_path,
    default_token_file,
    prepare_app_socket,
    remove_app_socket,
    remove_stale_socket,
    secure_app_socket,
)
from handoffd.engine import LocalEngine
from handoffd.errors import ConfigError, HandoffdError
from handoffd.http.app import create_app
from handoffd.http.serve import HttpServer
from handoffd.logsetup import configure_logging, get_logger
from handoffd.metrics import Metrics, MetricsServer
from handoffd.rpc.audit_servicer import AuditServicer
from handoffd.rpc.auth_interceptor import AuthInterceptor, caller_from_context
from handoffd.rpc.servicer import HandoffdServicer, ServingState
from handoffd.schema.metrics import parse_loopback_listen
from handoffd.service import EX_CONFIG, ServiceLifecycle
from handoffd.settings import Settings, load_settings, runtime_dir, state_dir
from handoffd.v1 import audit_pb2, audit_pb2_grpc, handoffd_pb2, handoffd_pb2_grpc

log = get_logger("handoffd.server")

SERVICE_NAME = handoffd_pb2.DESCRIPTOR.services_by_name["Handoffd"].full_name
AUDIT_SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["Audit"].full_name
HEALTH_NAMES = ("", SERVICE_NAME)


def _lock_state_dir(path: Path) -> IO[bytes]:
    """Hold an exclusive lock on the state directory for the daemon's lifetime: two daemons
    must never write the same ledger and budget store."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = (path / "handoffd.lock").open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise ConfigError(
            f"{path} is in use by another handoffd (its lock is held): stop it first, or give "
            "this one its own state directory (STATE_DIRECTORY)"
        ) from None
    return lock


def _prepare_socket(path: Path) -> None:
    """Create the socket's directory (0750) and remove a stale socket file; a live socket
    belongs to a running daemon and is never stolen."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    remove_stale_socket(path, owner="another handoffd")


@dataclass
class Daemon:
    settings: Settings
    state: ServingState
    health: health_aio.HealthServicer
    components: Components
    auth: Authenticator
    metrics: Metrics
    service: ServiceLifecycle
    socket_path: Path
    state_lock: IO[bytes] | None = None
    servers: list[grpc.aio.Server] = field(default_factory=list)
    app_sockets: list[Path] = field(default_factory=list)
    http: HttpServer | None = None
    metrics_server: MetricsServer | None = None
    tcp_port: int | None = None
    engine: LocalEngine | None = None
    #: set once the main socket is bound: only then is it ours to remove
    bound_main_socket: bool = False
    _loading: asyncio.Future[LocalEngine] | None = None
    _gauges: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Daemon:
        """Open the components and start listening (health NOT_SERVING until :meth:`load`)."""
        socket_path = settings.server.resolved_socket()
        # refuse before touching any state: a second daemon must not open the first one's
        # ledger or budgets, nor remove its socket on the way out
        _prepare_socket(socket_path)
        state_lock = _lock_state_dir(state_dir())
        holder: list[Daemon] = []
        # the watchdog stops pinging if the engine's worker thread died: systemd restarts us
        service = ServiceLifecycle.from_env(
            healthy=lambda: not holder or holder[0].engine is None or holder[0].engine.alive
        )
        await service.start()
        try:
            components = await Components.open(settings)
        except BaseException:
            state_lock.close()
            await service.close()
            raise
        token_file = settings.auth.token_file or default_token_file(state_dir())
        auth = Authenticator(settings.auth, TokenStore(token_file))
        await asyncio.to_thread(auth.load_tokens)
        daemon = cls(
            settings=settings,
            state=ServingState(),
            health=health_aio.HealthServicer(),
            components=components,
            auth=auth,
            metrics=Metrics(),
            service=service,
            socket_path=socket_path,
            state_lock=state_lock,
        )
        holder.append(daemon)
        try:
            await daemon._listen()
        except BaseException:
            await daemon.stop()
            raise
        return daemon

    def _grpc_server(self, listener: ListenerIdentity) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[AuthInterceptor(self.auth, listener, metrics=self.metrics)],
            options=[
                ("grpc.max_receive_message_length", self.settings.server.max_request_bytes),
                ("grpc.max_send_message_length", 64 << 20),
            ],
            maximum_concurrent_rpcs=self.settings.server.max_concurrent_streams,
        )
        handoffd_pb2_grpc.add_HandoffdServicer_to_server(
            HandoffdServicer(self.state, resolve_caller=caller_from_context), server
        )
        audit_pb2_grpc.add_AuditServicer_to_server(
            AuditServicer(self.components.ledger, resolve_caller=caller_from_context), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                AUDIT_SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        self.servers.append(server)
        return server

    async def _listen(self) -> None:
        for name in HEALTH_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        server_settings = self.settings.server
        mode = int(server_settings.socket_mode, 8)
        _prepare_socket(self.socket_path)
        main = self._grpc_server(self.auth.main_listener())
        old_umask = os.umask(0o777 & ~mode)
        try:
            main.add_insecure_port(f"unix://{self.socket_path}")
            await main.start()
            self.bound_main_socket = True
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, mode)
        log.info(
            "server.listen_unix", socket=str(self.socket_path), mode=server_settings.socket_mode
        )
        for name, listener in self.auth.app_listeners().items():
            app = self.settings.auth.apps[name]
            path = app_socket_path(runtime_dir(), name, app)
            gid = prepare_app_socket(path, app.group)
            server = self._grpc_server(listener)
            server.add_insecure_port(f"unix://{path}")
            await server.start()
            secure_app_socket(path, gid, app.mode_bits())
            self.app_sockets.append(path)
            log.info("server.listen_app_socket", app=name, socket=str(path))
        if server_settings.tcp:
            server = self._grpc_server(ListenerIdentity.tcp())
            self.tcp_port = server.add_insecure_port(server_settings.tcp)
            await server.start()
            log.info("server.listen_tcp", address=server_settings.tcp, port=self.tcp_port)
        if self.settings.http.listen:
            await self._listen_http(self.settings.http.listen)
        if self.settings.metrics.enabled:
            self.metrics_server = await asyncio.to_thread(
                self.metrics.serve, self.settings.metrics.listen
            )

    async def _listen_http(self, listen: str) -> None:
        host, port = parse_loopback_listen(listen)
        app = create_app(
            self.state.require_pipeline,
            self.auth,
            max_body_bytes=self.settings.server.max_request_bytes,
        )
        self.http = HttpServer(app, host, port)
        await self.http.start()

    async def load(self) -> None:
        """Load the model off the event loop, then start serving."""
        self.service.status("listening; loading the model")
        log.info("model.loading", path=str(self.settings.model.resolved_path()))
        # a future of our own: if SIGTERM cancels load(), stop() still gets and closes the engine
        self._loading = asyncio.ensure_future(
            asyncio.to_thread(LocalEngine.load, self.settings.model)
        )
        engine = await asyncio.shield(self._loading)
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
        pipeline = self.components.pipeline(engine, self.settings, self.metrics)
        self.state.pipeline = pipeline
        self.state.queued_requests = lambda: engine.stats.queued
        self._gauges = asyncio.create_task(self._update_gauges(), name="metrics-gauges")
        self.state.ready = True
        for name in HEALTH_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.service.install_reload(self.reload_policy)
        self.metrics.set_ready(True)
        self.service.ready(
            f"serving {info.name} on {info.execution_provider}; policy {pipeline.policy_hash[:12]}"
        )

    async def _update_gauges(self) -> None:
        """Queue depth, active requests and breaker states, once a second."""
        while True:
            pipeline, engine = self.state.pipeline, self.engine
            if pipeline is not None and engine is not None:
                self.metrics.set_queue_depth(engine.stats.queued)
                self.metrics.set_active_requests(self.state.active_requests)
                for name, _, breaker in pipeline.cloud_targets():
                    self.metrics.set_breaker_state(name, breaker)
            await asyncio.sleep(1.0)

    async def reload_policy(self) -> str:
        outcome = await self.components.policy.reload()
        return f"policy {self.components.policy.current.hash[:12]} ({outcome.value})"

    async def stop(self) -> None:
        log.info("server.stopping", grace_s=self.settings.server.grace_period_s)
        self.service.stopping(f"draining {self.state.active_requests} requests")
        self.state.ready = False
        self.metrics.set_ready(False)
        if self._gauges is not None:
            self._gauges.cancel()
        await self.health.enter_graceful_shutdown()
        if self.http is not None:
            await self.http.stop()
        await asyncio.gather(*(s.stop(self.settings.server.grace_period_s) for s in self.servers))
        if self.engine is None and self._loading is not None:
            with contextlib.suppress(Exception):
                self.engine = await self._loading  # let the load finish, then close it
        if self.engine is not None:
            await self.engine.aclose()
        await self.components.aclose()
        if self.metrics_server is not None:
            self.metrics_server.close()
        if self.bound_main_socket:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        for path in self.app_sockets:
            remove_app_socket(path)
        await self.service.close()
        if self.state_lock is not None:
            self.state_lock.close()
        log.info("server.stopped")


async def serve(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # until the reload handler is installed (after the model loads), SIGHUP must not kill us
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("server.reload_ignored_starting"))
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
        return EX_CONFIG
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        log.error("server.config_error", error=exc.message)
        print(f"handoffd: {exc.message}", file=sys.stderr)
        return EX_CONFIG
    except HandoffdError as exc:
        log.error("server.failed", error_class=type(exc).__name__, error=exc.message)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
