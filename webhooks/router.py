"""Routing as data: handlers declare the events they answer with ``@on``; a Router looks them up.

A handler turns one delivery into the jobs to enqueue, or an :class:`Ignore` with the reason.
It never calls GitHub or the LLM: it only reads the payload and :class:`RouteEnv`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from githubkit_schemas.latest.webhooks import VALID_EVENT_NAMES

from webhooks.context import EventContext, RouteEnv
from webhooks.jobs import JobSpec
from webhooks.payloads import Envelope

P = TypeVar("P", bound=Envelope)


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: str


RouteResult = list[JobSpec] | Ignore
Handler = Callable[[EventContext[P], RouteEnv], Awaitable[RouteResult]]


@dataclass(frozen=True, slots=True)
class Route(Generic[P]):
    """A handler and what it needs before it runs."""

    keys: tuple[str, ...]
    handler: Handler[P]
    payload: type[P]
    # Jobs act on a repository through an installation token; without an installation id
    # there is nothing a worker could do.
    needs_installation: bool = True
    # Events the bot's own account caused normally are echoes of its work and would loop; a
    # route may accept them when they report a result the bot waits for.
    accepts_own_bot: bool = False

    async def __call__(self, ctx: EventContext[P], env: RouteEnv) -> RouteResult:
        return await self.handler(ctx, env)


def on(
    *keys: str,
    payload: type[P],
    needs_installation: bool = True,
    accepts_own_bot: bool = False,
) -> Callable[[Handler[P]], Route[P]]:
    """Declare the ``event.action`` keys (or bare ``event`` names) a handler answers."""
    if not keys:
        raise ValueError("a route needs at least one event key")
    for key in keys:
        event = key.partition(".")[0]
        if event not in VALID_EVENT_NAMES:
            raise ValueError(f"{key!r}: {event!r} is not a GitHub webhook event")

    def declare(handler: Handler[P]) -> Route[P]:
        return Route(tuple(keys), handler, payload, needs_installation, accepts_own_bot)

    return declare


class Router:
    """Looks up the route for ``event.action``, falling back to a bare ``event`` route."""

    def __init__(self, routes: Iterable[Route[Any]]) -> None:
        self._routes: dict[str, Route[Any]] = {}
        for route in routes:
            for key in route.keys:
                if key in self._routes:
                    raise ValueError(f"two routes for {key!r}")
                self._routes[key] = route

    def route_for(self, event: str, action: str | None) -> Route[Any] | None:
        if action:
            route = self._routes.get(f"{event}.{action}")
            if route is not None:
                return route
        return self._routes.get(event)

    def keys(self) -> frozenset[str]:
        return frozenset(self._routes)

    def events(self) -> frozenset[str]:
        """Event names with at least one route: what the GitHub App must subscribe to."""
        return frozenset(key.partition(".")[0] for key in self._routes)
