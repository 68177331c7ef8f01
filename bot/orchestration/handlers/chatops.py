"""`/factory` commands in a comment: each line checked, run and answered in order.

Every reply is posted with a hidden marker derived from the comment and the line it answers, so
a job that runs twice (crash, redelivery) edits its reply instead of posting a second one. What
each command does is in :mod:`bot.orchestration.handlers.commands`.
"""

from __future__ import annotations

from bot.contracts import jobs, markers
from bot.contracts.commands import (
    CommandError,
    ParsedCommand,
    format_reply,
    parse_commands,
    stage_unavailable_message,
)
from bot.github.errors import scrub
from bot.orchestration.context import ConfigInvalid, JobContext, RepoSettings
from bot.orchestration.handlers.commands import COMMANDS, Request
from bot.orchestration.handlers.gate import decide
from bot.orchestration.handlers.issue_config import settings_for_issue
from bot.orchestration.registry import handles
from bot.orchestration.services import JobServices
from bot.permissions import is_bot


@handles(jobs.CommandReceived)
async def command_received(job: jobs.CommandReceived, ctx: JobContext, app: JobServices) -> str:
    commands = parse_commands(job.body or "")
    if not commands:
        return "no command"
    sender, sender_type = job.sender or "ghost", job.sender_type or "User"
    if is_bot(sender, sender_type):
        # Not even a reaction: bots answering bots is how loops start.
        return "bot"
    gh = await ctx.github()
    react = (
        gh.react_to_review_comment if job.comment_kind == "review" else gh.react_to_issue_comment
    )
    await react(job.comment_id, "eyes")
    try:
        settings = await settings_for_issue(ctx, app, job.issue_number)
    except ConfigInvalid:
        await react(job.comment_id, "confused")
        return "config-invalid"
    available = {stage.value for stage in settings.enabled}
    ok = True
    for index, command in enumerate(commands):
        if isinstance(command, CommandError):
            ok = False
            message = command.reply_text(available)
        else:
            answer = await _answer(job, ctx, app, settings, command, index)
            if answer is None:
                return "bot"
            ok, message = ok and answer[0], answer[1]
        marker = markers.command_reply(job.comment_id, index)
        await gh.upsert_marked_comment(
            job.issue_number,
            marker,
            f"{marker}\n{format_reply(sender, command.raw_line, message)}",
        )
    await react(job.comment_id, "rocket" if ok else "confused")
    return "ok" if ok else "failed"


async def _answer(
    job: jobs.CommandReceived,
    ctx: JobContext,
    app: JobServices,
    settings: RepoSettings,
    command: ParsedCommand,
    index: int,
) -> tuple[bool, str] | None:
    """(whether it worked, the reply) for one command; None: say nothing at all (a bot)."""
    sender = job.sender or "ghost"
    decision = await decide(
        ctx,
        app,
        settings.config,
        login=sender,
        login_type=job.sender_type or "User",
        command=command.name,
    )
    if not decision.allowed:
        return None if not decision.notify else (False, decision.reason)
    available = {stage.value for stage in settings.enabled}
    if not command.spec.available(available):
        return False, stage_unavailable_message(command)
    request = Request(
        job=job,
        ctx=ctx,
        app=app,
        settings=settings,
        args=command.args.strip(),
        sender=sender,
        delivery_id=f"{job.delivery_id}:{index}",
    )
    try:
        return True, await COMMANDS[command.name](request)
    except Exception as exc:  # the user must hear about it; the log has the rest
        ctx.log.exception("command %s failed", command.name)
        return False, f"that failed: {scrub(f'{type(exc).__name__}: {exc}')}"
