"""Re-run a recorded delivery, or a payload file, through the live delivery pipeline.

Only the signature check is skipped: the operator vouches for the payload. A replay gets a
new delivery id, ``replay-<original>-<n>``, so record-once does not answer it as a duplicate
and its jobs get fresh ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from arq.connections import ArqRedis

from bot.db.database import Database
from bot.settings import Settings
from webhooks.archive import PayloadArchive
from webhooks.deliveries import DEFAULT_WITHIN_S, DeliveryLog
from webhooks.pipeline import (
    BadDelivery,
    DeliveryOutcome,
    Unavailable,
    archive_dir,
    build_processor,
)

REPLAY_PREFIX = "replay-"
# Nobody's 10 s window applies to an operator's replay: the store may take as long as it does
# for the workers.
REPLAY_STORE_TIMEOUT_S = DEFAULT_WITHIN_S
# Delivery ids are at most 64 characters: room for the prefix and a counter.
_ORIGIN_CHARS = 48


class ReplayError(Exception):
    """The replay could not run; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    original: str
    outcome: DeliveryOutcome

    @property
    def delivery_id(self) -> str:
        return self.outcome.delivery_id


async def replay(
    *,
    settings: Settings,
    db: Database,
    arq: ArqRedis,
    delivery_id: str | None = None,
    payload_path: Path | None = None,
    event: str | None = None,
) -> ReplayOutcome:
    """Replay the stored delivery ``delivery_id``, or the payload at ``payload_path``
    (which needs ``event``, the X-GitHub-Event name)."""
    deliveries = DeliveryLog(db)
    if delivery_id is not None and payload_path is None:
        body, event, origin = await _stored(deliveries, settings, delivery_id, event)
    elif payload_path is not None and delivery_id is None:
        if event is None:
            raise ReplayError("a payload file needs its event name (the X-GitHub-Event header)")
        try:
            body = payload_path.read_bytes()
        except OSError as exc:
            raise ReplayError(f"cannot read {payload_path}: {exc}") from None
        origin = f"file-{hashlib.sha256(body).hexdigest()[:12]}"
    else:
        raise ReplayError("give either a delivery id or a payload file, not both")
    new_id = await _next_id(deliveries, origin)
    processor = build_processor(
        settings=settings, db=db, arq=arq, store_timeout_s=REPLAY_STORE_TIMEOUT_S
    )
    try:
        outcome = await processor.process(event=event, delivery_id=new_id, body=body)
    except BadDelivery as exc:
        raise ReplayError(f"payload rejected: {exc.reason}") from None
    except Unavailable as exc:
        raise ReplayError(exc.reason) from None
    return ReplayOutcome(delivery_id or str(payload_path), outcome)


async def _stored(
    deliveries: DeliveryLog, settings: Settings, delivery_id: str, event: str | None
) -> tuple[bytes, str, str]:
    stored = await deliveries.find(delivery_id)
    if stored is None:
        raise ReplayError(f"no delivery {delivery_id!r} was recorded")
    archive = PayloadArchive(archive_dir(settings))
    body = archive.load(delivery_id)
    if body is None:
        raise ReplayError(
            f"the payload of delivery {delivery_id!r} is no longer archived under "
            f"{archive.root} (bodies are kept for a limited time); replay it from a file "
            "with --payload and --event"
        )
    if hashlib.sha256(body).hexdigest() != stored.payload_sha256:
        raise ReplayError(
            f"the archived payload of {delivery_id!r} does not match its recorded digest"
        )
    return body, event or stored.event, delivery_id


async def _next_id(deliveries: DeliveryLog, origin: str) -> str:
    stem = f"{REPLAY_PREFIX}{origin[:_ORIGIN_CHARS]}-"
    taken = await deliveries.ids_starting_with(stem)
    counters = [int(tail) for tail in (ident[len(stem) :] for ident in taken) if tail.isdigit()]
    return f"{stem}{max(counters, default=0) + 1}"
