"""What each `/factory` command does, one small handler per command, looked up in ``COMMANDS``.

A handler gets the request (who asked, the arguments, the job's context and configuration) and
returns the reply's message. Permission and availability were checked before it runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bot.contracts import commands as grammar
from bot.contracts import jobs
from bot.contracts.config_load import explain
from bot.contracts.lifecycle import Decision, FeatureState, Stage, next_enabled
from bot.db import Feature
from bot.orchestration.context import JobContext, RepoSettings
from bot.orchestration.handlers.label import start_run
from bot.orchestration.services import JobServices
from bot.store.runs import where

NO_RUN = "Add the trigger label or comment `/factory plan`."


@dataclass(frozen=True)
class Request:
    job: jobs.CommandReceived
    ctx: JobContext
    app: JobServices
    settings: RepoSettings
    args: str
    sender: str
    # Per command line: a repeated job finds what this line started.
    delivery_id: str

    async def issue(self) -> int:
        """On the bot's pull request the work belongs to the issue it implements; a new run
        for that issue has not recorded the pull request yet."""
        return await self.app.runs.issue_of(self.ctx.repository, self.job.issue_number)

    async def active(self) -> Feature | None:
        return await self.app.runs.for_issue(
            self.ctx.repository, await self.issue(), active_only=True
        )

    async def latest(self) -> Feature | None:
        return await self.active() or await self.app.runs.for_issue(
            self.ctx.repository, await self.issue(), active_only=False
        )


CommandHandler = Callable[[Request], Awaitable[str]]


async def help_(request: Request) -> str:
    return grammar.help_text(available_stages={s.value for s in request.settings.enabled})


async def config(request: Request) -> str:
    return explain(request.settings.result)


async def ask(request: Request) -> str:
    if request.app.asker is None:
        return "I cannot answer questions here: the knowledge store is not enabled on this bot."
    return await request.app.asker(request.ctx.repository, request.args)


async def status(request: Request) -> str:
    latest = await request.latest()
    if latest is None:
        return f"No run has started for this issue yet. {NO_RUN}"
    return (
        f"Run {latest.id} is **{latest.state}** (round {latest.round + 1}); "
        f"LLM cost so far ${latest.cost_usd:.2f}. The status comment has the details."
    )


async def cancel(request: Request) -> str:
    active = await request.active()
    if active is None:
        return "There is no run in progress to cancel."
    await request.app.coordinator.cancel(
        active.id, actor=request.sender, cause="/factory cancel", ctx=request.ctx
    )
    return f"Run {active.id} is cancelled."


async def approve(request: Request) -> str:
    active = await request.active()
    if active is None:
        return "There is no plan waiting for approval."
    state = FeatureState(active.state)
    if state is not FeatureState.AWAITING_APPROVAL:
        return f"There is no plan waiting for approval (the run is **{state}**)."
    nxt = next_enabled(Stage.PLAN, request.settings.enabled)
    await request.app.coordinator.transition(
        active.id,
        expect=where(active),
        decision=Decision(nxt.state, nxt, active.round, f"approved by {request.sender}")
        if nxt
        else Decision(FeatureState.COMPLETED, None, active.round, "approved"),
        cause="/factory approve",
        actor=request.sender,
        ctx=request.ctx,
    )
    return "Plan approved; implementation starts now."


async def plan(request: Request) -> str:
    active = await request.active()
    if active is None:
        return await _start(request, "plan")
    if FeatureState(active.state) in (
        FeatureState.AWAITING_APPROVAL,
        FeatureState.AWAITING_CLARIFICATION,
    ):
        await request.app.coordinator.rerun(
            active.id,
            Stage.PLAN,
            actor=request.sender,
            cause="/factory plan",
            guidance=request.args or None,
            ctx=request.ctx,
        )
        return "Re-planning" + (" with your guidance." if request.args else ".")
    return _busy(active)


async def implement(request: Request) -> str:
    active = await request.active()
    if active is None:
        return await _start(request, "implement")
    if FeatureState(active.state) is FeatureState.AWAITING_APPROVAL:
        return await approve(request)
    return _busy(active)


def _busy(active: Feature) -> str:
    return (
        f"A run is already in progress (**{active.state}**). "
        "Comment `/factory cancel` first if you want to start over."
    )


async def _start(request: Request, name: str) -> str:
    issue = await request.issue()
    result = await start_run(
        request.ctx,
        request.app,
        issue_number=issue,
        sender=request.sender,
        delivery_id=request.delivery_id,
        cause=f"/factory {name}",
        guidance=request.args or None,
    )
    if not result.startswith("feature"):
        return result
    where_ = "" if issue == request.job.issue_number else f" on #{issue}"
    return f"Started a run; the status comment{where_} follows its progress."


async def retry(request: Request) -> str:
    latest = await request.latest()
    if latest is None:
        return f"No run exists for this issue yet. {NO_RUN}"
    if latest.state not in (FeatureState.FAILED.value, FeatureState.CANCELLED.value):
        return f"The run is **{latest.state}**; only a failed or cancelled run can be retried."
    stage = await request.app.runs.failed_stage(latest.id)
    return await _rerun(request, latest, stage, "retry") or f"{stage.title} runs again."


async def revise(request: Request) -> str:
    latest = await request.latest()
    if latest is None:
        return f"No run exists for this issue yet. {NO_RUN}"
    if latest.pr_number is None:
        return "There is no pull request to revise yet."
    return await _rerun(request, latest, Stage.IMPLEMENT, "revise") or (
        f"{Stage.IMPLEMENT.title} runs again."
    )


def _run_again(stage: Stage, *, unsupported_args: bool = False) -> CommandHandler:
    """`/factory review|test|deploy`: the stage runs again on the issue's latest run."""

    async def run_again(request: Request) -> str:
        latest = await request.latest()
        if latest is None:
            return f"No run exists for this issue yet. {NO_RUN}"
        refused = await _rerun(request, latest, stage, stage.value)
        if refused:
            return refused
        if unsupported_args and request.args:
            # The run has nowhere to carry a per-command environment yet; say so.
            return (
                f"{stage.title} runs again, to the configured default environment: "
                f"choosing `{request.args}` in the command is not supported yet."
            )
        return f"{stage.title} runs again."

    return run_again


async def _rerun(request: Request, latest: Feature, stage: Stage, name: str) -> str | None:
    """Run ``stage`` again; why not, if it did not."""
    revising = name == "revise"
    started = await request.app.coordinator.rerun(
        latest.id,
        stage,
        actor=request.sender,
        cause=f"/factory {name}",
        next_round=revising,
        guidance=(request.args or None) if revising else None,
        ctx=request.ctx,
    )
    return None if started else "Another run is active on this issue; cancel it first."


COMMANDS: Mapping[str, CommandHandler] = MappingProxyType(
    {
        "help": help_,
        "config": config,
        "ask": ask,
        "status": status,
        "cancel": cancel,
        "approve": approve,
        "plan": plan,
        "implement": implement,
        "retry": retry,
        "revise": revise,
        "review": _run_again(Stage.REVIEW),
        "test": _run_again(Stage.TEST),
        "deploy": _run_again(Stage.DEPLOY, unsupported_args=True),
    }
)
