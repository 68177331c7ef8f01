"""The arq job functions: thin adapters from a queued job to the coordinator and handlers.

Every function takes arq's ``ctx``; the worker's ``on_startup`` puts the ``EventHandlers``
and the ``Coordinator`` there. Transient GitHub failures become ``Retry`` with backoff;
anything else fails the job and is logged with the delivery id.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry

from agents.coordinator import transient_delay
from bot.contracts.lifecycle import Stage

log = logging.getLogger(__name__)

JobFunction = Callable[..., Awaitable[Any]]


def _event_job(name: str) -> JobFunction:
    async def job(ctx: dict[str, Any], **kwargs: Any) -> Any:
        handlers = ctx.get("handlers")
        if handlers is None:
            raise RuntimeError(
                f"{name} needs GitHub access: set FACTORY_APP_ID and FACTORY_PRIVATE_KEY "
                "(or FACTORY_PRIVATE_KEY_PATH) and restart the worker"
            )
        try:
            return await getattr(handlers, name)(**kwargs)
        except Exception as exc:
            delay = transient_delay(exc)
            if delay is None or ctx.get("job_try", 1) >= 5:
                raise
            log.warning("%s: transient failure, retrying in %.0fs: %s", name, delay, exc)
            raise Retry(defer=delay * ctx.get("job_try", 1)) from exc

    job.__name__ = job.__qualname__ = name
    return job


async def run_step(ctx: dict[str, Any], *, feature_id: int, stage: str, round: int, attempt: int) -> str:
    coordinator = ctx.get("coordinator")
    if coordinator is None:
        raise RuntimeError("run_step needs GitHub access: set FACTORY_APP_ID and FACTORY_PRIVATE_KEY")
    try:
        return await coordinator.run_step(
            feature_id=feature_id,
            stage=Stage(stage),
            round_=round,
            attempt=attempt,
            job_id=ctx["job_id"],
            job_try=ctx.get("job_try", 1),
        )
    except Retry:
        raise
    except Exception as exc:
        delay = transient_delay(exc)
        if delay is None or ctx.get("job_try", 1) >= 5:
            raise
        raise Retry(defer=delay * ctx.get("job_try", 1)) from exc


async def reconcile(ctx: dict[str, Any]) -> int:
    return int(await ctx["coordinator"].reconcile())


EVENT_JOBS = (
    "feature_start",
    "command_received",
    "review_submitted",
    "review_comment_created",
    "pr_closed",
    "pr_synchronized",
    "check_rerequested",
    "check_suite_rerequested",
    "workflow_run_completed",
    "knowledge_refresh",
    "installation_changed",
)

JOB_FUNCTIONS: tuple[JobFunction, ...] = (
    *(_event_job(name) for name in EVENT_JOBS),
    run_step,
    reconcile,
)

__all__ = ["EVENT_JOBS", "JOB_FUNCTIONS"]
