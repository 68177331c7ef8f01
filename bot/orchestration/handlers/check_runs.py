"""Buttons on GitHub's checks page: "Re-run" on a stage's check runs that stage again, "Re-run
all checks" retries a failed run; workflow runs on the bot's branches are followed."""

from __future__ import annotations

from bot.contracts import jobs, markers
from bot.contracts.lifecycle import FeatureState, stage_for_check
from bot.db import Feature
from bot.orchestration.context import JobContext
from bot.orchestration.handlers.gate import STAGE_COMMANDS, may_steer
from bot.orchestration.registry import handles
from bot.orchestration.services import JobServices


async def _current_on_head(app: JobServices, feature: Feature, head_sha: str | None) -> bool:
    """Whether a check on ``head_sha`` is about the run as it stands: the run's own head,
    and the run is still the one its pull request belongs to. Re-running a check of an
    older head, or of a run a newer one replaced, must not bring that run back."""
    if head_sha is None or head_sha != feature.head_sha:
        return False
    if feature.pr_number is None:
        return True
    owner = await app.runs.for_pull_request(feature.repository, feature.pr_number)
    return owner is not None and owner.id == feature.id


@handles(jobs.CheckRunRerequested)
async def check_rerequested(
    job: jobs.CheckRunRerequested, ctx: JobContext, app: JobServices
) -> str:
    """Someone pressed "Re-run" (or an action button) on one of the run's stage checks:
    that stage runs again if they may run its command and the check is on the run's head."""
    parsed = markers.parse_check_external_id(job.external_id)
    stage = parsed[1] if parsed else stage_for_check(job.check_name)
    feature_id = parsed[0] if parsed else None
    if stage is None or feature_id is None:
        return "not ours"
    feature = await app.runs.get(feature_id)
    # The id comes with the event: a check here may only name this repository's runs.
    if (
        feature is None
        or feature.repository.casefold() != job.repo.casefold()
        or feature.installation_id != job.installation_id
    ):
        return "not ours"
    what = f"check {job.check_name} re-requested"
    if not await _current_on_head(app, feature, job.head_sha):
        ctx.log.info(
            "%s: %s by %s not acted on: the check is on %s, not on run %s's current head",
            job.repo,
            what,
            job.sender,
            (job.head_sha or "?")[:7],
            feature.id,
        )
        return "old head"
    allowed = await may_steer(
        ctx,
        app,
        actor=job.sender,
        actor_type=job.sender_type,
        commands=(STAGE_COMMANDS[stage],),
        subject=f"re-running the {stage.title.lower()} check",
        what=what,
    )
    if not allowed or job.sender is None:
        return "refused"
    if stage not in (await ctx.settings()).enabled:
        return "stage not enabled"
    started = await app.coordinator.rerun(feature_id, stage, actor=job.sender, cause=what, ctx=ctx)
    return "rerun" if started else "busy"


@handles(jobs.CheckSuiteRerequested)
async def check_suite_rerequested(
    job: jobs.CheckSuiteRerequested, ctx: JobContext, app: JobServices
) -> str:
    """ "Re-run all checks" on the run's head: what `/factory retry` does, on its terms
    (a failed or cancelled run; someone who may retry, and run the stage that failed)."""
    feature = await app.runs.on_head(job.repo, job.installation_id, job.head_sha)
    if feature is None:
        return "not ours"
    what = "check suite re-requested"
    if not await _current_on_head(app, feature, job.head_sha):
        ctx.log.info(
            "%s: %s by %s not acted on: run %s moved on", job.repo, what, job.sender, feature.id
        )
        return "old head"
    stage = await app.runs.failed_stage(feature.id)
    allowed = await may_steer(
        ctx,
        app,
        actor=job.sender,
        actor_type=job.sender_type,
        commands=("retry", STAGE_COMMANDS[stage]),
        subject="re-running the checks",
        what=what,
    )
    if not allowed or job.sender is None:
        return "refused"
    if feature.state not in (FeatureState.FAILED.value, FeatureState.CANCELLED.value):
        ctx.log.info(
            "%s: %s by %s not acted on: run %s is %s; only a failed or cancelled run is retried",
            job.repo,
            what,
            job.sender,
            feature.id,
            feature.state,
        )
        return "not failed"
    started = await app.coordinator.rerun(feature.id, stage, actor=job.sender, cause=what, ctx=ctx)
    return "rerun" if started else "busy"


@handles(jobs.WorkflowRunCompleted)
async def workflow_run_completed(
    job: jobs.WorkflowRunCompleted, ctx: JobContext, app: JobServices
) -> str:
    """A workflow run on the bot's branches (or dispatched by the bot) finished.

    The deploy stage follows the runs it dispatched itself (it polls them), so today the
    webhook starts nothing; routing it keeps the App's event list honest. Anything it is
    ever made to start (a fix round after a failed CI run, say) belongs after this gate:
    the bot's own runs pass; anyone else's need the permission `/factory revise` needs.
    """
    gh = await ctx.github()
    if job.sender != gh.bot_login:
        allowed = await may_steer(
            ctx,
            app,
            actor=job.sender,
            actor_type=job.sender_type,
            commands=("revise",),
            subject="a workflow run on the bot's branch",
            what=f"workflow run {job.run_id} ({job.conclusion})",
        )
        if not allowed:
            return "refused"
    return "followed by the deploy stage"
