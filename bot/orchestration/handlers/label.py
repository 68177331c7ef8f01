"""The trigger label on an issue starts a run for it, if the person who added it may."""

from __future__ import annotations

from bot.contracts import jobs, markers
from bot.orchestration.context import ConfigInvalid, JobContext
from bot.orchestration.handlers.gate import decide
from bot.orchestration.handlers.issue_config import settings_for_issue
from bot.orchestration.registry import handles
from bot.orchestration.services import JobServices
from bot.permissions import LABEL


@handles(jobs.FeatureStart)
async def feature_start(job: jobs.FeatureStart, ctx: JobContext, app: JobServices) -> str:
    gh = await ctx.github()
    await gh.react_to_issue(job.issue_number, "eyes")
    try:
        settings = await settings_for_issue(ctx, app, job.issue_number)
    except ConfigInvalid:
        return "config-invalid"
    sender = job.sender or "ghost"
    decision = await decide(
        ctx, app, settings.config, login=sender, login_type=job.sender_type or "User", command=LABEL
    )
    if not decision.allowed:
        if decision.notify:
            await gh.upsert_marked_comment(
                job.issue_number,
                markers.marker("refused", job.delivery_id),
                f"@{sender}: {decision.reason}",
            )
        return "refused"
    return await start_run(
        ctx,
        app,
        issue_number=job.issue_number,
        sender=sender,
        delivery_id=job.delivery_id,
        cause="label",
    )


async def start_run(
    ctx: JobContext,
    app: JobServices,
    *,
    issue_number: int,
    sender: str,
    delivery_id: str,
    cause: str,
    guidance: str | None = None,
) -> str:
    """Start the issue's run; if one is active already, say so on the issue instead."""
    started = await app.coordinator.start(
        ctx,
        issue_number=issue_number,
        sender=sender,
        delivery_id=delivery_id,
        guidance=guidance,
        cause=cause,
    )
    feature = started.feature
    if not started.mine:
        gh = await ctx.github()
        await gh.upsert_marked_comment(
            issue_number,
            markers.marker("already-running", delivery_id),
            f"@{sender}: a run for this issue is already in progress "
            f"(state: **{feature.state}**); see the status comment. "
            "Comment `/factory cancel` to stop it first.",
        )
        return "already-running"
    return f"feature {feature.id}"
