"""Runs the bot's roles (HTTP server, arq worker, or both) in one event loop until a signal.

Start-up order: bind the HTTP port (fail fast), migrate or check the schema, open Redis (maybe
an embedded one) and the database, then serve. Shutdown on SIGINT or SIGTERM runs in reverse:
stop taking requests, stop the worker, close clients, stop the embedded Redis last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Generator
from dataclasses import dataclass
from typing import TextIO

import uvicorn
from arq.worker import Worker
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.app import create_app
from bot.db.migrate import current_revision, head_revision, upgrade
from bot.queue import public_redis_url
from bot.services import RedisUnavailableError, Services, build_services
from bot.settings import Settings
from bot.worker import worker_settings
from webhooks.ingress import WEBHOOK_PATH

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10


class StartupError(RuntimeError):
    """The bot cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Roles:
    http: bool
    worker: bool
    migrate: bool
    allow_embedded_redis: bool


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the runner, which also stops the worker."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def public_database_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def run(settings: Settings, roles: Roles, *, out: TextIO) -> None:
    """Run ``roles`` until SIGINT/SIGTERM; raises StartupError when they cannot start."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, stop)
    sock = _bind(settings) if roles.http else None
    try:
        await _prepare_database(settings, migrate=roles.migrate)
        try:
            services = await build_services(
                settings, allow_embedded_redis=roles.allow_embedded_redis
            )
        except RedisUnavailableError as exc:
            raise StartupError(str(exc)) from None
        try:
            await _serve(settings, services, roles, sock, stop, out)
        finally:
            await services.aclose()
            log.info("stopped")
    finally:
        if sock is not None:
            sock.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _on_signal(stop: asyncio.Event) -> None:
    if not stop.is_set():
        stop.set()
        return
    # A second Ctrl-C means "now": the embedded Redis dies with us (it is tied to this process).
    log.warning("second signal: exiting without waiting for running work")
    os._exit(130)


def _bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
            "set FACTORY_HOST / FACTORY_PORT to a free address"
        ) from None
    return sock


async def _prepare_database(settings: Settings, *, migrate: bool) -> None:
    url = settings.effective_database_url
    shown = public_database_url(url)
    try:
        if migrate:
            revision = await upgrade(url)
            log.info("database %s migrated to %s", shown, revision)
            return
        current, head = await current_revision(url), head_revision()
    except (OSError, SQLAlchemyError) as exc:
        raise StartupError(f"database {shown} cannot be used: {exc}") from None
    if current != head:
        raise StartupError(
            f"database {shown} is at schema revision {current or 'none'}, this version needs "
            f"{head}: run `factory db upgrade` first"
        )


async def _serve(
    settings: Settings,
    services: Services,
    roles: Roles,
    sock: socket.socket | None,
    stop: asyncio.Event,
    out: TextIO,
) -> None:
    tasks: dict[str, asyncio.Task[None]] = {}
    server: _Server | None = None
    worker: Worker | None = None
    webhooks_enabled = False
    if roles.http and sock is not None:
        app = create_app(settings, services)
        webhooks_enabled = bool(app.state.webhooks_enabled)
        config = uvicorn.Config(
            app,
            log_config=None,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            server_header=False,
        )
        server = _Server(config)
        tasks["http server"] = asyncio.create_task(server.serve(sockets=[sock]))
    if roles.worker:
        worker = Worker(**worker_settings(settings, services), handle_signals=False)
        tasks["worker"] = asyncio.create_task(worker.async_run())

    stopped = asyncio.create_task(stop.wait())
    try:
        if server is not None:
            await _until_started(server, tasks["http server"])
        if not stop.is_set() and (server is None or server.started):
            _print_banner(settings, services, roles, sock, webhooks_enabled, out)
        done, _ = await asyncio.wait(
            [stopped, *tasks.values()], return_when=asyncio.FIRST_COMPLETED
        )
        failed = [name for name, task in tasks.items() if task in done]
    finally:
        stopped.cancel()
        log.info("shutting down")
        if server is not None:
            server.should_exit = True
            await _settle("http server", tasks["http server"])
        if worker is not None:
            await _drain(worker, SHUTDOWN_GRACE_S)
            await worker.close()
            await _settle("worker", tasks["worker"])
    if failed:
        raise StartupError(f"the {' and '.join(failed)} stopped unexpectedly; see the log above")


async def _until_started(server: _Server, task: asyncio.Task[None]) -> None:
    while not server.started:
        if task.done():
            return
        await asyncio.sleep(0.02)


async def _drain(worker: Worker, timeout_s: float) -> None:
    """Stop taking jobs and let running ones finish for a while; arq cancels the rest (and,
    as jobs are retried on cancellation, runs them again later)."""
    worker.allow_pick_jobs = False

    async def no_running_jobs() -> None:
        while any(not task.done() for task in worker.tasks.values()):
            await asyncio.sleep(0.1)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(no_running_jobs(), timeout_s)


async def _settle(name: str, task: asyncio.Task[None]) -> None:
    """Wait for a role to end; a crash is logged (and reported by the caller), not re-raised
    over the shutdown that is still closing the other role."""
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        log.exception("the %s failed", name)


def _print_banner(
    settings: Settings,
    services: Services,
    roles: Roles,
    sock: socket.socket | None,
    webhooks_enabled: bool,
    out: TextIO,
) -> None:
    lines = ["Agent Factory is running (Ctrl-C to stop)"]
    if sock is not None:
        host, port = sock.getsockname()[:2]
        base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        lines.append(f"  HTTP:      {base}  (GET /healthz, GET /readyz)")
        if webhooks_enabled:
            lines.append(f"  Webhooks:  POST {base}{WEBHOOK_PATH}")
        else:
            lines.append("  WARNING:   webhooks are disabled until FACTORY_WEBHOOK_SECRET is set")
    if roles.worker:
        lines.append("  Worker:    consuming jobs from the arq queue")
    if services.embedded_redis is not None:
        redis_line = f"{services.redis_url}  (embedded; stopped on exit)"
    else:
        redis_line = public_redis_url(services.redis_url)
    lines.append(f"  Redis:     {redis_line}")
    lines.append(f"  Database:  {public_database_url(settings.effective_database_url)}")
    lines.append(f"  Data dir:  {settings.data_dir}")
    print("\n".join(lines), file=out, flush=True)
