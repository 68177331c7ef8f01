"""Which worker runs which step (or holds which lock), and whether that worker is still alive.

arq only notices a dead worker when the job's in-progress key expires (the job timeout plus
ten seconds, which is half an hour here). Workers therefore beat a short heartbeat and claim
the steps they run, so the reconciler can hand a dead worker's step to a live one in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

log = logging.getLogger(__name__)

_WORKER_KEY = "factory:worker:"
_OWNER_KEY = "factory:step-owner:"


class Liveness:
    def __init__(self, redis: Redis, *, heartbeat_s: float = 2.0, ttl_s: float = 6.0) -> None:
        self.redis = redis
        self.worker_id = uuid.uuid4().hex[:12]
        self.heartbeat_s = heartbeat_s
        self.ttl_ms = int(ttl_s * 1000)

    async def beat(self) -> None:
        await self.redis.set(_WORKER_KEY + self.worker_id, b"1", px=self.ttl_ms)

    @contextlib.asynccontextmanager
    async def heartbeat(self) -> AsyncIterator[None]:
        """Keep this worker's heartbeat alive for the duration of the block."""
        await self.beat()

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.heartbeat_s)
                try:
                    await self.beat()
                except Exception:  # a Redis blip must not kill the worker
                    log.warning("heartbeat failed", exc_info=True)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.redis.delete(_WORKER_KEY + self.worker_id)

    async def claim(self, job_id: str, ttl_s: int) -> None:
        await self.redis.set(_OWNER_KEY + job_id, self.worker_id.encode(), ex=ttl_s)

    async def release(self, job_id: str) -> None:
        await self.redis.delete(_OWNER_KEY + job_id)

    async def owner_alive(self, job_id: str) -> bool | None:
        """True/False for a claimed step; None when nobody claimed it."""
        owner = await self.redis.get(_OWNER_KEY + job_id)
        if owner is None:
            return None
        return await self.worker_alive(owner.decode())

    async def worker_alive(self, worker_id: str) -> bool:
        return bool(await self.redis.exists(_WORKER_KEY + worker_id))

    async def free_orphan(self, job_id: str) -> None:
        """Let arq pick a dead worker's job up again now instead of after its timeout."""
        await self.redis.delete(in_progress_key_prefix + job_id, _OWNER_KEY + job_id)
