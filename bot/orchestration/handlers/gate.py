"""Who may do what a job would do: the permission rule of the command it amounts to.

Commands pass the rule of their own name; events that start, resume or steer work pass the rule
of the command they amount to (see bot/permissions.py). A refused event posts nothing:
answering every drive-by review or re-run would be noise, and a way to make the bot spam. It
is logged with its reason instead; the event's text never is.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.contracts.config import RepoConfig
from bot.contracts.lifecycle import Stage
from bot.orchestration.context import CONFIG_PATH, ConfigInvalid, JobContext
from bot.orchestration.services import JobServices
from bot.permissions import Decision

# The command whose permission rule an event re-running a stage's check must pass
# (`permissions.restrict_to` in .github/factory.yml narrows these as it narrows the commands).
STAGE_COMMANDS: dict[Stage, str] = {
    Stage.PLAN: "plan",
    Stage.IMPLEMENT: "implement",
    Stage.REVIEW: "review",
    Stage.TEST: "test",
    Stage.DEPLOY: "deploy",
}


async def decide(
    ctx: JobContext,
    app: JobServices,
    config: RepoConfig,
    *,
    login: str,
    login_type: str,
    command: str,
    subject: str | None = None,
) -> Decision:
    """May ``login`` do ``command`` (a command name, or the trigger label) here?"""
    return await app.permissions.decide(
        ctx.repository,
        login,
        login_type,
        command,
        config,
        fetch_permission=ctx.permission_of,
        team_membership=ctx.is_team_member,
        subject=subject,
    )


async def may_steer(
    ctx: JobContext,
    app: JobServices,
    *,
    actor: str | None,
    actor_type: str | None,
    commands: Sequence[str],
    subject: str,
    what: str,
) -> bool:
    """Whether ``actor`` may do what this event would do: the rule for each of ``commands``."""
    if not actor:
        ctx.log.info("%s: %s by an unknown sender not acted on", ctx.repository, what)
        return False
    try:
        config = (await ctx.settings()).config
    except ConfigInvalid:
        ctx.log.info(
            "%s: %s by %s not acted on: %s is invalid", ctx.repository, what, actor, CONFIG_PATH
        )
        return False
    for command in commands:
        decision = await decide(
            ctx,
            app,
            config,
            login=actor,
            login_type=actor_type or "User",
            command=command,
            subject=subject,
        )
        if not decision.allowed:
            ctx.log.info(
                "%s: %s by %s not acted on: %s", ctx.repository, what, actor, decision.reason
            )
            return False
    return True
