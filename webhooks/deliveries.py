"""Record-once storage of deliveries: the unique delivery id decides who handles a delivery.

The row is written before any job is enqueued. A second INSERT of the same id (GitHub
redelivering, or another replica racing on the same delivery) fails on the unique constraint
and the delivery is answered as a duplicate. A delivery whose enqueue failed is marked
``failed`` so that GitHub's redelivery can claim it again instead of being stuck as duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.db.database import Database
from bot.db.models import DeliveryStatus, WebhookDelivery, utcnow


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    delivery_id: str
    event: str
    action: str | None
    installation_id: int | None
    repository: str | None
    sender: str | None
    payload_sha256: str
    status: DeliveryStatus
    reason: str | None
    jobs: Sequence[str]


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    delivery_id: str
    event: str
    action: str | None
    status: str
    payload_sha256: str


class DeliveryLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        # SQLite has one writer at a time; letting writers queue on its busy handler means
        # sleeps of 1-100 ms, so writes from this process wait their turn here instead.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if db.is_sqlite else None

    def _writing(self) -> AbstractAsyncContextManager[object]:
        return self._write_lock if self._write_lock is not None else nullcontext()

    async def claim(self, record: DeliveryRecord) -> bool:
        """Store ``record``; False when the delivery is already stored and did not fail."""
        values = {
            "delivery_id": record.delivery_id,
            "event": record.event,
            "action": record.action,
            "installation_id": record.installation_id,
            "repository": record.repository,
            "sender": record.sender,
            "payload_sha256": record.payload_sha256,
            "status": record.status.value,
            "reason": record.reason,
            "jobs": list(record.jobs),
            "received_at": utcnow(),
        }
        try:
            async with self._writing(), self._db.engine.begin() as conn:
                await conn.execute(insert(WebhookDelivery), values)
            return True
        except IntegrityError:
            pass
        # Only a failed delivery may be taken again, and only by one claimant: the status
        # condition makes the UPDATE the arbiter between racing replicas.
        retry = (
            update(WebhookDelivery)
            .where(
                WebhookDelivery.delivery_id == record.delivery_id,
                WebhookDelivery.status == DeliveryStatus.FAILED.value,
            )
            .values(values)
        )
        async with self._writing(), self._db.engine.begin() as conn:
            result = await conn.execute(retry)
        return result.rowcount == 1

    async def mark_failed(self, delivery_id: str, reason: str) -> None:
        statement = (
            update(WebhookDelivery)
            .where(WebhookDelivery.delivery_id == delivery_id)
            .values(status=DeliveryStatus.FAILED.value, reason=reason)
        )
        async with self._writing(), self._db.engine.begin() as conn:
            await conn.execute(statement)

    async def find(self, delivery_id: str) -> StoredDelivery | None:
        statement = select(
            WebhookDelivery.delivery_id,
            WebhookDelivery.event,
            WebhookDelivery.action,
            WebhookDelivery.status,
            WebhookDelivery.payload_sha256,
        ).where(WebhookDelivery.delivery_id == delivery_id)
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(statement)).first()
        return StoredDelivery(*row) if row is not None else None

    async def ids_starting_with(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = select(WebhookDelivery.delivery_id).where(
            WebhookDelivery.delivery_id.like(f"{escaped}%", escape="\\")
        )
        async with self._db.engine.connect() as conn:
            return list((await conn.execute(statement)).scalars())
