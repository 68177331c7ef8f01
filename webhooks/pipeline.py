"""One delivery, after its signature is checked: parse, filter, route, record once, enqueue.

Shared by the HTTP endpoint and by replay, so a replayed delivery takes exactly the path a
live one does.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from arq.connections import ArqRedis
from githubkit_schemas.latest.webhooks import VALID_EVENT_NAMES
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from bot.db.database import Database
from bot.db.models import DeliveryStatus
from bot.settings import Settings
from webhooks.archive import PayloadArchive
from webhooks.context import EventContext, RouteEnv, TriggerLabelLookup
from webhooks.deliveries import DeliveryLog, DeliveryRecord
from webhooks.handlers import build_router
from webhooks.jobs import PlannedJob, plan_jobs
from webhooks.labels import TriggerLabels
from webhooks.payloads import Envelope
from webhooks.router import Ignore, Route, Router

log = logging.getLogger(__name__)

# GitHub waits 10 s for an answer; a Redis that has not taken the jobs by then is down.
ENQUEUE_TIMEOUT_S = 5.0
# Well inside arq's keep_result (one hour): within it a finished job's id still dedupes.
RESUME_WINDOW = timedelta(minutes=30)


class BadDelivery(Exception):
    """The delivery cannot be understood (answered 400); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(Exception):
    """The state store or the queue did not take the delivery (answered 503, so GitHub
    may redeliver); ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivery_id: str
    status: DeliveryStatus
    jobs: list[str] = field(default_factory=list)
    reason: str | None = None

    def as_json(self) -> dict[str, object]:
        answer: dict[str, object] = {
            "delivery": self.delivery_id,
            "status": self.status.value,
            "jobs": self.jobs,
        }
        if self.reason is not None:
            answer["reason"] = self.reason
        return answer


@dataclass(frozen=True, slots=True)
class BotFacts:
    bot_login: str
    app_id: int | None
    default_trigger_label: str


class DeliveryProcessor:
    def __init__(
        self,
        *,
        router: Router,
        deliveries: DeliveryLog,
        archive: PayloadArchive,
        arq: ArqRedis,
        facts: BotFacts,
        trigger_labels: TriggerLabelLookup,
    ) -> None:
        self._router = router
        self._deliveries = deliveries
        self._archive = archive
        self._arq = arq
        self._facts = facts
        self._trigger_labels = trigger_labels

    async def process(self, *, event: str, delivery_id: str, body: bytes) -> DeliveryOutcome:
        ctx, route = self._parse(event, delivery_id, body)
        try:
            jobs, reason = await self._decide(ctx, route)
        except SQLAlchemyError as exc:
            log.error("delivery %s: could not read repository settings: %s", delivery_id, exc)
            raise Unavailable(f"state store unavailable: {type(exc).__name__}") from exc
        status = DeliveryStatus.QUEUED if jobs else DeliveryStatus.IGNORED
        record = DeliveryRecord(
            delivery_id=delivery_id,
            event=event,
            action=ctx.action,
            installation_id=ctx.installation_id,
            repository=ctx.repository,
            sender=ctx.sender_login,
            payload_sha256=hashlib.sha256(body).hexdigest(),
            status=status,
            reason=reason,
            jobs=[job.job_id for job in jobs],
        )
        try:
            claimed = await self._deliveries.claim(record)
        except SQLAlchemyError as exc:
            log.error("delivery %s: could not record it: %s", delivery_id, exc)
            raise Unavailable(f"state store unavailable: {type(exc).__name__}") from exc
        if not claimed:
            log.info("delivery %s (%s) is a duplicate", delivery_id, ctx.key)
            if jobs:
                await self._resume_enqueue(delivery_id, jobs)
            return DeliveryOutcome(delivery_id, DeliveryStatus.DUPLICATE, [], "already received")
        self._archive_body(delivery_id, event, body)
        if jobs:
            await self._enqueue(delivery_id, jobs)
        log.info(
            "delivery %s (%s): %s %s",
            delivery_id,
            ctx.key,
            status.value,
            reason if reason is not None else ", ".join(job.job_id for job in jobs),
        )
        return DeliveryOutcome(delivery_id, status, [job.job_id for job in jobs], reason)

    def _parse(
        self, event: str, delivery_id: str, body: bytes
    ) -> tuple[EventContext[Envelope], Route[Envelope] | None]:
        if event not in VALID_EVENT_NAMES:
            raise BadDelivery(f"unknown event {event!r}")
        # Validating straight from the raw bytes, twice (action, then the route's view),
        # costs less than building the whole payload as Python objects once.
        try:
            action = _Action.model_validate_json(body).action
        except ValidationError as exc:
            raise BadDelivery(_json_problem(exc, event)) from None
        route = self._router.route_for(event, action)
        model = route.payload if route is not None else Envelope
        try:
            payload = model.model_validate_json(body)
        except ValidationError as exc:
            key = f"{event}.{action}" if action else event
            raise BadDelivery(f"payload does not fit {key}: {_summary(exc)}") from None
        return EventContext(delivery_id, event, payload), route

    async def _decide(
        self, ctx: EventContext[Envelope], route: Route[Envelope] | None
    ) -> tuple[list[PlannedJob], str | None]:
        facts = self._facts
        if ctx.is_bot and not (
            route is not None and route.accepts_own_bot and ctx.sender_login == facts.bot_login
        ):
            # Checked before routing: reacting to bots, this app included, is how bots loop.
            return [], f"sender {ctx.sender_login} is a bot"
        if route is None:
            return [], f"no handler for {ctx.key}"
        if route.needs_installation and ctx.installation_id is None:
            return [], f"{ctx.key} carries no installation: not a delivery to this GitHub App"
        env = RouteEnv(
            bot_login=facts.bot_login,
            app_id=facts.app_id,
            default_trigger_label=facts.default_trigger_label,
            lookup_trigger_label=self._trigger_labels,
        )
        result = await route(ctx, env)
        if isinstance(result, Ignore):
            return [], result.reason
        if not result:
            return [], f"no jobs for {ctx.key}"
        return plan_jobs(ctx.delivery_id, result), None

    def _archive_body(self, delivery_id: str, event: str, body: bytes) -> None:
        try:
            self._archive.save(delivery_id, event, body)
        except OSError as exc:
            # Losing the replay copy must not lose the delivery itself.
            log.warning("could not archive delivery %s for replay: %s", delivery_id, exc)

    async def _resume_enqueue(self, delivery_id: str, jobs: list[PlannedJob]) -> None:
        """A redelivery of a recent, recorded delivery enqueues its jobs again.

        If the process died between recording and enqueueing, this is what gets the work
        going; otherwise arq still holds those job ids (queued, or their results for an hour)
        and the enqueue is a no-op. Older deliveries are left alone: their job results may
        have expired and re-running them could start work twice.
        """
        stored = await self._deliveries.find(delivery_id)
        if stored is None or stored.status != DeliveryStatus.QUEUED.value:
            return
        received = stored.received_at if stored.received_at.tzinfo else stored.received_at.replace(tzinfo=UTC)
        if datetime.now(UTC) - received > RESUME_WINDOW:
            return
        await self._enqueue(delivery_id, jobs)

    async def _enqueue(self, delivery_id: str, jobs: list[PlannedJob]) -> None:
        try:
            async with asyncio.timeout(ENQUEUE_TIMEOUT_S):
                # A job id arq already holds comes back as None: that work is queued already.
                await asyncio.gather(
                    *(
                        self._arq.enqueue_job(job.function, _job_id=job.job_id, **job.kwargs)
                        for job in jobs
                    )
                )
        except (RedisError, OSError, TimeoutError) as exc:
            reason = f"enqueue failed: {type(exc).__name__}: {exc}"
            log.error("delivery %s: %s", delivery_id, reason)
            try:
                await self._deliveries.mark_failed(delivery_id, reason)
            except SQLAlchemyError as store_exc:
                # Still answer 503; the row stays "queued" and a redelivery is a duplicate.
                log.error("delivery %s: could not mark it failed: %s", delivery_id, store_exc)
            raise Unavailable(reason) from exc


class _Action(BaseModel):
    action: str | None = None


def _json_problem(exc: ValidationError, event: str) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    if error["type"] == "json_invalid":
        return f"malformed JSON: {error['msg'].removeprefix('Invalid JSON: ')}"
    if error["type"] in ("model_type", "model_attributes_type"):
        return "payload is not a JSON object"
    return f"payload does not fit {event}: {_summary(exc)}"


def _summary(exc: ValidationError, limit: int = 3) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in errors]
    more = f" (and {len(parts) - limit} more)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def build_processor(*, settings: Settings, db: Database, arq: ArqRedis) -> DeliveryProcessor:
    """The processor the endpoint and replay share, wired from settings."""
    return DeliveryProcessor(
        router=build_router(),
        deliveries=DeliveryLog(db),
        archive=PayloadArchive(archive_dir(settings)),
        arq=arq,
        facts=BotFacts(
            bot_login=settings.bot_login,
            app_id=settings.app_id,
            default_trigger_label=settings.trigger_label,
        ),
        trigger_labels=TriggerLabels(db),
    )


def archive_dir(settings: Settings) -> Path:
    return settings.data_dir / "deliveries"
