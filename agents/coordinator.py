"""The coordinator: drives one feature run through its stages, durably and exactly once.

Every step is an arq job with a deterministic id. The database holds the truth (feature state,
tasks, audit); GitHub effects are find-or-create by hidden markers, so re-running a step after
a crash does nothing twice. Agents never call each other: a step returns a result and
:meth:`Coordinator.run_step` decides and enqueues what comes next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from agents.budget import spent_in
from agents.checks import CheckSync
from bot.contracts.lifecycle import STAGE_ORDER, Decision, Outcome, Stage, decide, next_enabled, stage_for_state
from agents.liveness import Liveness
from agents.stages import FeatureView, StageAgent, StepContext, StepResult
from agents.status_comment import StageLine, StatusView, render_status, status_marker
from bot.contracts.lifecycle import FeatureState, TaskState
from bot.db import AuditEvent, Database, Feature, Task
from bot.db.models import utcnow

log = logging.getLogger(__name__)

_WAITING = (FeatureState.QUEUED, FeatureState.AWAITING_APPROVAL, FeatureState.AWAITING_CLARIFICATION)


class TransientError(Exception):
    """A failure worth retrying later (GitHub 5xx, rate limits, LLM overload)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def transient_delay(exc: BaseException) -> float | None:
    """Seconds to wait before retrying after ``exc``, or None when retrying cannot help."""
    from bot.github.errors import GitHubError, GitHubRateLimited

    if isinstance(exc, GitHubRateLimited):
        return max(1.0, exc.retry_after)
    if isinstance(exc, GitHubError) and (exc.status is None or exc.status >= 500):
        return 5.0
    if isinstance(exc, TransientError):
        return exc.retry_after_s or 5.0
    return None


@dataclass(frozen=True)
class CoordinatorConfig:
    max_rounds: int = 3
    max_concurrent_runs: int = 2
    job_timeout_s: int = 1800
    server_url: str = "https://github.com"
    max_step_tries: int = 5
    # Pub/sub channels are shared by every database of a Redis server: the prefix keeps two
    # bots (two apps) on one server apart.
    channel_prefix: str = "factory"


def step_job_id(feature_id: int, stage: Stage, round_: int, attempt: int) -> str:
    return f"feature:{feature_id}:{stage.value}:r{round_}:a{attempt}"


def active_key(repository: str, issue_number: int) -> str:
    return f"{repository.lower()}#{issue_number}"


@dataclass
class RunContext:
    """Per-repository things a step needs; built by :class:`Coordinator`'s ``open_repo``."""

    github: Any
    config: Any
    tools: Any
    enabled: frozenset[Stage]
    extras: dict[str, Any] = field(default_factory=dict)


OpenRepo = Callable[[int, str], Awaitable[RunContext]]


