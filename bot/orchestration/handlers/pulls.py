"""The bot's pull requests changing on GitHub: closed (the run ends, and the knowledge store
learns from it) or pushed to (the run's head moves, and its checks with it)."""

from __future__ import annotations

from bot.contracts import jobs
from bot.contracts.lifecycle import Decision, FeatureState
from bot.contracts.runs import RunFacts
from bot.orchestration.context import JobContext
from bot.orchestration.registry import handles
from bot.orchestration.services import JobServices


@handles(jobs.PullRequestClosed)
async def pr_closed(job: jobs.PullRequestClosed, ctx: JobContext, app: JobServices) -> str:
    feature = await app.runs.for_pull_request(job.repo, job.pr_number)
    if feature is None:
        return "not ours"
    if app.knowledge is not None:
        await app.knowledge.learn(
            ctx, pr_number=job.pr_number, merged=job.merged, feature_id=feature.id
        )
    if feature.active_key is not None:
        decision = (
            Decision(FeatureState.COMPLETED, None, feature.round, "pull request merged")
            if job.merged
            else Decision(
                FeatureState.CANCELLED, None, feature.round, "pull request closed without merging"
            )
        )
        await app.coordinator.transition(
            feature.id,
            expect=None,
            decision=decision,
            cause="pull_request.closed",
            actor="agent-factory",
            ctx=ctx,
        )
    return "merged" if job.merged else "closed"


@handles(jobs.PullRequestSynchronized)
async def pr_synchronized(
    job: jobs.PullRequestSynchronized, ctx: JobContext, app: JobServices
) -> str:
    feature = await app.runs.for_pull_request(job.repo, job.pr_number)
    if feature is None or feature.head_sha == job.head_sha:
        return "no change"
    await app.runs.record(feature.id, RunFacts(head_sha=job.head_sha))
    await app.projector.refresh(feature.id, ctx)
    return "head updated"
