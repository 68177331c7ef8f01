"""Shared fixtures: settings on a temporary data dir, databases (SQLite and PostgreSQL), an
isolated Redis database, and services built from them.

PostgreSQL tests use a scratch database created for the test and dropped after it, on the
server at 127.0.0.1:5432 (database ``test``, user ``postgres``); they skip, saying why, when no
server answers there. Redis tests claim a whole Redis database number that nobody else is using
and flush it afterwards, so they never touch other data on the shared server.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis

from bot.db.database import Database
from bot.queue import create_arq_pool
from bot.services import Services, build_services
from bot.settings import Settings, load_settings

# Every log record of the run is searched for secrets at the end (issue: no secret in logs).
pytest_plugins = ["tests.log_audit"]

PG_HOST, PG_PORT, PG_ADMIN_DB, PG_USER = "127.0.0.1", 5432, "test", "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
_REDIS_CLAIM_KEY = "factory-tests:claimed-by"


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FACTORY_* or ANTHROPIC_API_KEY variables from the developer's shell leak in."""
    for name in list(os.environ):
        if name.startswith("FACTORY_") or name == "ANTHROPIC_API_KEY":
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path, clean_env: None) -> Settings:
    """Default settings (no .env read) with the data dir in a fresh temporary folder."""
    return load_settings(_env_file=None, data_dir=tmp_path / "data")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'factory.db'}"


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    """A SQLite database in a temporary file with every table created."""
    database = Database(sqlite_url)
    await database.create_all()
    yield database
    await database.dispose()


@asynccontextmanager
async def scratch_postgres_database() -> AsyncIterator[str]:
    """Create an empty database, yield its URL (postgresql+asyncpg), drop it afterwards."""
    if not _port_answers(PG_HOST, PG_PORT):
        pytest.skip(f"no PostgreSQL answers at {PG_HOST}:{PG_PORT} (bash .ci/run starts one)")
    import asyncpg

    name = f"factory_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB, timeout=5
        )
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} refused user {PG_USER}: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """An empty PostgreSQL scratch database, dropped after the test (skips if none answers)."""
    async with scratch_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(db_backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL, once per backend: SQLite, then PostgreSQL (skipped if absent)."""
    if db_backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'factory.db'}"
        return
    async with scratch_postgres_database() as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """URL of a Redis database number claimed for this test alone, flushed afterwards."""
    if not _port_answers(REDIS_HOST, REDIS_PORT):
        pytest.fail(f"no Redis answers at {REDIS_HOST}:{REDIS_PORT} (bash .ci/run starts one)")
    claimed: int | None = None
    owner = f"{os.getpid()}:{uuid.uuid4().hex}"
    # High numbers first: applications (and the bot's default) use 0.
    for number in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
        try:
            if client.set(_REDIS_CLAIM_KEY, owner, nx=True, ex=900) and client.dbsize() == 1:
                claimed = number
                break
            if client.get(_REDIS_CLAIM_KEY) == owner.encode():
                client.delete(_REDIS_CLAIM_KEY)  # Not empty: someone else's data; leave it.
        finally:
            client.close()
    if claimed is None:
        pytest.fail("every Redis database 1-15 at 127.0.0.1:6379 is in use; cannot isolate")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{claimed}"
    finally:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=claimed)
        try:
            client.flushdb()
        finally:
            client.close()


@pytest.fixture
async def services(settings: Settings, db: Database, redis_url: str) -> AsyncIterator[Services]:
    """Services on the temporary SQLite database and the claimed Redis database."""
    redis_client = await create_arq_pool(redis_url)
    built = await build_services(settings, redis=redis_client, db=db)
    yield built
    await built.aclose()
    await redis_client.aclose()
