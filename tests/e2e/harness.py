"""An end-to-end bot: the fake GitHub on loopback, the real HTTP app, Redis, SQLite and workers.

Webhooks travel for real: the fake GitHub signs them and posts them to the bot's app, which
verifies, records and enqueues them; workers (in this process or real subprocesses) run the
jobs against the fake over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arq.worker import Worker
from sqlalchemy import select

from bot.app import create_app
from bot.db import AuditEvent, Database, Feature
from bot.queue import create_arq_pool
from bot.services import Services, build_services
from bot.settings import Settings, load_settings
from bot.worker import worker_settings
from tests.fakegithub import FakeGitHub
from tests.fakegithub.server import serve

SECRET = "e2e-webhook-secret"
FACTORY_YML = """\
deploy:
  workflow: deploy.yml
  environments: [staging]
validation_gates: ["python -c 'print(1)'"]
"""


@dataclass
class Bot:
    fake: FakeGitHub
    repo: str
    installation_id: int
    settings: Settings
    services: Services
    env: dict[str, str]
    root: Path
    workers: list[asyncio.Task[Any]] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.services.db

    # -- workers -------------------------------------------------------------------------

    def start_worker(self, agents: Mapping[Any, Any] | None = None, **parts_options: Any) -> Worker:
        """An in-process worker; ``agents`` None runs the real stage agents.

        ``parts_options`` go to ``build_worker_parts`` as well, e.g. ``anthropic_http_client``.
        """
        options = dict(parts_options)
        if agents is not None:
            options["agents"] = dict(agents)
        worker = Worker(
            **{
                **worker_settings(self.settings, self.services, parts_options=options),
                "poll_delay": 0.05,
            },
            handle_signals=False,
        )
        self.workers.append(asyncio.create_task(worker.async_run()))
        worker_ref = worker
        self._in_process = getattr(self, "_in_process", []) + [worker_ref]
        return worker

    async def stop_workers(self) -> None:
        for worker in getattr(self, "_in_process", []):
            # A job cancelled while storing its result makes close() raise: the worker is
            # stopping either way, which is all a test teardown needs.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker.close()
        for task in self.workers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.workers.clear()
        self._in_process = []

    def spawn_worker(self, crash_dir: Path | None = None) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env}
        if crash_dir is not None:
            env["E2E_CRASH_DIR"] = str(crash_dir)
        log = open(self.root / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.worker_main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.processes.append(proc)
        return proc

    def kill_processes(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    # -- observing -----------------------------------------------------------------------

    async def features(self) -> list[Feature]:
        async with self.db.session() as s:
            return list((await s.scalars(select(Feature).order_by(Feature.id))).all())

    async def audit(self, feature_id: int) -> list[AuditEvent]:
        async with self.db.session() as s:
            return list(
                (
                    await s.scalars(
                        select(AuditEvent)
                        .where(AuditEvent.feature_id == feature_id)
                        .order_by(AuditEvent.id)
                    )
                ).all()
            )

    async def wait_for(
        self, check: Callable[[], Awaitable[bool]], *, timeout: float = 60, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    async def wait_for_state(self, *states: str, timeout: float = 60) -> Feature:
        async def reached() -> bool:
            features = await self.features()
            return bool(features) and features[-1].state in states

        await self.wait_for(reached, timeout=timeout, what=f"feature state in {states}")
        return (await self.features())[-1]


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path,
    redis_url: str,
    *,
    files: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Bot]:
    """``env`` adds or overrides settings variables (``FACTORY_*``, ``ANTHROPIC_API_KEY``)."""
    fake = FakeGitHub(tmp_path / "github", webhook_secret=SECRET)
    with serve(fake):
        installation_id = fake.add_installation("octo-org")
        repo = fake.create_repo(
            "octo-org",
            "demo",
            dict(files)
            if files is not None
            else {"README.md": "# demo\n", ".github/factory.yml": FACTORY_YML},
        )
        fake.set_permission(repo, "alice", "maintain")
        key_path = fake.write_private_key(tmp_path / "app.pem")
        variables = {
            "FACTORY_WEBHOOK_SECRET": SECRET,
            "FACTORY_APP_ID": str(fake.app_id),
            "FACTORY_PRIVATE_KEY_PATH": str(key_path),
            "FACTORY_GITHUB_API_URL": fake.api_url,
            "FACTORY_REDIS_URL": redis_url,
            "FACTORY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'factory.db'}",
            "FACTORY_DATA_DIR": str(tmp_path / "data"),
            "FACTORY_SANDBOX": "local",
            "FACTORY_JOB_TIMEOUT_S": "120",
            # The embedding model is not needed by scripted agents; knowledge tests turn it on.
            "FACTORY_KNOWLEDGE": "false",
            **(env or {}),
        }
        settings = load_settings(
            _env_file=None, **{k.removeprefix("FACTORY_").lower(): v for k, v in variables.items()}
        )
        db = Database(settings.effective_database_url)
        await db.create_all()
        pool = await create_arq_pool(redis_url)
        services = await build_services(settings, redis=pool, db=db)
        app = create_app(settings, services)
        fake.set_webhook_sink(asgi_app=app)
        bot = Bot(fake, repo, installation_id, settings, services, variables, tmp_path)
        try:
            yield bot
        finally:
            bot.kill_processes()
            await bot.stop_workers()
            await services.aclose()
            await pool.aclose()
            await db.dispose()
