"""Record-once storage of deliveries: the unique delivery id decides who handles a delivery.

The row is written before any job is enqueued. A second insert of the same id (GitHub
redelivering, or another replica racing on the same delivery) conflicts on the unique
constraint and that claimant is answered "duplicate". A delivery whose enqueue failed is
marked ``failed`` so that GitHub's redelivery can claim it again instead of being stuck as a
duplicate; the ``status = 'failed'`` condition on that UPDATE lets only one claimant win.

Claims made while a write is in flight are written together in the next transaction (group
commit): ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` tells which rows were new, so a
burst of deliveries costs one commit, not one each.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.db.database import Database
from bot.db.models import DeliveryStatus, WebhookDelivery, utcnow

_TABLE = cast(Table, WebhookDelivery.__table__)

# 12 columns a row: far below SQLite's 32,766 bound parameters per statement.
MAX_BATCH = 500


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

    def row(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "event": self.event,
            "action": self.action,
            "installation_id": self.installation_id,
            "repository": self.repository,
            "sender": self.sender,
            "payload_sha256": self.payload_sha256,
            "status": self.status.value,
            "reason": self.reason,
            "jobs": list(self.jobs),
            "received_at": utcnow(),
        }


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    delivery_id: str
    event: str
    action: str | None
    status: str
    payload_sha256: str
    received_at: datetime


_Claim = tuple[DeliveryRecord, "asyncio.Future[bool]"]


class DeliveryLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        dialect = db.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"record-once needs SQLite or PostgreSQL, not {dialect}")
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        # One statement for every batch size (executemany): SQLAlchemy compiles it once and
        # sends the rows as multi-row VALUES, keeping RETURNING.
        self._insert_new = (
            insert(_TABLE)
            .on_conflict_do_nothing(index_elements=[_TABLE.c.delivery_id])
            .returning(_TABLE.c.delivery_id)
        )
        # One writer per process: SQLite admits one anyway, and a writer left to its busy
        # handler sleeps 1-100 ms; queued claims are batched into the next write instead.
        self._write_lock = asyncio.Lock()
        self._pending: list[_Claim] = []
        self._flusher: asyncio.Task[None] | None = None

    async def claim(self, record: DeliveryRecord) -> bool:
        """Store ``record``; False when the delivery is already stored and did not fail."""
        loop = asyncio.get_running_loop()
        decided: asyncio.Future[bool] = loop.create_future()
        self._pending.append((record, decided))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await decided

    async def mark_failed(self, delivery_id: str, reason: str) -> None:
        statement = (
            update(WebhookDelivery)
            .where(WebhookDelivery.delivery_id == delivery_id)
            .values(status=DeliveryStatus.FAILED.value, reason=reason)
        )
        async with self._write_lock, self._db.engine.begin() as conn:
            await conn.execute(statement)

    async def find(self, delivery_id: str) -> StoredDelivery | None:
        statement = select(
            WebhookDelivery.delivery_id,
            WebhookDelivery.event,
            WebhookDelivery.action,
            WebhookDelivery.status,
            WebhookDelivery.payload_sha256,
            WebhookDelivery.received_at,
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

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                async with self._write_lock, self._db.engine.begin() as conn:
                    winners = await self._write(conn, [record for record, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to the waiters, not swallowed
                # Every waiter learns the outcome; nobody is left waiting on a lost write.
                for _, decided in batch:
                    if not decided.done():
                        decided.set_exception(exc)
                continue
            except BaseException:
                for _, decided in batch:
                    decided.cancel()
                raise
            for record, decided in batch:
                if not decided.done():
                    decided.set_result(winners.get(record.delivery_id) is record)

    async def _write(
        self, conn: AsyncConnection, records: list[DeliveryRecord]
    ) -> dict[str, DeliveryRecord]:
        """Write new deliveries and retake failed ones; returns the winning record by id."""
        first: dict[str, DeliveryRecord] = {}
        for record in records:
            # The same delivery twice in one batch: the first is the claimant.
            first.setdefault(record.delivery_id, record)
        rows = [record.row() for record in first.values()]
        inserted = set((await conn.execute(self._insert_new, rows)).scalars())
        winners = {delivery_id: first[delivery_id] for delivery_id in inserted}
        for delivery_id, record in first.items():
            if delivery_id in inserted:
                continue
            retake = (
                update(_TABLE)
                .where(
                    _TABLE.c.delivery_id == delivery_id,
                    _TABLE.c.status == DeliveryStatus.FAILED.value,
                )
                .values(record.row())
            )
            if (await conn.execute(retake)).rowcount == 1:
                winners[delivery_id] = record
        return winners
