"""Running one stage agent for one step: what it is given, how long it may take, and how a
failure ends (retried later, or a failed step the run reports).

The agent's context is built here: the run as stored, the job's repository client and
configuration, the toolbox, and three ways back to the store (``record`` facts at once,
``checkpoint`` the trajectory after each turn, ``progress`` for live listeners).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from arq import Retry

from agents.budget import spent_in
from agents.stages import Recorder, StageAgent, StepContext, StepResult
from agents.toolbox import Toolbox
from bot.contracts.lifecycle import Outcome, Stage
from bot.contracts.runs import FeatureView, RunFacts
from bot.orchestration.context import JobContext
from bot.orchestration.retry import RetryPolicy, shortest_wait
from bot.store.runs import RunStore

log = logging.getLogger(__name__)

Publish = Callable[[int, Mapping[str, Any]], Awaitable[None]]


@dataclass
class Spending:
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


@dataclass(frozen=True)
class StepRun:
    """One try of one step."""

    feature: FeatureView
    stage: Stage
    attempt: int
    task_id: int
    job_try: int
    spending: Spending
    resume: list[dict[str, Any]] | None


class StepRunner:
    def __init__(
        self,
        *,
        agents: Mapping[Stage, StageAgent],
        tools: Toolbox,
        store: RunStore,
        publish: Publish,
        retry: RetryPolicy,
        timeout_s: int,
    ) -> None:
        self.agents = dict(agents)
        self.tools = tools
        self.store = store
        self.publish = publish
        self.retry = retry
        self.timeout_s = timeout_s

    async def run(self, step: StepRun, ctx: JobContext) -> StepResult:
        """The agent's result; raises ``Retry`` for a passing failure with tries left."""
        agent = self.agents.get(step.stage)
        if agent is None:
            return StepResult(Outcome.SUCCEEDED, f"{step.stage.title} is not enabled")
        agent_ctx = StepContext(
            feature=step.feature,
            stage=step.stage,
            attempt=step.attempt,
            github=await ctx.github(),
            config=(await ctx.settings()).config,
            tools=self.tools,
            record=self._recorder(step.feature.id),
            progress=self._progress(step.feature.id, step.stage),
            checkpoint=self._checkpoint(step),
            resume=step.resume,
        )
        try:
            return await asyncio.wait_for(agent.run(agent_ctx), timeout=self.timeout_s)
        except TimeoutError:
            return StepResult(
                Outcome.FAILED,
                f"{step.stage.title} ran longer than {self.timeout_s}s and was stopped",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = self.retry.defer(exc, step.job_try)
            if delay is not None:
                log.warning(
                    "step %s of feature %s will retry in %.0fs: %s",
                    step.stage,
                    step.feature.id,
                    delay,
                    exc,
                )
                raise Retry(defer=delay) from exc
            # An agent bug, or a transient failure that outlasted its retries, must end as a
            # visible failure, not a stuck run.
            log.exception("step %s of feature %s failed", step.stage, step.feature.id)
            tries = f" after {step.job_try} tries" if shortest_wait(exc) is not None else ""
            return StepResult(
                Outcome.FAILED, f"{type(exc).__name__}{tries}: {exc}", details=str(exc)
            )

    def _recorder(self, feature_id: int) -> Recorder:
        async def record(
            *,
            branch: str | None = None,
            pr_number: int | None = None,
            head_sha: str | None = None,
            plan: Mapping[str, Any] | None = None,
            plan_comment_id: int | None = None,
            guidance: str | None = None,
        ) -> None:
            facts = RunFacts(branch, pr_number, head_sha, plan, plan_comment_id, guidance)
            await self.store.record(feature_id, facts)
            shown = {k: v for k, v in facts.given().items() if k not in ("plan", "guidance")}
            await self.publish(feature_id, {"event": "recorded", **shown})

        return record

    def _progress(self, feature_id: int, stage: Stage) -> Callable[[str], Awaitable[None]]:
        async def progress(text: str) -> None:
            await self.publish(
                feature_id, {"event": "progress", "stage": stage.value, "text": text}
            )

        return progress

    def _checkpoint(self, step: StepRun) -> Callable[[list[dict[str, Any]]], Awaitable[None]]:
        async def checkpoint(trajectory: list[dict[str, Any]]) -> None:
            step.spending.add(*spent_in(trajectory))
            await self.store.checkpoint(step.task_id, trajectory, step.spending.total)

        return checkpoint
