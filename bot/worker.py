"""The arq worker: the registry of job functions and the worker settings built from settings.

A job is ``async def job(ctx, ...)``; ``on_startup`` puts the :class:`Services` and the worker's
object graph (:class:`bot.composition.WorkerParts`) in ``ctx``. Besides running jobs, every worker beats
a heartbeat and runs the reconciler, so a step whose worker died, or whose job Redis lost, is
picked up again within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from arq.typing import WorkerCoroutine
from arq.worker import Function, func

from bot.jobs import JOB_FUNCTIONS
from bot.queue import redis_settings
from bot.services import Services
from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)

JobContext = dict[str, Any]
RECONCILE_EVERY_S = 3.0


async def ping(ctx: JobContext) -> str:
    """A round trip through the queue and the database: proves a worker is consuming jobs."""
    services: Services = ctx["services"]
    await services.db.ping()
    return "pong"


def job_functions(settings: Settings) -> list[Function]:
    """Every job a worker runs, by the name it is enqueued under."""
    return [
        func(ping, name="ping"),
        *(
            func(cast("WorkerCoroutine", job), name=job.__name__, max_tries=8)
            for job in JOB_FUNCTIONS
        ),
    ]


async def _reconcile_forever(ctx: JobContext) -> None:
    coordinator = ctx["parts"].coordinator
    while True:
        try:
            await coordinator.reconcile()
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop must outlive a Redis or database blip
            log.warning("reconciler pass failed", exc_info=True)
        await asyncio.sleep(RECONCILE_EVERY_S)


def worker_settings(
    settings: Settings, services: Services, *, parts_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``arq.worker.Worker`` (also accepted by ``arq.create_worker``).

    ``parts_options`` go to :func:`bot.composition.build_worker_parts` (tests pass scripted
    agents and transports there). The worker gets its own Redis pool from
    ``services.redis_url`` because arq closes its pool when the worker stops.
    """

    async def on_startup(ctx: JobContext) -> None:
        from bot.composition import build_worker_parts

        ctx["services"] = services
        options = dict(parts_options or {})
        if settings.knowledge and "knowledge_service" not in options:
            from bot.composition import open_knowledge

            options["knowledge_service"] = open_knowledge(settings)
        try:
            parts = await build_worker_parts(services, **options)
        except SettingsError as exc:
            # `factory up` must start on a bare machine; jobs will say what is missing.
            log.warning("worker runs without GitHub access: %s", exc)
            return
        ctx["parts"] = parts
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(parts.liveness.heartbeat())
        ctx["exit_stack"] = stack
        ctx["reconciler"] = asyncio.create_task(_reconcile_forever(ctx))

    async def on_shutdown(ctx: JobContext) -> None:
        task = ctx.pop("reconciler", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stack = ctx.pop("exit_stack", None)
        if stack is not None:
            await stack.aclose()
        parts = ctx.pop("parts", None)
        if parts is not None:
            await parts.aclose()
        # The process that built the services closes them, after the HTTP server is down too.
        ctx.pop("services", None)

    return {
        "functions": job_functions(settings),
        "redis_settings": redis_settings(services.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_timeout": settings.job_timeout_s,
        "allow_abort_jobs": True,
        # The queue is polled this often: it bounds how soon a delivery turns into a reaction.
        "poll_delay": 0.1,
        "max_tries": 8,
    }
