"""The job queue: arq on Redis, reached through a URL."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis
from redis.exceptions import RedisError


def redis_settings(url: str, *, conn_retries: int = 5) -> RedisSettings:
    """arq's connection settings for ``url`` (redis://, rediss:// or unix://)."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = conn_retries
    return settings


async def create_arq_pool(url: str, *, conn_retries: int = 0) -> ArqRedis:
    """An arq pool (a ``redis.asyncio`` client that can also enqueue jobs), pinged once."""
    return await create_pool(redis_settings(url, conn_retries=conn_retries))


async def redis_problem(url: str, *, timeout_s: float = 2.0) -> str | None:
    """Why Redis at ``url`` does not answer a PING, or None when it does."""
    client: Redis = Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except (RedisError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        await client.aclose()
    return None


def public_redis_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for logs and terminals."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
