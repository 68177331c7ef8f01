"""Live progress of runs on Redis pub/sub, one channel per run, for the API and dashboards."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger(__name__)


class Progress:
    def __init__(self, redis: Redis, *, channel_prefix: str) -> None:
        self.redis = redis
        # Channels are shared by every database of a Redis server: the prefix keeps two bots
        # (two apps) on one server apart.
        self.channel_prefix = channel_prefix

    def channel(self, feature_id: int) -> str:
        return f"{self.channel_prefix}:feature:{feature_id}"

    async def publish(self, feature_id: int, message: Mapping[str, Any]) -> None:
        """Losing a message here is harmless: listeners read the run's state from the store."""
        try:
            payload = json.dumps({"feature": feature_id, **message}, default=str)
            await self.redis.publish(self.channel(feature_id), payload)
        except Exception:
            log.debug("publish failed", exc_info=True)
