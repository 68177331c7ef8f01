"""The arq job functions: thin adapters from a queued job to its typed handler.

Every function takes arq's ``ctx``; the worker's ``on_startup`` puts the :class:`WorkerParts`
there. A delivery job's keyword arguments are validated back into its model, the job gets its
own :class:`JobContext` (its installation from the delivery) and the log lines it writes carry
the delivery. A passing failure (GitHub 5xx, rate limit) becomes ``Retry`` under the one retry
policy; anything else fails the job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from arq import Retry

from bot.contracts.jobs import RepositoryJob, RunStep
from bot.logging import log_context
from bot.orchestration.handlers import build_job_router
from bot.orchestration.registry import JobRoute
from bot.orchestration.retry import RetryPolicy

if TYPE_CHECKING:
    from bot.composition import WorkerParts

# arq's per-job dict: the worker's parts, the job's id and try.
ArqContext = dict[str, Any]
T = TypeVar("T")
JobFunction = Callable[..., Awaitable[Any]]

RETRY = RetryPolicy()


def _parts(ctx: ArqContext, function: str) -> WorkerParts:
    parts: WorkerParts | None = ctx.get("parts")
    if parts is None:
        raise RuntimeError(
            f"{function} needs GitHub access: set FACTORY_APP_ID and FACTORY_PRIVATE_KEY "
            "(or FACTORY_PRIVATE_KEY_PATH) and restart the worker"
        )
    return parts


async def _retrying(ctx: ArqContext, work: Awaitable[T]) -> T:
    try:
        return await work
    except Retry:
        raise
    except Exception as exc:
        delay = RETRY.defer(exc, ctx.get("job_try", 1))
        if delay is None:
            raise
        raise Retry(defer=delay) from exc


def delivery_job(route: JobRoute[Any]) -> JobFunction:
    """The arq function for one kind of delivery job."""

    async def job(ctx: ArqContext, **kwargs: Any) -> str:
        parts = _parts(ctx, route.function)
        model = route.parse(kwargs)
        repository = model.repo if isinstance(model, RepositoryJob) else ""
        context = parts.services.context(model.installation_id, repository)
        with log_context(
            delivery_id=model.delivery_id,
            installation_id=model.installation_id,
            repository=repository or None,
            job_id=ctx.get("job_id"),
        ):
            return await _retrying(ctx, route(model, context, parts.services))

    job.__name__ = job.__qualname__ = route.function
    return job


async def run_step(ctx: ArqContext, **kwargs: Any) -> str:
    step = RunStep.model_validate(kwargs)
    coordinator = _parts(ctx, RunStep.function).services.coordinator
    with log_context(feature_id=step.feature_id, job_id=ctx.get("job_id")):
        work = coordinator.run_step(step, job_id=ctx["job_id"], job_try=ctx.get("job_try", 1))
        return await _retrying(ctx, work)


async def reconcile(ctx: ArqContext) -> int:
    return await _parts(ctx, "reconcile").services.coordinator.reconcile()


JOB_FUNCTIONS: tuple[JobFunction, ...] = (
    *(delivery_job(route) for route in build_job_router()),
    run_step,
    reconcile,
)

__all__ = ["JOB_FUNCTIONS"]
