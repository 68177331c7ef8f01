"""The long-lived clients the bot runs on, built once from settings and passed around.

``build_services`` opens what the caller did not hand in and remembers what it opened, so
``aclose`` closes exactly that: a test can inject its own Redis client or database and keep
them open after the services are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from arq.connections import ArqRedis

from bot.db.database import Database
from bot.embedded_redis import EmbeddedRedis
from bot.queue import create_arq_pool, public_redis_url, redis_problem
from bot.settings import DEFAULT_REDIS_URL, Settings


class RedisUnavailableError(RuntimeError):
    """Redis does not answer at the URL the bot would use; the message says what to do."""


@dataclass
class Services:
    settings: Settings
    db: Database
    # arq's pool is a redis.asyncio client: used both to enqueue jobs and as plain Redis.
    redis: ArqRedis
    # The URL ``redis`` is connected to (the embedded server's when one was started).
    redis_url: str
    embedded_redis: EmbeddedRedis | None = None
    _owned: set[str] = field(default_factory=set, repr=False)

    async def aclose(self) -> None:
        """Close what ``build_services`` opened; stop the embedded Redis last."""
        if "redis" in self._owned:
            await self.redis.aclose(close_connection_pool=True)
        if "db" in self._owned:
            await self.db.dispose()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
        self._owned.clear()


async def build_services(
    settings: Settings,
    *,
    redis: ArqRedis | None = None,
    db: Database | None = None,
    allow_embedded_redis: bool = False,
) -> Services:
    """Open the database and Redis named by ``settings`` unless given.

    With ``allow_embedded_redis`` (``factory up``) and no Redis URL set, an embedded Redis is
    started when nothing answers at the default URL.
    """
    owned: set[str] = set()
    embedded: EmbeddedRedis | None = None
    if db is None:
        db = Database(settings.effective_database_url)
        owned.add("db")
    try:
        if redis is None:
            redis_url, embedded = await resolve_redis_url(
                settings, allow_embedded=allow_embedded_redis
            )
            redis = await create_arq_pool(redis_url)
            owned.add("redis")
        else:
            redis_url = _client_url(redis)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        if "db" in owned:
            await db.dispose()
        raise
    return Services(
        settings=settings,
        db=db,
        redis=redis,
        redis_url=redis_url,
        embedded_redis=embedded,
        _owned=owned,
    )


async def resolve_redis_url(
    settings: Settings, *, allow_embedded: bool
) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL to use, starting an embedded server when allowed and needed."""
    url = settings.effective_redis_url
    problem = await redis_problem(url)
    if problem is None:
        return url, None
    if not settings.redis_url_is_default:
        raise RedisUnavailableError(
            f"FACTORY_REDIS_URL={public_redis_url(url)} does not answer ({problem}). "
            "Start that Redis, or fix or unset FACTORY_REDIS_URL."
        )
    if not allow_embedded:
        raise RedisUnavailableError(
            f"No Redis answers at the default {DEFAULT_REDIS_URL} ({problem}). Start Redis there, "
            "set FACTORY_REDIS_URL, or use `factory up`, which starts an embedded Redis."
        )
    # Called on the event loop's thread on purpose: the child is tied to this thread's life.
    embedded = EmbeddedRedis()
    return embedded.start(), embedded


def _client_url(client: ArqRedis) -> str:
    """A URL reaching the same server and database as an injected client."""
    kwargs = client.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    user, password = kwargs.get("username"), kwargs.get("password")
    auth = f"{quote(user or '')}:{quote(password)}@" if password else ""
    if kwargs.get("path"):
        return f"unix://{auth}{kwargs['path']}?db={db}"
    return f"redis://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"
