"""The coordinator: the use cases that drive a run through its stages, durably and exactly once.

Start, run a step, move (transition), cancel, run a stage again, reconcile. Each reads and
writes the run through the store, enqueues the next step under a deterministic job id (arq
refuses an id it holds, so a step is never queued twice) and ends by asking the status
projector to show the run as stored. Agents never call each other: a step returns a result and
:meth:`Coordinator.run_step` decides what comes next.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from bot.contracts.jobs import RunStep, step_job_id
from bot.contracts.lifecycle import (
    STAGE_ORDER,
    Decision,
    FeatureState,
    Outcome,
    Stage,
    decide,
    next_enabled,
    stage_for_state,
)
from bot.contracts.runs import FeatureView
from bot.db import Feature
from bot.orchestration.context import JobContext
from bot.orchestration.liveness import Liveness
from bot.orchestration.progress import Progress
from bot.orchestration.projector import ContextFactory, StatusProjector
from bot.orchestration.retry import TransientError
from bot.orchestration.steps import Spending, StepRun, StepRunner
from bot.store.runs import RunStore, Started, StartRaced, Where, where

log = logging.getLogger(__name__)

# (the job's context, the run, the stage, what went wrong) after a step failed.
StepFailed = Callable[[JobContext, FeatureView, Stage, str], Awaitable[None]]

_WAITING = (
    FeatureState.QUEUED,
    FeatureState.AWAITING_APPROVAL,
    FeatureState.AWAITING_CLARIFICATION,
)


@dataclass(frozen=True)
class CoordinatorConfig:
    max_concurrent_runs: int = 2
    job_timeout_s: int = 1800


class Coordinator:
    def __init__(
        self,
        *,
        store: RunStore,
        queue: ArqRedis,
        steps: StepRunner,
        projector: StatusProjector,
        progress: Progress,
        liveness: Liveness,
        contexts: ContextFactory,
        config: CoordinatorConfig,
        on_step_failed: StepFailed | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.steps = steps
        self.projector = projector
        self.progress = progress
        self.liveness = liveness
        self.contexts = contexts
        self.config = config
        self.on_step_failed = on_step_failed

    # ------------------------------------------------------------------ start

    async def start(
        self,
        ctx: JobContext,
        *,
        issue_number: int,
        sender: str,
        delivery_id: str,
        guidance: str | None,
        cause: str,
    ) -> Started:
        """The issue's run: started here, or the active one found."""
        try:
            started = await self.store.create(
                installation_id=ctx.installation_id,
                repository=ctx.repository,
                issue_number=issue_number,
                sender=sender,
                delivery_id=delivery_id,
                guidance=guidance,
                cause=cause,
                max_running=self.config.max_concurrent_runs,
            )
        except StartRaced:
            raise TransientError("feature start raced with a finishing run") from None
        feature = started.feature
        if not started.mine:
            return started
        await self.progress.publish(feature.id, {"event": "created", "state": feature.state})
        if FeatureState(feature.state) is FeatureState.PLANNING:
            first = next_enabled(None, (await ctx.settings()).enabled)
            if first is Stage.PLAN:
                await self._enqueue(feature, Stage.PLAN)
            else:
                reason = "planning not enabled" if first else "no stage enabled"
                await self._move(
                    feature.id,
                    expect=(FeatureState.PLANNING, 0, 0),
                    decision=_enter(first, 0, reason),
                    cause="start",
                )
        # A run made just now has no status comment to find: it is posted without looking.
        await self.projector.refresh(feature.id, ctx, new=started.created)
        return started

    # ------------------------------------------------------------------ one step

    async def run_step(self, job: RunStep, *, job_id: str, job_try: int) -> str:
        started = await self.store.begin_step(
            job.feature_id, job.stage, job.round, job.attempt, job_id
        )
        if started is None:
            return "stale" if await self.store.get(job.feature_id) else "gone"
        view = started.view
        ctx = self.contexts(view.installation_id, view.repository)
        if started.outcome is not None:
            # The step finished before a crash; only its consequences are left to apply.
            return await self._apply(job, started.outcome, ctx)
        step = StepRun(
            feature=view,
            stage=job.stage,
            attempt=job.attempt,
            task_id=started.task_id,
            job_try=job_try,
            spending=Spending(started.spent_usd, started.spent_tokens),
            resume=started.resume,
        )
        await self.liveness.claim(job_id, self.config.job_timeout_s + 60)
        try:
            result = await self.steps.run(step, ctx)
        finally:
            await self.liveness.release(job_id)
        step.spending.add(result.cost_usd, result.tokens)
        await self.store.finish_step(
            started.task_id,
            outcome=result.outcome,
            summary=result.summary,
            details=result.details,
            spent=step.spending.total,
            trajectory=result.trajectory,
            cause=f"job {job_id}",
        )
        if result.outcome is Outcome.FAILED and self.on_step_failed is not None:
            try:
                error = f"{result.summary}\n{result.details}".strip()
                await self.on_step_failed(ctx, view, job.stage, error)
            except Exception:  # remembering a failure must never block the run's own ending
                log.warning("could not record the failure of feature %s", view.id, exc_info=True)
        return await self._apply(job, result.outcome, ctx, detail=result.summary)

    async def _apply(
        self, job: RunStep, outcome: Outcome, ctx: JobContext, *, detail: str = ""
    ) -> str:
        settings = await ctx.settings()
        decision = decide(
            job.stage,
            outcome,
            round_=job.round,
            max_rounds=settings.config.max_rounds,
            enabled=settings.enabled,
            require_plan_approval=settings.config.require_plan_approval,
            detail=detail,
        )
        moved = await self._move(
            job.feature_id,
            expect=(job.stage.state, job.round, job.attempt),
            decision=decision,
            cause=f"{job.stage.value} {outcome.value}",
        )
        if not moved:
            return "stale"
        await self.projector.refresh(job.feature_id, ctx)
        return decision.state.value

    # ------------------------------------------------------------------ moving a run

    async def transition(
        self,
        feature_id: int,
        *,
        expect: Where | None,
        decision: Decision,
        cause: str,
        actor: str,
        ctx: JobContext | None = None,
        new_attempt: bool = False,
    ) -> bool:
        """Move the run if it is still where ``expect`` says (anywhere, if None)."""
        moved = await self._move(
            feature_id,
            expect=expect,
            decision=decision,
            cause=cause,
            actor=actor,
            new_attempt=new_attempt,
        )
        await self.projector.refresh(feature_id, ctx)
        return moved

    async def cancel(self, feature_id: int, *, actor: str, cause: str, ctx: JobContext) -> bool:
        feature = await self.store.get(feature_id)
        if feature is None or FeatureState(feature.state).is_terminal:
            return False
        moved = await self._move(
            feature_id,
            expect=None,
            decision=Decision(FeatureState.CANCELLED, None, feature.round, f"cancelled by {actor}"),
            cause=cause,
            actor=actor,
        )
        for stage in STAGE_ORDER:
            job = Job(step_job_id(feature_id, stage, feature.round, feature.attempt), self.queue)
            if await job.status() in (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress):
                # Only ask the worker to cancel it: arq's abort then waits for the job's result
                # and raises TimeoutError when, as here, there is nothing to wait for.
                with contextlib.suppress(TimeoutError):
                    await job.abort(timeout=0, poll_delay=0)
        await self.store.cancel_running_steps(feature_id)
        await self.projector.refresh(feature_id, ctx)
        return moved

    async def rerun(
        self,
        feature_id: int,
        stage: Stage,
        *,
        actor: str,
        cause: str,
        ctx: JobContext,
        next_round: bool = False,
        guidance: str | None = None,
    ) -> bool:
        """Run ``stage`` again with a new attempt (retry, re-requested check, revise), on a
        finished run too unless another run holds its issue now."""
        feature = await self.store.reactivate(feature_id, guidance=guidance)
        moved = False
        if feature is not None:
            round_ = feature.round + 1 if next_round else feature.round
            moved = await self._move(
                feature_id,
                expect=None,
                decision=Decision(stage.state, stage, round_, cause),
                cause=cause,
                actor=actor,
                new_attempt=True,
            )
        await self.projector.refresh(feature_id, ctx)
        return moved

    async def _move(
        self,
        feature_id: int,
        *,
        expect: Where | None,
        decision: Decision,
        cause: str,
        actor: str = "agent-factory",
        new_attempt: bool = False,
    ) -> bool:
        moved = await self.store.transition(
            feature_id,
            expect=expect,
            decision=decision,
            cause=cause,
            actor=actor,
            new_attempt=new_attempt,
        )
        if moved is None:
            return False
        # Enqueue only after the commit: a worker that picks the job up at once must see the
        # new state. A crash in between is repaired by the reconciler.
        if decision.stage is not None:
            await self._enqueue(moved.feature, decision.stage)
        await self.progress.publish(
            feature_id, {"event": "state", "state": decision.state.value, "reason": decision.reason}
        )
        if moved.ended:
            await self._start_next_queued(moved.feature.installation_id)
        return True

    async def _start_next_queued(self, installation_id: int) -> None:
        waiting = await self.store.next_queued(
            installation_id, max_running=self.config.max_concurrent_runs
        )
        if waiting is None:
            return
        moved = await self._move(
            waiting.id,
            expect=(FeatureState.QUEUED, 0, 0),
            decision=Decision(FeatureState.PLANNING, Stage.PLAN, 0, "a slot became free"),
            cause="slot free",
        )
        if moved:
            await self.projector.refresh(waiting.id)

    async def _enqueue(self, feature: Feature, stage: Stage) -> None:
        job = RunStep(
            feature_id=feature.id, stage=stage, round=feature.round, attempt=feature.attempt
        )
        await self.queue.enqueue_job(job.function, _job_id=job.job_id, **job.kwargs())

    # ------------------------------------------------------------------ recovery

    async def reconcile(self) -> int:
        """Re-enqueue every active step that has no live job. Returns how many were revived."""
        revived = 0
        for feature in await self.store.active():
            state = FeatureState(feature.state)
            stage = stage_for_state(state)
            if stage is None or state in _WAITING:
                continue
            if await self._revive(feature, stage):
                revived += 1
        if revived:
            log.info("reconciler revived %d step(s)", revived)
        return revived

    async def _revive(self, feature: Feature, stage: Stage) -> bool:
        job_id = step_job_id(feature.id, stage, feature.round, feature.attempt)
        status = await Job(job_id, self.queue).status()
        if status is JobStatus.in_progress:
            if await self.liveness.owner_alive(job_id) is False:
                await self.liveness.free_orphan(job_id)
                return True
            return False
        if status in (JobStatus.queued, JobStatus.deferred):
            return False
        if status is JobStatus.complete:
            # The job ended but the run did not move on (crash between the two).
            outcome = await self.store.step_outcome(feature, stage)
            step = RunStep(
                feature_id=feature.id, stage=stage, round=feature.round, attempt=feature.attempt
            )
            ctx = self.contexts(feature.installation_id, feature.repository)
            if outcome is not None:
                await self._apply(step, outcome, ctx)
                return True
            # Finished without a result (for example it was killed for good): new attempt.
            await self.transition(
                feature.id,
                expect=where(feature),
                decision=Decision(
                    FeatureState(feature.state), stage, feature.round, "step lost its job"
                ),
                cause="reconciler",
                actor="agent-factory",
                ctx=ctx,
                new_attempt=True,
            )
            return True
        # Not found: Redis lost it (flushed or restarted without persistence).
        await self._enqueue(feature, stage)
        return True


def _enter(stage: Stage | None, round_: int, reason: str) -> Decision:
    """Into ``stage``, or completed when there is none."""
    if stage is None:
        return Decision(FeatureState.COMPLETED, None, round_, reason)
    return Decision(stage.state, stage, round_, reason)
