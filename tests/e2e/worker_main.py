"""A real worker process with the scripted agents: ``python -m tests.e2e.worker_main``.

Settings come from the environment (FACTORY_*), as for ``factory worker``.
"""

from __future__ import annotations

import asyncio

from arq.worker import Worker

from bot.services import build_services
from bot.settings import load_settings
from bot.worker import worker_settings
from tests.e2e.scripted_agents import scripted_agents


async def main() -> None:
    settings = load_settings()
    services = await build_services(settings)
    try:
        worker = Worker(
            **{
                **worker_settings(settings, services, parts_options={"agents": scripted_agents()}),
                "poll_delay": 0.05,
            },
        )
        await worker.async_run()
    finally:
        await services.aclose()


if __name__ == "__main__":
    asyncio.run(main())
