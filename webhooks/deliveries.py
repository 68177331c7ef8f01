"""Record-once storage of deliveries: the unique delivery id decides who handles a delivery.

The row is written before any job is enqueued. A second insert of the same id (GitHub
redelivering, or another replica racing on the same delivery) conflicts on the unique
constraint and that claimant is answered "duplicate". A delivery whose enqueue failed is
marked ``failed`` so that GitHub's redelivery can claim it again instead of being stuck as a
duplicate; the ``status = 'failed'`` condition on that UPDATE lets only one claimant win.

Claims made while a write is in flight are written together in the next transaction (group
commit): ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` tells which rows were new, so a
burst of deliveries costs one commit, not one each.

Every call takes ``within``, the seconds its caller can wait, and the database itself is told to
give up by then (see ``Database.begin_within``): a stuck lock costs an ingress request its
state-store budget, not SQLite's busy timeout. A claim is never half-recorded: it is either
committed and answered to its claimant, or rolled back; a claimant that stopped waiting while its
row was being committed has that row marked ``failed``, so GitHub's redelivery takes it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.db.database import Database
from bot.db.models import DeliveryStatus, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

_TABLE = cast(Table, WebhookDelivery.__table__)

# 12 columns a row: far below SQLite's 32,766 bound parameters per statement.
MAX_BATCH = 500
# For callers without a deadline of their own (replay, tests): the workers' patience.
DEFAULT_WITHIN_S = 30.0
# The database gives up at the claim's deadline; the claimant waits this much longer for the
# answer (SQLite's busy handler sleeps up to 100 ms at a time) before it stops waiting.
_ANSWER_GRACE_S = 1.0
# Marking an abandoned claim failed; it runs between batches, so it must be short.
_RELEASE_WITHIN_S = 1.0


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


@dataclass(frozen=True, slots=True)
class _Claim:
    record: DeliveryRecord
    decided: asyncio.Future[bool]
    deadline: float  # event-loop time after which the claimant no longer waits


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

    async def claim(self, record: DeliveryRecord, *, within: float = DEFAULT_WITHIN_S) -> bool:
        """Store ``record``; False when the delivery is already stored and did not fail.

        Raises the database's error, or TimeoutError, when it cannot be stored ``within``
        seconds; the delivery is then not recorded.
        """
        loop = asyncio.get_running_loop()
        claim = _Claim(record, loop.create_future(), loop.time() + within)
        self._pending.append(claim)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        try:
            async with asyncio.timeout(within + _ANSWER_GRACE_S):
                # Not shielded: a claimant that stops waiting cancels its future, which tells
                # the flusher to leave the row out, or to release it if already written.
                return await claim.decided
        except TimeoutError:
            raise TimeoutError(f"not recorded within {within:.1f} s") from None

    async def mark_failed(
        self, delivery_id: str, reason: str, *, within: float = DEFAULT_WITHIN_S
    ) -> None:
        await self._set_failed([delivery_id], reason, within)

    async def find(
        self, delivery_id: str, *, within: float = DEFAULT_WITHIN_S
    ) -> StoredDelivery | None:
        statement = select(
            WebhookDelivery.delivery_id,
            WebhookDelivery.event,
            WebhookDelivery.action,
            WebhookDelivery.status,
            WebhookDelivery.payload_sha256,
            WebhookDelivery.received_at,
        ).where(WebhookDelivery.delivery_id == delivery_id)
        async with self._db.begin_within(within) as conn:
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
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                async with self._write_lock:
                    live = _still_waiting(batch, loop.time())
                    if not live:
                        continue
                    # The earliest deadline bounds the write: nobody is answered late.
                    within = min(claim.deadline for claim in live) - loop.time()
                    async with self._db.begin_within(within) as conn:
                        winners = await self._write(conn, [claim.record for claim in live])
            except Exception as exc:  # noqa: BLE001 - handed to the waiters, not swallowed
                # Every waiter learns the outcome; nobody is left waiting on a lost write.
                for claim in batch:
                    if not claim.decided.done():
                        claim.decided.set_exception(exc)
                continue
            except BaseException:
                for claim in batch:
                    claim.decided.cancel()
                raise
            abandoned: list[str] = []
            for claim in live:
                won = winners.get(claim.record.delivery_id) is claim.record
                if not claim.decided.done():
                    claim.decided.set_result(won)
                elif won:
                    abandoned.append(claim.record.delivery_id)
            if abandoned:
                await self._release(abandoned)

    async def _release(self, delivery_ids: list[str]) -> None:
        """Rows committed after their requests stopped waiting (timed out, cancelled): nobody
        answered GitHub 2xx for them, so its redelivery must be able to retake them."""
        try:
            await self._set_failed(
                delivery_ids, "recorded after its request had stopped waiting", _RELEASE_WITHIN_S
            )
        except (SQLAlchemyError, TimeoutError) as exc:
            # Left "queued": a redelivery is a duplicate and re-enqueues the same jobs.
            log.error("deliveries %s: could not release late claims: %s", delivery_ids, exc)
        else:
            log.warning(
                "deliveries %s were recorded after their requests stopped waiting: marked failed",
                delivery_ids,
            )

    async def _set_failed(self, delivery_ids: list[str], reason: str, within: float) -> None:
        statement = (
            update(WebhookDelivery)
            .where(WebhookDelivery.delivery_id.in_(delivery_ids))
            .values(status=DeliveryStatus.FAILED.value, reason=reason)
        )
        async with asyncio.timeout(within + _ANSWER_GRACE_S):
            async with self._write_lock, self._db.begin_within(within) as conn:
                await conn.execute(statement)

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


def _still_waiting(batch: list[_Claim], now: float) -> list[_Claim]:
    """The claims still worth writing; those whose deadline passed in the queue are told so."""
    live = []
    for claim in batch:
        if claim.decided.done():
            continue  # its claimant stopped waiting before the write began
        if claim.deadline <= now:
            claim.decided.set_exception(TimeoutError("not written before the deadline"))
            continue
        live.append(claim)
    return live
