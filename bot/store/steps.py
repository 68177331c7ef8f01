"""The store's queries about a run's steps (``tasks``): begun, checkpointed, finished."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts.lifecycle import Outcome, Stage, TaskState
from bot.contracts.runs import FeatureView
from bot.db import AuditEvent, Feature, Task
from bot.store._base import StoreScope
from bot.store.features import view_of, where


@dataclass(frozen=True)
class StepStart:
    """A step about to run (or whose outcome is already recorded: ``outcome``)."""

    task_id: int
    view: FeatureView
    outcome: Outcome | None
    # The last checkpoint of a try of this very step whose worker died.
    resume: list[dict[str, Any]] | None
    # What earlier tries and attempts of this step spent.
    spent_usd: float
    spent_tokens: int


class StepQueries(StoreScope):
    async def begin_step(
        self, feature_id: int, stage: Stage, round_: int, attempt: int, job_id: str
    ) -> StepStart | None:
        """The step's task, created or taken over by this try; None when the step is stale
        (the run is gone, ended, or has moved on)."""
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            if feature is None or where(feature) != (stage.state, round_, attempt):
                return None
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
            return StepStart(
                task_id=task.id,
                view=view_of(feature),
                outcome=Outcome(task.outcome) if task.outcome is not None else None,
                resume=resume,
                spent_usd=float(task.cost_usd or 0.0),
                spent_tokens=int(task.tokens or 0),
            )

    async def checkpoint(
        self, task_id: int, trajectory: list[dict[str, Any]], spent: tuple[float, int]
    ) -> None:
        async with self.db.session() as s:
            task = await s.get(Task, task_id)
            if task is None or task.outcome is not None:
                return
            task.trajectory = trajectory
            task.cost_usd, task.tokens = spent
            await s.flush()
            await _update_totals(s, task.feature_id)

    async def finish_step(
        self,
        task_id: int,
        *,
        outcome: Outcome,
        summary: str,
        details: str,
        spent: tuple[float, int],
        trajectory: list[Any] | None,
        cause: str,
    ) -> None:
        async with self.db.session() as s:
            task = await s.get(Task, task_id)
            assert task is not None
            failed = outcome is Outcome.FAILED
            task.outcome = outcome.value
            task.state = TaskState.FAILED.value if failed else TaskState.SUCCEEDED.value
            task.finished_at = self.clock()
            task.result_summary = summary[:4000]
            task.error = details[:8000] if failed else None
            task.cost_usd, task.tokens = spent
            if trajectory is not None:
                task.trajectory = trajectory
            task.effects = {**(task.effects or {}), "details": details[:20000]}
            await s.flush()
            feature = await _update_totals(s, task.feature_id)
            s.add(
                AuditEvent(
                    feature_id=task.feature_id,
                    repository=feature.repository if feature else None,
                    actor="agent-factory",
                    kind=f"step.{task.kind}.{outcome.value}",
                    cause=cause,
                    details={"summary": summary[:500], "cost_usd": spent[0]},
                )
            )

    async def cancel_running_steps(self, feature_id: int) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(Task)
                .where(Task.feature_id == feature_id, Task.state == TaskState.RUNNING.value)
                .values(state=TaskState.CANCELLED.value, finished_at=self.clock())
            )

    async def tasks(self, feature_id: int) -> Sequence[Task]:
        async with self.db.session() as s:
            query = select(Task).where(Task.feature_id == feature_id).order_by(Task.id)
            return (await s.scalars(query)).all()

    async def step_outcome(self, feature: Feature, stage: Stage) -> Outcome | None:
        """The recorded outcome of the run's current step, if this attempt recorded one."""
        async with self.db.session() as s:
            task = await s.scalar(
                select(Task).where(
                    Task.feature_id == feature.id,
                    Task.kind == stage.value,
                    Task.round == feature.round,
                )
            )
        if task is None or task.outcome is None or task.attempt != feature.attempt:
            return None
        return Outcome(task.outcome)

    async def failed_stage(self, feature_id: int) -> Stage:
        """The stage a retry runs again: the last one that failed, was cut short or never ended."""
        for task in reversed(await self.tasks(feature_id)):
            if task.outcome in (None, Outcome.FAILED.value) or task.state in (
                TaskState.FAILED.value,
                TaskState.CANCELLED.value,
                TaskState.RUNNING.value,
            ):
                return Stage(task.kind)
        return Stage.PLAN


async def _update_totals(s: AsyncSession, feature_id: int) -> Feature | None:
    """The run's spending: the sum of its steps'."""
    totals = (
        await s.execute(
            select(
                func.coalesce(func.sum(Task.cost_usd), 0.0), func.coalesce(func.sum(Task.tokens), 0)
            ).where(Task.feature_id == feature_id)
        )
    ).one()
    feature = await s.get(Feature, feature_id)
    if feature is not None:
        feature.cost_usd, feature.tokens = float(totals[0]), int(totals[1])
    return feature
