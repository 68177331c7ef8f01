"""/healthz and /readyz against real Redis and real databases, and against dead ones."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr

from bot.app import create_app
from bot.db.database import Database
from bot.queue import create_arq_pool
from bot.services import Services, build_services
from bot.settings import Settings, load_settings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _client(settings: Settings, services: Services) -> httpx.AsyncClient:
    app = create_app(settings, services)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")


@pytest.fixture
async def dead_redis() -> AsyncIterator[ArqRedis]:
    client = ArqRedis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1)
    yield client
    await client.aclose()


async def test_healthz_and_readyz_answer_200_when_everything_is_up(
    settings: Settings, services: Services
) -> None:
    async with await _client(settings, services) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"redis": "ok", "database": "ok"}}


async def test_readyz_is_503_naming_redis_when_redis_is_down(
    settings: Settings, db: Database, dead_redis: ArqRedis
) -> None:
    services = await build_services(settings, redis=dead_redis, db=db)
    async with await _client(settings, services) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")

    assert health.status_code == 200
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert list(body["down"]) == ["redis"]


async def test_readyz_is_503_naming_both_when_redis_and_database_are_down(
    settings: Settings, dead_redis: ArqRedis
) -> None:
    dead_db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nothing")
    services = await build_services(settings, redis=dead_redis, db=dead_db)
    try:
        async with await _client(settings, services) as client:
            ready = await client.get("/readyz")
    finally:
        await dead_db.dispose()

    assert ready.status_code == 503
    assert set(ready.json()["down"]) == {"redis", "database"}


async def test_readyz_keeps_addresses_out_of_the_public_answer(
    settings: Settings, db: Database, dead_redis: ArqRedis
) -> None:
    services = await build_services(settings, redis=dead_redis, db=db)
    async with await _client(settings, services) as client:
        ready = await client.get("/readyz")

    assert "127.0.0.1" not in ready.text


async def test_services_close_only_what_they_opened(
    settings: Settings, db: Database, redis_url: str
) -> None:
    own_redis = await create_arq_pool(redis_url)
    services = await build_services(settings, redis=own_redis, db=db)
    await services.aclose()

    assert await own_redis.ping()
    await db.ping()
    await own_redis.aclose()


async def test_services_open_the_configured_redis_and_database(
    tmp_path: Path, clean_env: None, redis_url: str
) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings(_env_file=None, data_dir=data_dir, redis_url=redis_url)
    services = await build_services(settings)
    try:
        assert await services.redis.ping()
        await services.db.ping()
        assert services.redis_url == redis_url
        assert services.embedded_redis is None
    finally:
        await services.aclose()
    assert (data_dir / "factory.db").exists()


async def test_without_a_webhook_secret_deliveries_get_503_saying_why(
    settings: Settings, services: Services
) -> None:
    async with await _client(settings, services) as client:
        response = await client.post("/webhooks/github", content=b"{}")

    assert response.status_code == 503
    assert "FACTORY_WEBHOOK_SECRET is not set" in response.json()["error"]


async def test_with_a_webhook_secret_the_ingress_checks_signatures(
    settings: Settings, services: Services
) -> None:
    configured = settings.model_copy(update={"webhook_secret": SecretStr("0123456789abcdef")})
    async with await _client(configured, services) as client:
        response = await client.post(
            "/webhooks/github",
            content=b"{}",
            headers={"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Event": "ping"},
        )

    assert response.status_code == 401
