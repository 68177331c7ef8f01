"""Routing jobs to handlers as data: a handler declares the job model it takes with ``@handles``,
as ingress routes declare the events they answer with ``@on``.

A handler is ``async def handler(job, ctx, app) -> str``: the typed job, the job's context (its
installation, repository client, configuration and logger) and the worker's long-lived
services. Its result is the job's result, kept by arq for a while.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from bot.contracts.jobs import DeliveryJob
from bot.orchestration.context import JobContext

if TYPE_CHECKING:
    from bot.orchestration.services import JobServices

J = TypeVar("J", bound=DeliveryJob)
Handler = Callable[[J, JobContext, "JobServices"], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class JobRoute(Generic[J]):
    model: type[J]
    handler: Handler[J]

    @property
    def function(self) -> str:
        return self.model.function

    def parse(self, kwargs: Mapping[str, Any]) -> J:
        """The job as ingress built it: a keyword it does not know is an error, not ignored."""
        return self.model.model_validate(dict(kwargs))

    async def __call__(self, job: J, ctx: JobContext, app: JobServices) -> str:
        return await self.handler(job, ctx, app)


def handles(model: type[J]) -> Callable[[Handler[J]], JobRoute[J]]:
    """Declare the job model a handler takes."""

    def declare(handler: Handler[J]) -> JobRoute[J]:
        return JobRoute(model, handler)

    return declare


class JobRouter:
    def __init__(self, routes: Iterable[JobRoute[Any]]) -> None:
        self._routes: dict[str, JobRoute[Any]] = {}
        for route in routes:
            if route.function in self._routes:
                raise ValueError(f"two handlers for {route.function!r}")
            self._routes[route.function] = route

    def __iter__(self) -> Iterator[JobRoute[Any]]:
        return iter(self._routes.values())

    def route(self, function: str) -> JobRoute[Any]:
        return self._routes[function]
