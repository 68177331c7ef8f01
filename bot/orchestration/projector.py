"""The one writer of what a run shows on GitHub: its status comment and its stage check runs.

Both are projected from the stored run, never edited piecemeal: every use case that changes a
run ends by asking for a refresh. Refreshes of one run are serialised across workers (two
renders racing could leave an older state on GitHub after a newer one) and coalesce: a request
made while another worker renders is answered by that render if it read the run afterwards,
so a burst of changes costs one or two renders, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from redis.asyncio import Redis

from bot.contracts import markers
from bot.contracts.lifecycle import FeatureState
from bot.db.models import utcnow
from bot.orchestration.checks import sync_checks
from bot.orchestration.context import JobContext
from bot.orchestration.liveness import Liveness
from bot.orchestration.status import render_status, status_view
from bot.store.runs import RunStore, view_of

# (installation id, repository) -> a context for a job acting on that repository.
ContextFactory = Callable[[int, str], JobContext]

_PENDING_TTL_S = 300
_LOCK_TTL_S = 60
# Deletes the lock only if the given worker still holds it.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)


class StatusProjector:
    def __init__(
        self,
        *,
        store: RunStore,
        redis: Redis,
        liveness: Liveness,
        contexts: ContextFactory,
        server_url: str,
        key_prefix: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.redis = redis
        self.liveness = liveness
        self.contexts = contexts
        self.server_url = server_url
        self.key_prefix = key_prefix
        self.clock = clock

    async def refresh(
        self, feature_id: int, ctx: JobContext | None = None, *, new: bool = False
    ) -> None:
        """Bring the run's status comment and check runs up to date with the store.

        Returns once a render that read the run after this call has finished. ``ctx``: the
        calling job's context for the run's repository (its client and configuration are
        reused); without one, a context is made for the run. ``new``: the run was created by
        the caller, so it has no status comment yet unless a render posted one since.
        """
        pending = f"{self.key_prefix}:status-pending:{feature_id}"
        await self.redis.set(pending, b"1", ex=_PENDING_TTL_S)
        async with self._render_lock(feature_id):
            # Taken by the render that held the lock when this request was made: done.
            if await self.redis.getdel(pending) is None:
                return
            await self._project(feature_id, ctx, new)

    @contextlib.asynccontextmanager
    async def _render_lock(self, feature_id: int) -> AsyncIterator[None]:
        """One render of a run at a time. The lock names the worker holding it: a worker that
        died while rendering (its heartbeat gone) does not hold up the next render."""
        key = f"{self.key_prefix}:status-lock:{feature_id}"
        me = self.liveness.worker_id.encode()
        deadline = time.monotonic() + _LOCK_TTL_S
        while not await self.redis.set(key, me, nx=True, ex=_LOCK_TTL_S):
            holder = await self.redis.get(key)
            if holder is not None and not await self.liveness.worker_alive(holder.decode()):
                await self.redis.eval(_RELEASE, 1, key, holder.decode())  # type: ignore[misc]
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"the status of feature {feature_id} stayed locked")
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            await self.redis.eval(_RELEASE, 1, key, me.decode())  # type: ignore[misc]

    async def _project(self, feature_id: int, ctx: JobContext | None, new: bool) -> None:
        feature = await self.store.get(feature_id)
        if feature is None:
            return
        tasks = await self.store.tasks(feature_id)
        if ctx is None or ctx.repository.casefold() != feature.repository.casefold():
            ctx = self.contexts(feature.installation_id, feature.repository)
        settings = await ctx.settings()
        gh = await ctx.github()
        checks: dict[str, str] = {}
        if feature.head_sha:
            state = FeatureState(feature.state)
            checks = await sync_checks(
                gh, self.store, view_of(feature), state, tasks, settings.enabled
            )
        view = status_view(
            feature,
            tasks,
            enabled=settings.enabled,
            max_rounds=settings.config.max_rounds,
            checks=checks,
            server_url=self.server_url,
            now=self.clock(),
        )
        body = render_status(view)
        if new and feature.status_comment_id is None:
            comment = await gh.create_comment(feature.issue_number, body)
        else:
            comment = await gh.upsert_marked_comment(
                feature.issue_number,
                markers.status(feature_id),
                body,
                comment_id=feature.status_comment_id,
            )
        if comment.id != feature.status_comment_id:
            await self.store.remember_status_comment(feature_id, comment.id)
