"""The worker settings run real jobs from a real Redis queue with the services in ctx."""

from __future__ import annotations

from arq.jobs import Job
from arq.worker import Worker

from bot.queue import create_arq_pool
from bot.services import Services
from bot.settings import Settings
from bot.worker import job_functions, worker_settings


async def test_a_worker_runs_the_ping_job_with_services_in_ctx(
    settings: Settings, services: Services
) -> None:
    job = await services.redis.enqueue_job("ping", _job_id="ping-1")
    assert job is not None

    options = {**worker_settings(settings, services), "burst": True, "poll_delay": 0}
    worker = Worker(**options, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()

    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert await Job("ping-1", services.redis).result(timeout=5) == "pong"
    # The worker closed its own pool; the services' client is still usable.
    assert await services.redis.ping()


async def test_a_duplicate_job_id_is_not_enqueued_twice(services: Services) -> None:
    first = await services.redis.enqueue_job("ping", _job_id="same")
    second = await services.redis.enqueue_job("ping", _job_id="same")

    assert first is not None and second is None


def test_every_registered_job_has_a_unique_name(settings: Settings) -> None:
    names = [function.name for function in job_functions(settings)]

    assert "ping" in names
    assert len(names) == len(set(names))


async def test_the_worker_pool_reaches_the_services_redis(services: Services) -> None:
    pool = await create_arq_pool(services.redis_url)
    try:
        await services.redis.set("marker", b"1")
        assert await pool.get("marker") == b"1"
    finally:
        await pool.aclose()
