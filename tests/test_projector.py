"""The status projector on real Redis and SQLite: renders of one run are serialised across
workers, a request made while another worker renders is answered by that render, and a worker
that died holding the render lock does not hold up the next render.

The run's repository is reached through a context factory handed to the projector: here one
that records each render it is asked for, so a render that should not happen fails the test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from bot.db import Database, Feature
from bot.orchestration.context import JobContext
from bot.orchestration.liveness import Liveness
from bot.orchestration.projector import StatusProjector
from bot.store.runs import RunStore

PREFIX = "factory:test"


class Rendered(Exception):
    """A render reached GitHub (this test has none): the projector asked for the run's context."""


@dataclass
class Contexts:
    asked: list[tuple[int, str]] = field(default_factory=list)

    def __call__(self, installation_id: int, repository: str) -> JobContext:
        self.asked.append((installation_id, repository))
        raise Rendered(repository)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def run_in(db: Database) -> int:
    async with db.session() as s:
        feature = Feature(installation_id=1, repository="o/r", issue_number=3, state="planning")
        s.add(feature)
        await s.flush()
        return feature.id


def projector(
    db: Database, redis: Redis, liveness: Liveness, contexts: Contexts
) -> StatusProjector:
    return StatusProjector(
        store=RunStore(db),
        redis=redis,
        liveness=liveness,
        contexts=contexts,
        server_url="https://github.com",
        key_prefix=PREFIX,
    )


async def test_a_lock_left_by_a_dead_worker_is_taken_over_at_once(
    db: Database, redis: Redis
) -> None:
    feature_id = await run_in(db)
    contexts = Contexts()
    me = Liveness(redis)
    # A worker that died mid-render: its lock is there, its heartbeat is not.
    await redis.set(f"{PREFIX}:status-lock:{feature_id}", b"dead-worker", ex=60)
    started = time.monotonic()
    async with me.heartbeat():
        with pytest.raises(Rendered):
            await projector(db, redis, me, contexts).refresh(feature_id)
    assert time.monotonic() - started < 2
    assert contexts.asked == [(1, "o/r")]
    assert await redis.get(f"{PREFIX}:status-lock:{feature_id}") is None


async def test_a_live_workers_render_is_waited_for_and_answers_requests_made_meanwhile(
    db: Database, redis: Redis
) -> None:
    feature_id = await run_in(db)
    contexts = Contexts()
    other, me = Liveness(redis), Liveness(redis)
    lock = f"{PREFIX}:status-lock:{feature_id}"
    pending = f"{PREFIX}:status-pending:{feature_id}"
    async with other.heartbeat(), me.heartbeat():
        # Another worker renders: it holds the lock.
        await redis.set(lock, other.worker_id.encode(), ex=60)
        waiting = [
            asyncio.create_task(projector(db, redis, me, contexts).refresh(feature_id))
            for _ in range(3)
        ]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in waiting), "a live worker's render is waited for"
        # That render reads the run after the three requests: it takes them, then lets go.
        assert await redis.getdel(pending) == b"1"
        await redis.delete(lock)
        await asyncio.wait_for(asyncio.gather(*waiting), 5)
        assert contexts.asked == [], "the requests were answered by the other worker's render"

        # A request after that render is rendered.
        with pytest.raises(Rendered):
            await projector(db, redis, me, contexts).refresh(feature_id)
        assert contexts.asked == [(1, "o/r")]
