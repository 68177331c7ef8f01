"""Installation access tokens shared by every worker through Redis.

GitHub allows an installation token one hour of life and rate-limits minting. Each token is
kept in Redis until ``refresh_margin`` before it expires; when it is missing, one worker takes
a Redis lock and mints while the others wait for the lock and then read what it stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import LockError

logger = logging.getLogger(__name__)

# Deletes the cached token only if it is still the one the caller saw rejected, so a worker
# holding a stale token cannot throw away a fresh one another worker just minted.
_DELETE_IF_SAME = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class InstallationToken:
    """A token that acts as one installation; ``token`` is kept out of ``repr``."""

    token: str = field(repr=False)
    expires_at: datetime


Minter = Callable[[int], Awaitable[InstallationToken]]


class InstallationTokenCache:
    """Gets a valid token for an installation, minting at most once across all workers."""

    def __init__(
        self,
        redis: Redis,
        mint: Minter,
        *,
        key_prefix: str,
        refresh_margin: timedelta = timedelta(minutes=5),
        lock_timeout: float = 30.0,
    ) -> None:
        self._redis = redis
        self._mint = mint
        self._prefix = key_prefix.rstrip(":")
        self._margin = refresh_margin
        self._lock_timeout = lock_timeout

    def _key(self, installation_id: int) -> str:
        return f"{self._prefix}:installation:{installation_id}:token"

    async def get(self, installation_id: int) -> InstallationToken:
        key = self._key(installation_id)
        if (cached := await self._read(key)) is not None:
            return cached
        lock = self._redis.lock(
            f"{key}:lock",
            timeout=self._lock_timeout,
            sleep=0.05,
            blocking_timeout=self._lock_timeout + 5,
        )
        if not await lock.acquire():
            # Redis is up but the holder neither finished nor released in time: a spare
            # token is better than a failed job.
            logger.warning("token lock for installation %d timed out; minting", installation_id)
            return await self._mint_and_store(installation_id, key)
        try:
            if (cached := await self._read(key)) is not None:
                return cached
            return await self._mint_and_store(installation_id, key)
        finally:
            # LockError: minting outlived the lock, which has expired on its own.
            with contextlib.suppress(LockError):
                await lock.release()

    async def invalidate(self, installation_id: int, token: str) -> None:
        """Forget ``token`` (GitHub rejected it) unless another worker already replaced it."""
        # redis-py types the asyncio client's eval as possibly synchronous.
        await self._redis.eval(_DELETE_IF_SAME, 1, self._key(installation_id), token)  # type: ignore[misc]

    async def _read(self, key: str) -> InstallationToken | None:
        raw = await self._redis.get(key)
        if raw is None:
            return None
        data = json.loads(raw)
        return InstallationToken(data["token"], datetime.fromisoformat(data["expires_at"]))

    async def _mint_and_store(self, installation_id: int, key: str) -> InstallationToken:
        minted = await self._mint(installation_id)
        ttl = minted.expires_at - datetime.now(UTC) - self._margin
        if ttl >= timedelta(seconds=1):
            value = json.dumps({"token": minted.token, "expires_at": minted.expires_at.isoformat()})
            await self._redis.set(key, value, px=int(ttl.total_seconds() * 1000))
        return minted
