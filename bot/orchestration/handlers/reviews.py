"""Reviews on the bot's pull requests: a request for changes sends the active run back to
implementation, bounded by its rounds; nothing else a review or a comment says starts work."""

from __future__ import annotations

from agents.review_feedback import review_feedback
from bot.contracts import jobs, markers
from bot.contracts.lifecycle import Decision, FeatureState, Stage
from bot.db import Feature
from bot.github import RepoClient
from bot.orchestration.context import JobContext
from bot.orchestration.handlers.gate import may_steer
from bot.orchestration.registry import handles
from bot.orchestration.services import JobServices
from bot.store.runs import where


@handles(jobs.ReviewSubmitted)
async def review_submitted(job: jobs.ReviewSubmitted, ctx: JobContext, app: JobServices) -> str:
    """A person asked for changes on the bot's PR: back to implementation, bounded by rounds.

    Only someone who may `/factory revise` steers the run this way, and only while it is
    active: a finished run is never re-opened by a review (its author is told, once, what
    starts work again).
    """
    if job.state.lower() != "changes_requested":
        return "noted"
    feature = await app.runs.for_pull_request(job.repo, job.pr_number)
    if feature is None:
        return "not ours"
    allowed = await may_steer(
        ctx,
        app,
        actor=job.reviewer,
        actor_type=job.reviewer_type,
        commands=("revise",),
        subject="a review asking for changes",
        what=f"review on #{job.pr_number}",
    )
    if not allowed:
        return "refused"
    gh = await ctx.github()
    max_rounds = (await ctx.settings()).config.max_rounds
    guidance: str | None = None
    # The run may move on between reading it and sending it back: look again, a few times.
    for _attempt in range(3):
        if FeatureState(feature.state).is_terminal:
            await _say_run_finished(gh, feature, job)
            return "finished"
        if feature.round + 1 >= max_rounds:
            moved = await app.coordinator.transition(
                feature.id,
                expect=where(feature),
                decision=Decision(
                    FeatureState.FAILED,
                    None,
                    feature.round,
                    f"review asked for changes again after {max_rounds} rounds",
                ),
                cause="pull_request_review.submitted",
                actor=job.reviewer,
                ctx=ctx,
            )
            if moved:
                return "rounds exhausted"
        else:
            guidance = guidance or await review_feedback(
                gh, job.pr_number, job.review_id, f"@{job.reviewer}", job.body, author=job.reviewer
            )
            if await _send_back(feature, guidance, job.reviewer, ctx, app):
                return "revising"
        fresh = await app.runs.get(feature.id)
        if fresh is None:
            return "not ours"
        feature = fresh
    ctx.log.info(
        "%s: review on #%s by %s not acted on: the run kept moving",
        job.repo,
        job.pr_number,
        job.reviewer,
    )
    return "busy"


async def _send_back(
    feature: Feature, guidance: str, reviewer: str, ctx: JobContext, app: JobServices
) -> bool:
    """Store the review as guidance and move the still-active run to a new implementation
    round, both only if the run is where it was read. Unlike a rerun this never re-activates
    a finished run, even one that finished a moment ago."""
    if not await app.runs.guide_if_at(feature, guidance):
        return False
    return await app.coordinator.transition(
        feature.id,
        expect=where(feature),
        decision=Decision(
            Stage.IMPLEMENT.state, Stage.IMPLEMENT, feature.round + 1, "review asked for changes"
        ),
        cause="review asked for changes",
        actor=reviewer,
        ctx=ctx,
        new_attempt=True,
    )


async def _say_run_finished(gh: RepoClient, feature: Feature, job: jobs.ReviewSubmitted) -> None:
    """One reply per review to a permitted reviewer of a finished run: what starts work."""
    retry = (
        " `/factory retry` runs the step that failed again."
        if feature.state == FeatureState.FAILED.value
        else ""
    )
    await gh.upsert_marked_comment(
        job.pr_number,
        markers.marker("review-on-finished-run", job.review_id),
        f"@{job.reviewer}: run {feature.id} has finished (**{feature.state}**), so a review no "
        "longer sends it back to implementation. Comment `/factory revise <what to change>` "
        "here for a new implementation round on this pull request, or "
        f"`/factory implement` on #{feature.issue_number} starts a new run.{retry}",
    )


@handles(jobs.ReviewCommentCreated)
async def review_comment_created(
    job: jobs.ReviewCommentCreated, ctx: JobContext, app: JobServices
) -> str:
    """An inline comment on the bot's PR starts nothing by itself: threads reach a revision
    only through the review they belong to, written by its reviewer (see review_feedback).
    Should a comment ever steer a run, it must come after this gate."""
    if await app.runs.for_pull_request(job.repo, job.pr_number) is None:
        return "not ours"
    allowed = await may_steer(
        ctx,
        app,
        actor=job.author,
        actor_type=job.author_type,
        commands=("revise",),
        subject="a review comment",
        what=f"review comment on #{job.pr_number}",
    )
    return "noted" if allowed else "refused"