class Coordinator:
    def __init__(
        self,
        *,
        db: Database,
        queue: ArqRedis,
        agents: Mapping[Stage, StageAgent],
        open_repo: OpenRepo,
        liveness: Liveness,
        config: CoordinatorConfig,
        clock: Callable[[], datetime] = utcnow,
        on_step_failed: Callable[[FeatureView, Stage, str], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.agents = dict(agents)
        self.open_repo = open_repo
        self.liveness = liveness
        self.config = config
        self.clock = clock
        self.on_step_failed = on_step_failed

    # ------------------------------------------------------------------ starting a run

    async def start_feature(
        self,
        *,
        installation_id: int,
        repository: str,
        issue_number: int,
        sender: str,
        delivery_id: str,
        guidance: str | None = None,
        cause: str = "label",
    ) -> tuple[Feature, bool]:
        """Create the run for an issue, or return the active one. ``True`` when created here.

        The unique ``active_key`` makes two racing starts (two labels, two replicas) end in
        one run; a re-run of the same job finds its own feature by the trigger delivery.
        """
        key = active_key(repository, issue_number)
        async with self.db.session() as s:
            existing = await s.scalar(select(Feature).where(Feature.active_key == key))
            if existing is not None:
                return existing, existing.trigger_delivery == delivery_id
            running = await s.scalar(
                select(func.count(Feature.id)).where(
                    Feature.installation_id == installation_id,
                    Feature.active_key.is_not(None),
                    Feature.state != FeatureState.QUEUED.value,
                )
            )
            state = (
                FeatureState.QUEUED
                if (running or 0) >= self.config.max_concurrent_runs
                else FeatureState.PLANNING
            )
            feature = Feature(
                installation_id=installation_id,
                repository=repository,
                issue_number=issue_number,
                active_key=key,
                state=state.value,
                triggered_by=sender,
                trigger_delivery=delivery_id,
                guidance=guidance,
            )
            s.add(feature)
            try:
                await s.flush()
            except IntegrityError:
                await s.rollback()
                async with self.db.session() as s2:
                    other = await s2.scalar(select(Feature).where(Feature.active_key == key))
                if other is None:  # the winner already finished: extremely unlikely, retry
                    raise TransientError("feature start raced with a finishing run") from None
                return other, other.trigger_delivery == delivery_id
            s.add(
                AuditEvent(
                    feature_id=feature.id,
                    repository=repository,
                    actor=sender,
                    kind="feature.created",
                    to_state=state.value,
                    cause=f"{cause} (delivery {delivery_id})",
                )
            )
        await self.publish(feature.id, {"event": "created", "state": feature.state})
        return feature, True

    async def kick(self, feature_id: int) -> None:
        """Enqueue whatever the feature's current state needs (idempotent)."""
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            if feature is None or FeatureState(feature.state).is_terminal:
                return
            stage = stage_for_state(FeatureState(feature.state))
            if stage is None:
                return
            await self._enqueue_step(feature, stage)

    async def _enqueue_step(self, feature: Feature, stage: Stage) -> str:
        job_id = step_job_id(feature.id, stage, feature.round, feature.attempt)
        await self.queue.enqueue_job(
            "run_step",
            feature_id=feature.id,
            stage=stage.value,
            round=feature.round,
            attempt=feature.attempt,
            _job_id=job_id,
        )
        return job_id

    # ------------------------------------------------------------------ one step

    async def run_step(
        self, *, feature_id: int, stage: Stage, round_: int, attempt: int, job_id: str, job_try: int
    ) -> str:
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            if feature is None:
                return "gone"
            if (
                FeatureState(feature.state).is_terminal
                or feature.state != stage.state.value
                or feature.round != round_
                or feature.attempt != attempt
            ):
                return "stale"
            task = await s.scalar(
                select(Task).where(
                    Task.feature_id == feature_id, Task.kind == stage.value, Task.round == round_
                )
            )
            if task is None:
                task = Task(feature_id=feature_id, kind=stage.value, round=round_)
                s.add(task)
            # A try of this very step that checkpointed and never finished: its worker died.
            resume = (
                list(task.trajectory)
                if task.outcome is None and task.attempt == attempt and task.trajectory
                else None
            )
            if task.outcome is None or task.attempt != attempt:
                task.outcome = None
                task.state = TaskState.RUNNING.value
                task.attempt = attempt
                task.job_id = job_id
                task.started_at = self.clock()
                task.error = None
            await s.flush()
            task_id = task.id
            done_outcome = task.outcome
            view = _view(feature)
            # What earlier tries and attempts of this step spent (a crashed try's checkpoints
            # included): this try adds to it, so the run's cost and budget count every call.
            spending = _StepSpending(float(task.cost_usd or 0.0), int(task.tokens or 0))

        if done_outcome is not None:
            # The step finished before a crash; only its consequences are left to apply.
            return await self._apply(feature_id, stage, Outcome(done_outcome), round_, attempt)

        await self.liveness.claim(job_id, self.config.job_timeout_s + 60)
        try:
            run = await self.open_repo(view.installation_id, view.repository)
            await self.refresh_status(feature_id, run)
            result = await self._execute(
                view, stage, attempt, run, task_id, job_try, spending, resume
            )
        finally:
            await self.liveness.release(job_id)

        async with self.db.session() as s:
            task = await s.get(Task, task_id)
            assert task is not None
            task.outcome = result.outcome.value
            task.state = (
                TaskState.FAILED.value if result.outcome is Outcome.FAILED else TaskState.SUCCEEDED.value
            )
            task.finished_at = self.clock()
            task.result_summary = result.summary[:4000]
            task.error = result.details[:8000] if result.outcome is Outcome.FAILED else None
            spending.add(result.cost_usd, result.tokens)
            task.cost_usd, task.tokens = spending.total
            if result.trajectory is not None:
                task.trajectory = result.trajectory
            task.effects = {**(task.effects or {}), "details": result.details[:20000]}
            await s.flush()
            await _update_feature_totals(s, feature_id)
            s.add(
                AuditEvent(
                    feature_id=feature_id,
                    repository=view.repository,
                    actor="agent-factory",
                    kind=f"step.{stage.value}.{result.outcome.value}",
                    cause=f"job {job_id}",
                    details={"summary": result.summary[:500], "cost_usd": result.cost_usd},
                )
            )
        if result.outcome is Outcome.FAILED and self.on_step_failed is not None:
            try:
                await self.on_step_failed(view, stage, f"{result.summary}\n{result.details}".strip())
            except Exception:  # remembering a failure must never block the run's own ending
                log.warning("could not record the failure of feature %s", feature_id, exc_info=True)
        return await self._apply(feature_id, stage, result.outcome, round_, attempt, run=run, detail=result.summary)

    async def _execute(
        self,
        view: FeatureView,
        stage: Stage,
        attempt: int,
        run: RunContext,
        task_id: int,
        job_try: int,
        spending: _StepSpending,
        resume: list[dict[str, Any]] | None = None,
    ) -> StepResult:
        agent = self.agents.get(stage)
        if agent is None:
            return StepResult(Outcome.SUCCEEDED, f"{stage.title} is not enabled")

        async def checkpoint(trajectory: list[dict[str, Any]]) -> None:
            spending.add(*spent_in(trajectory))
            async with self.db.session() as s:
                task = await s.get(Task, task_id)
                if task is None or task.outcome is not None:
                    return
                task.trajectory = trajectory
                task.cost_usd, task.tokens = spending.total
                await s.flush()
                await _update_feature_totals(s, view.id)

        async def record(**fields: Any) -> None:
            # guidance: what the next implementation round must address (a stage's findings).
            allowed = {"branch", "pr_number", "head_sha", "plan", "plan_comment_id", "guidance"}
            unknown = set(fields) - allowed
            if unknown:
                raise ValueError(f"cannot record {sorted(unknown)}")
            async with self.db.session() as s:
                await s.execute(update(Feature).where(Feature.id == view.id).values(**fields))
            await self.publish(view.id, {"event": "recorded", **{k: v for k, v in fields.items() if k not in ("plan", "guidance")}})

        async def progress(text: str) -> None:
            await self.publish(view.id, {"event": "progress", "stage": stage.value, "text": text})

        ctx = StepContext(
            feature=view,
            stage=stage,
            attempt=attempt,
            github=run.github,
            config=run.config,
            tools=run.tools,
            record=record,
            progress=progress,
            checkpoint=checkpoint,
            resume=resume,
        )
        try:
            return await asyncio.wait_for(agent.run(ctx), timeout=self.config.job_timeout_s)
        except TimeoutError:
            return StepResult(
                Outcome.FAILED,
                f"{stage.title} ran longer than {self.config.job_timeout_s}s and was stopped",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = transient_delay(exc)
            if delay is not None and job_try < self.config.max_step_tries:
                delay = max(delay, min(60.0, 2.0**job_try))
                log.warning("step %s of feature %s will retry in %.0fs: %s", stage, view.id, delay, exc)
                raise Retry(defer=delay) from exc
            # An agent bug, or a transient failure that outlasted its retries, must end as a
            # visible failure, not a stuck run.
            log.exception("step %s of feature %s failed", stage, view.id)
            tries = f" after {job_try} tries" if delay is not None else ""
            return StepResult(Outcome.FAILED, f"{type(exc).__name__}{tries}: {exc}", details=str(exc))

    async def _apply(
        self,
        feature_id: int,
        stage: Stage,
        outcome: Outcome,
        round_: int,
        attempt: int,
        *,
        run: RunContext | None = None,
        detail: str = "",
    ) -> str:
        if run is None:
            async with self.db.session() as s:
                feature = await s.get(Feature, feature_id)
                assert feature is not None
                run = await self.open_repo(feature.installation_id, feature.repository)
        require_approval = bool(getattr(run.config, "require_plan_approval", False))
        max_rounds = int(getattr(run.config, "max_rounds", None) or self.config.max_rounds)
        decision = decide(
            stage,
            outcome,
            round_=round_,
            max_rounds=max_rounds,
            enabled=run.enabled,
            require_plan_approval=require_approval,
            detail=detail,
        )
        moved = await self.transition(
            feature_id,
            expect=(stage.state, round_, attempt),
            decision=decision,
            cause=f"{stage.value} {outcome.value}",
        )
        if not moved:
            return "stale"
        await self.refresh_status(feature_id, run)
        return decision.state.value

    # ------------------------------------------------------------------ transitions

    async def transition(
        self,
        feature_id: int,
        *,
        expect: tuple[FeatureState, int, int] | None,
        decision: Decision,
        cause: str,
        actor: str = "agent-factory",
        new_attempt: bool = False,
    ) -> bool:
        """Move the feature if it is still where ``expect`` says; enqueue the next step."""
        ended = False
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id, with_for_update=True)
            if feature is None:
                return False
            if expect is not None:
                state, round_, attempt = expect
                if (feature.state, feature.round, feature.attempt) != (state.value, round_, attempt):
                    return False
            before = feature.state
            feature.state = decision.state.value
            feature.round = decision.round
            if new_attempt:
                feature.attempt += 1
            if decision.state.is_terminal:
                feature.active_key = None
                feature.finished_at = self.clock()
                feature.error = decision.reason if decision.state is FeatureState.FAILED else None
                ended = True
            s.add(
                AuditEvent(
                    feature_id=feature_id,
                    repository=feature.repository,
                    actor=actor,
                    kind="feature.transition",
                    from_state=before,
                    to_state=decision.state.value,
                    cause=cause,
                    details={"reason": decision.reason, "round": decision.round},
                )
            )
            await s.flush()
            installation_id = feature.installation_id
        # Enqueue only after the commit: a worker that picks the job up at once must see the
        # new state. A crash in between is repaired by the reconciler.
        if decision.stage is not None:
            await self._enqueue_step(feature, decision.stage)
        await self.publish(feature_id, {"event": "state", "state": decision.state.value, "reason": decision.reason})
        if ended:
            await self.start_next_queued(installation_id)
        return True

    async def start_next_queued(self, installation_id: int) -> None:
        async with self.db.session() as s:
            running = await s.scalar(
                select(func.count(Feature.id)).where(
                    Feature.installation_id == installation_id,
                    Feature.active_key.is_not(None),
                    Feature.state != FeatureState.QUEUED.value,
                )
            )
            if (running or 0) >= self.config.max_concurrent_runs:
                return
            waiting = await s.scalar(
                select(Feature)
                .where(Feature.installation_id == installation_id, Feature.state == FeatureState.QUEUED.value)
                .order_by(Feature.id)
                .limit(1)
            )
            if waiting is None:
                return
            waiting_id = waiting.id
        await self.transition(
            waiting_id,
            expect=(FeatureState.QUEUED, 0, 0),
            decision=Decision(FeatureState.PLANNING, Stage.PLAN, 0, "a slot became free"),
            cause="slot free",
        )
        run = await self._open_for(waiting_id)
        if run is not None:
            await self.refresh_status(waiting_id, run)

    async def begin(self, feature_id: int, run: RunContext) -> None:
        """Start a freshly created (or queued) feature's first stage."""
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            assert feature is not None
            state = FeatureState(feature.state)
        if state is FeatureState.PLANNING:
            first = Stage.PLAN if Stage.PLAN in run.enabled else next_enabled(Stage.PLAN, run.enabled)
            if first is Stage.PLAN:
                await self.kick(feature_id)
            else:
                await self.transition(
                    feature_id,
                    expect=(FeatureState.PLANNING, 0, 0),
                    decision=Decision(first.state, first, 0, "planning not enabled")
                    if first
                    else Decision(FeatureState.COMPLETED, None, 0, "no stage enabled"),
                    cause="start",
                )
        await self.refresh_status(feature_id, run)

    async def cancel(self, feature_id: int, *, actor: str, cause: str) -> bool:
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            if feature is None or FeatureState(feature.state).is_terminal:
                return False
            job_ids = [
                step_job_id(feature.id, stage, feature.round, feature.attempt) for stage in STAGE_ORDER
            ]
            round_ = feature.round
        moved = await self.transition(
            feature_id,
            expect=None,
            decision=Decision(FeatureState.CANCELLED, None, round_, f"cancelled by {actor}"),
            cause=cause,
            actor=actor,
        )
        for job_id in job_ids:
            job = Job(job_id, self.queue)
            if await job.status() in (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress):
                # Only ask the worker to cancel it: arq's abort then waits for the job's result
                # and raises TimeoutError when, as here, there is nothing to wait for.
                with contextlib.suppress(TimeoutError):
                    await job.abort(timeout=0, poll_delay=0)
        async with self.db.session() as s:
            await s.execute(
                update(Task)
                .where(Task.feature_id == feature_id, Task.state == TaskState.RUNNING.value)
                .values(state=TaskState.CANCELLED.value, finished_at=self.clock())
            )
        run = await self._open_for(feature_id)
        if run is not None:
            await self.refresh_status(feature_id, run)
        return moved

    async def rerun(
        self, feature_id: int, stage: Stage, *, actor: str, cause: str, next_round: bool = False,
        guidance: str | None = None,
    ) -> bool:
        """Run ``stage`` again with a new attempt (retry, re-requested check, revise)."""
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            if feature is None:
                return False
            key = active_key(feature.repository, feature.issue_number)
            if feature.active_key is None:
                clash = await s.scalar(select(Feature.id).where(Feature.active_key == key))
                if clash is not None:
                    return False
                feature.active_key = key
                feature.finished_at = None
                feature.error = None
            if guidance is not None:
                feature.guidance = guidance
            round_ = feature.round + 1 if next_round else feature.round
        return await self.transition(
            feature_id,
            expect=None,
            decision=Decision(stage.state, stage, round_, cause),
            cause=cause,
            actor=actor,
            new_attempt=True,
        )

    # ------------------------------------------------------------------ recovery

    async def reconcile(self) -> int:
        """Re-enqueue every active step that has no live job. Returns how many were revived."""
        revived = 0
        async with self.db.session() as s:
            features = (
                await s.scalars(select(Feature).where(Feature.active_key.is_not(None)))
            ).all()
        for feature in features:
            state = FeatureState(feature.state)
            stage = stage_for_state(state)
            if stage is None or state in _WAITING:
                continue
            job_id = step_job_id(feature.id, stage, feature.round, feature.attempt)
            status = await Job(job_id, self.queue).status()
            if status is JobStatus.in_progress:
                if await self.liveness.owner_alive(job_id) is False:
                    await self.liveness.free_orphan(job_id)
                    revived += 1
                continue
            if status in (JobStatus.queued, JobStatus.deferred):
                continue
            if status is JobStatus.complete:
                # The job ended but the run did not move on (crash between the two).
                async with self.db.session() as s:
                    task = await s.scalar(
                        select(Task).where(
                            Task.feature_id == feature.id, Task.kind == stage.value, Task.round == feature.round
                        )
                    )
                if task is not None and task.outcome is not None and task.attempt == feature.attempt:
                    await self._apply(feature.id, stage, Outcome(task.outcome), feature.round, feature.attempt)
                    revived += 1
                    continue
                # Finished without a result (for example it was killed for good): new attempt.
                await self.transition(
                    feature.id,
                    expect=(state, feature.round, feature.attempt),
                    decision=Decision(state, stage, feature.round, "step lost its job"),
                    cause="reconciler",
                    new_attempt=True,
                )
                revived += 1
                continue
            # Not found: Redis lost it (flushed or restarted without persistence).
            await self._enqueue_step(feature, stage)
            revived += 1
        if revived:
            log.info("reconciler revived %d step(s)", revived)
        return revived

    # ------------------------------------------------------------------ what people see

    async def _open_for(self, feature_id: int) -> RunContext | None:
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
        if feature is None:
            return None
        return await self.open_repo(feature.installation_id, feature.repository)

    async def status_view(self, feature_id: int, run: RunContext) -> StatusView:
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            assert feature is not None
            tasks = (await s.scalars(select(Task).where(Task.feature_id == feature_id).order_by(Task.id))).all()
        latest: dict[Stage, Task] = {}
        for task in tasks:
            latest[Stage(task.kind)] = task
        state = FeatureState(feature.state)
        current = stage_for_state(state)
        lines: dict[Stage, StageLine] = {}
        for stage in STAGE_ORDER:
            task = latest.get(stage)
            if stage == current and not state.is_terminal:
                note = f"round {feature.round + 1}" if feature.round else ""
                lines[stage] = StageLine("running", note)
            elif task is None:
                lines[stage] = StageLine("cancelled" if state is FeatureState.CANCELLED else "pending")
            elif task.state == TaskState.CANCELLED.value:
                lines[stage] = StageLine("cancelled")
            elif task.outcome == Outcome.FAILED.value:
                lines[stage] = StageLine("failed", (task.result_summary or "")[:200])
            elif task.outcome == Outcome.CHANGES_REQUESTED.value:
                lines[stage] = StageLine("done", "changes requested")
            elif task.outcome == Outcome.NEEDS_INPUT.value:
                lines[stage] = StageLine("waiting", "questions asked")
            elif task.outcome is not None:
                lines[stage] = StageLine("done", (task.result_summary or "")[:200])
            else:
                lines[stage] = StageLine("pending")
        if state is FeatureState.AWAITING_APPROVAL:
            lines[Stage.PLAN] = StageLine("waiting", "waiting for `/factory approve`")
        checks = run.extras.get("check_urls", {}) if run.extras else {}
        plan_url = None
        if feature.plan_comment_id:
            plan_url = (
                f"{self.config.server_url}/{feature.repository}/issues/{feature.issue_number}"
                f"#issuecomment-{feature.plan_comment_id}"
            )
        return StatusView(
            feature_id=feature.id,
            repository=feature.repository,
            issue_number=feature.issue_number,
            state=state,
            round=feature.round,
            max_rounds=int(getattr(run.config, "max_rounds", None) or self.config.max_rounds),
            stages=lines,
            enabled=run.enabled,
            started_at=_aware(feature.created_at),
            now=self.clock(),
            cost_usd=feature.cost_usd,
            tokens=feature.tokens,
            branch=feature.branch,
            pr_number=feature.pr_number,
            plan_url=plan_url,
            checks=checks,
            error=feature.error,
            server_url=self.config.server_url,
        )

    async def refresh_status(self, feature_id: int, run: RunContext) -> None:
        """Re-render the status comment and the stage check runs from the database.

        Serialised per feature across workers: two renders racing could otherwise leave an
        older state on GitHub after a newer one.
        """
        async with self.queue.lock(f"factory:status-lock:{feature_id}", timeout=60, blocking_timeout=60):
            await self._refresh_status(feature_id, run)

    async def _refresh_status(self, feature_id: int, run: RunContext) -> None:
        checks: CheckSync | None = run.extras.get("checks") if run.extras else None
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            assert feature is not None
            tasks = (await s.scalars(select(Task).where(Task.feature_id == feature_id))).all()
            snapshot = _view(feature)
            status_comment_id = feature.status_comment_id
        if checks is not None and snapshot.head_sha:
            run.extras["check_urls"] = await checks.sync(snapshot, FeatureState(feature.state), list(tasks), run.enabled)
        view = await self.status_view(feature_id, run)
        comment = await run.github.upsert_marked_comment(
            snapshot.issue_number, status_marker(feature_id), render_status(view)
        )
        if status_comment_id != comment.id:
            async with self.db.session() as s:
                await s.execute(update(Feature).where(Feature.id == feature_id).values(status_comment_id=comment.id))

    def progress_channel(self, feature_id: int) -> str:
        return f"{self.config.channel_prefix}:feature:{feature_id}"

    async def publish(self, feature_id: int, message: Mapping[str, Any]) -> None:
        """Live progress for the API and dashboards; losing a message here is harmless."""
        try:
            await self.queue.publish(
                self.progress_channel(feature_id), json.dumps({"feature": feature_id, **message}, default=str)
            )
        except Exception:
            log.debug("publish failed", exc_info=True)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _view(feature: Feature) -> FeatureView:
    return FeatureView(
        id=feature.id,
        installation_id=feature.installation_id,
        repository=feature.repository,
        issue_number=feature.issue_number,
        round=feature.round,
        branch=feature.branch,
        pr_number=feature.pr_number,
        head_sha=feature.head_sha,
        plan=feature.plan,
        triggered_by=feature.triggered_by,
        guidance=feature.guidance,
        cost_usd=feature.cost_usd,
        tokens=feature.tokens,
        plan_comment_id=feature.plan_comment_id,
    )


@dataclass
class _StepSpending:
    """One step's spending: what earlier tries left recorded, plus the most this try reported.

    A try reports running totals (checkpoints, then its result), so the largest one is what it
    spent; a result that lost count (an agent failing outside its loop reports 0) cannot make
    the recorded spending go down.
    """

    before_usd: float
    before_tokens: int
    usd: float = 0.0
    tokens: int = 0

    def add(self, usd: float, tokens: int) -> None:
        self.usd = max(self.usd, usd)
        self.tokens = max(self.tokens, tokens)

    @property
    def total(self) -> tuple[float, int]:
        return self.before_usd + self.usd, self.before_tokens + self.tokens


async def _update_feature_totals(s: Any, feature_id: int) -> None:
    totals = (
        await s.execute(
            select(func.coalesce(func.sum(Task.cost_usd), 0.0), func.coalesce(func.sum(Task.tokens), 0))
            .where(Task.feature_id == feature_id)
        )
    ).one()
    await s.execute(
        update(Feature).where(Feature.id == feature_id).values(cost_usd=float(totals[0]), tokens=int(totals[1]))
    )
