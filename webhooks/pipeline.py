"""One delivery, after its signature is checked: parse, filter, route, record once, enqueue.

Shared by the HTTP endpoint and by replay, so a replayed delivery takes exactly the path a
live one does.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from arq.connections import ArqRedis
from githubkit_schemas.latest.webhooks import VALID_EVENT_NAMES
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bot.db.database import Database
from bot.db.models import DeliveryStatus, Repository
from bot.settings import Settings
from webhooks.archive import PayloadArchive
from webhooks.context import EventContext, RouteEnv
from webhooks.deliveries import DeliveryLog, DeliveryRecord, StoredDelivery
from webhooks.handlers import build_router
from webhooks.jobs import PlannedJob, plan_jobs
from webhooks.payloads import Envelope
from webhooks.router import Ignore, Route, Router

log = logging.getLogger(__name__)

T = TypeVar("T")

# GitHub waits 10 s for an answer and does not retry on its own. The state store gets 3 s in
# all for one delivery (trigger label, claim, duplicate check), Redis 3 s to take its jobs and,
# when it does not, the store 1 s more to mark the delivery failed: 7 s at worst, then 503.
STORE_TIMEOUT_S = 3.0
ENQUEUE_TIMEOUT_S = 3.0
MARK_FAILED_TIMEOUT_S = 1.0
# The database is told to give up at the deadline; this is how much later the request stops
# waiting for it regardless (a pool that hands out no connection, a network that hangs).
_STORE_GRACE_S = 0.5
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


# Reads a repository's trigger label, giving up after the seconds it is given.
BoundedLabelLookup = Callable[[str, float], Awaitable[str | None]]


class _StoreBudget:
    """What is left of one delivery's state-store time."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._ends = self._loop.time() + seconds

    def left(self) -> float:
        return self._ends - self._loop.time()


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
        trigger_labels: BoundedLabelLookup,
        store_timeout_s: float = STORE_TIMEOUT_S,
        enqueue_timeout_s: float = ENQUEUE_TIMEOUT_S,
    ) -> None:
        self._router = router
        self._deliveries = deliveries
        self._archive = archive
        self._arq = arq
        self._facts = facts
        self._trigger_labels = trigger_labels
        self._store_timeout_s = store_timeout_s
        self._enqueue_timeout_s = enqueue_timeout_s

    async def process(self, *, event: str, delivery_id: str, body: bytes) -> DeliveryOutcome:
        ctx, route = self._parse(event, delivery_id, body)
        budget = _StoreBudget(self._store_timeout_s)
        jobs, reason = await self._decide(ctx, route, budget)
        status = DeliveryStatus.QUEUED if jobs else DeliveryStatus.IGNORED
        digest = hashlib.sha256(body).hexdigest()
        record = DeliveryRecord(
            delivery_id=delivery_id,
            event=event,
            action=ctx.action,
            installation_id=ctx.installation_id,
            repository=ctx.repository,
            sender=ctx.sender_login,
            payload_sha256=digest,
            status=status,
            reason=reason,
            jobs=[job.job_id for job in jobs],
        )
        claimed = await self._store_step(
            "record the delivery",
            delivery_id,
            budget,
            lambda within: self._deliveries.claim(record, within=within),
        )
        if not claimed:
            await self._duplicate(ctx, digest, jobs, budget)
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
        self, ctx: EventContext[Envelope], route: Route[Envelope] | None, budget: _StoreBudget
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
            lookup_trigger_label=lambda repository: self._store_step(
                "read the trigger label",
                ctx.delivery_id,
                budget,
                lambda within: self._trigger_labels(repository, within),
            ),
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

    async def _duplicate(
        self,
        ctx: EventContext[Envelope],
        digest: str,
        jobs: list[PlannedJob],
        budget: _StoreBudget,
    ) -> None:
        """A delivery id seen before: warn when the body differs, else resume its enqueue."""
        delivery_id = ctx.delivery_id
        stored = await self._store_step(
            "read the recorded delivery",
            delivery_id,
            budget,
            lambda within: self._deliveries.find(delivery_id, within=within),
        )
        if stored is not None and stored.payload_sha256 != digest:
            # Not GitHub redelivering (its redeliveries are byte for byte): a replayed or
            # forged id. Nothing of the new body is acted on, and the body is not logged.
            log.warning(
                "delivery %s reused with a different body (sha256 %s... recorded, %s... now): "
                "answered duplicate, nothing enqueued",
                delivery_id,
                stored.payload_sha256[:12],
                digest[:12],
            )
            return
        log.info("delivery %s (%s) is a duplicate", delivery_id, ctx.key)
        if jobs and stored is not None:
            await self._resume_enqueue(stored, jobs)

    async def _resume_enqueue(self, stored: StoredDelivery, jobs: list[PlannedJob]) -> None:
        """A redelivery of a recent, recorded delivery enqueues its jobs again.

        If the process died between recording and enqueueing, this is what gets the work
        going; otherwise arq still holds those job ids (queued, or their results for an hour)
        and the enqueue is a no-op. Older deliveries are left alone: their job results may
        have expired and re-running them could start work twice.
        """
        if stored.status != DeliveryStatus.QUEUED.value:
            return
        received = (
            stored.received_at
            if stored.received_at.tzinfo
            else stored.received_at.replace(tzinfo=UTC)
        )
        if datetime.now(UTC) - received > RESUME_WINDOW:
            return
        await self._enqueue(stored.delivery_id, jobs)

    async def _enqueue(self, delivery_id: str, jobs: list[PlannedJob]) -> None:
        try:
            async with asyncio.timeout(self._enqueue_timeout_s):
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
                await self._deliveries.mark_failed(
                    delivery_id, reason, within=MARK_FAILED_TIMEOUT_S
                )
            except (SQLAlchemyError, TimeoutError) as store_exc:
                # Still answer 503; the row stays "queued", so the redelivery is a duplicate
                # that enqueues the same job ids again (see _resume_enqueue).
                log.error(
                    "delivery %s: could not mark it failed: %s", delivery_id, _brief(store_exc)
                )
            raise Unavailable(reason) from exc

    async def _store_step(
        self,
        what: str,
        delivery_id: str,
        budget: _StoreBudget,
        step: Callable[[float], Awaitable[T]],
    ) -> T:
        """Run one state-store step within what is left of the delivery's store budget.

        Whatever stops it (a lock, a dead server, an exhausted pool) ends as ``Unavailable``
        naming the state store, so the request is answered 503 and GitHub may redeliver.
        """
        within = budget.left()
        try:
            if within <= 0:
                raise TimeoutError("no time left")
            async with asyncio.timeout(within + _STORE_GRACE_S):
                return await step(within)
        except (SQLAlchemyError, TimeoutError) as exc:
            log.error("delivery %s: state store could not %s: %s", delivery_id, what, _brief(exc))
            # The answer names the kind of failure only; details (hosts, SQL) stay in the log.
            kind = "timed out" if isinstance(exc, TimeoutError) else type(_cause(exc)).__name__
            raise Unavailable(f"state store unavailable ({what}): {kind}") from exc


