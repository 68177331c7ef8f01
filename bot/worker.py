"""The arq worker: the registry of job functions and the worker settings built from settings.

A job is ``async def job(ctx, ...)``; ``ctx["services"]`` holds the :class:`Services` the process
runs on (put there by ``on_startup``). Register a job with one line in :func:`job_functions`.
"""

from __future__ import annotations

from typing import Any

from arq.worker import Function, func

from bot.queue import redis_settings
from bot.services import Services
from bot.settings import Settings

JobContext = dict[str, Any]


async def ping(ctx: JobContext) -> str:
    """A round trip through the queue and the database: proves a worker is consuming jobs."""
    services: Services = ctx["services"]
    await services.db.ping()
    return "pong"


def job_functions() -> list[Function]:
    """Every job a worker runs, by the name it is enqueued under."""
    return [
        func(ping, name="ping"),
    ]


def worker_settings(settings: Settings, services: Services) -> dict[str, Any]:
    """Keyword arguments for ``arq.worker.Worker`` (also accepted by ``arq.create_worker``).

    The worker gets its own Redis pool from ``services.redis_url`` because arq closes its pool
    when the worker stops, while ``services.redis`` stays open until the process ends.
    """

    async def on_startup(ctx: JobContext) -> None:
        ctx["services"] = services

    async def on_shutdown(ctx: JobContext) -> None:
        # The process that built the services closes them, after the HTTP server is down too.
        ctx.pop("services", None)

    return {
        "functions": job_functions(),
        "redis_settings": redis_settings(services.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_timeout": settings.job_timeout_s,
    }
