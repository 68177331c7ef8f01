"""A real worker process with the scripted agents: ``python -m tests.e2e.worker_main``.

Settings come from the environment (FACTORY_*), as for ``factory worker``. With
``E2E_REAL_AGENTS=1`` it runs the real planner and coder instead (the model then answers at
``FACTORY_ANTHROPIC_BASE_URL``: a served fake Messages API).
"""

from __future__ import annotations

import asyncio
import os

from arq.worker import Worker

from bot.services import build_services
from bot.settings import load_settings
from bot.worker import worker_settings
from tests.e2e.scripted_agents import scripted_agents


async def main() -> None:
    settings = load_settings()
    services = await build_services(settings)
    parts_options = {} if os.environ.get("E2E_REAL_AGENTS") else {"agents": scripted_agents()}
    try:
        worker = Worker(
            **{
                **worker_settings(settings, services, parts_options=parts_options),
                "poll_delay": 0.05,
            },
        )
        await worker.async_run()
    finally:
        await services.aclose()


if __name__ == "__main__":
    asyncio.run(main())