def _cause(exc: BaseException) -> BaseException:
    """The driver's own exception (asyncpg's is the cause of SQLAlchemy's adapter's)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return exc.orig.__cause__ or exc.orig
    return exc


def _brief(exc: BaseException) -> str:
    """One line naming the problem: not the SQL, its parameters or a traceback."""
    if isinstance(exc, TimeoutError):
        return f"timed out{f' ({exc})' if str(exc) else ''}"
    detail = _cause(exc)
    first_line = str(detail).strip().splitlines()[0] if str(detail).strip() else ""
    return f"{type(detail).__name__}: {first_line}" if first_line else type(detail).__name__


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


def build_processor(
    *,
    settings: Settings,
    db: Database,
    arq: ArqRedis,
    store_timeout_s: float = STORE_TIMEOUT_S,
    enqueue_timeout_s: float = ENQUEUE_TIMEOUT_S,
) -> DeliveryProcessor:
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
        trigger_labels=TriggerLabelReader(db),
        store_timeout_s=store_timeout_s,
        enqueue_timeout_s=enqueue_timeout_s,
    )


class TriggerLabelReader:
    """A repository's configured trigger label (None when unknown or unset), read within a
    bound the database enforces (see ``Database.begin_within``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def __call__(self, repository: str, within: float) -> str | None:
        statement = select(Repository.trigger_label).where(Repository.full_name == repository)
        async with self._db.begin_within(within) as conn:
            return (await conn.execute(statement)).scalar_one_or_none()


def archive_dir(settings: Settings) -> Path:
    return settings.data_dir / "deliveries"
