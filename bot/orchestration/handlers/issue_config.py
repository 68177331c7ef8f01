"""The configuration as a job started from an issue (a label, a command) reads it: a broken
`.github/factory.yml` is said on the issue once, and said to be fixed once it is.

Every read also keeps ingress's copy of the trigger label in step with the default branch's
config: ingress routes labels without calling GitHub, so it reads the label from the store.
"""

from __future__ import annotations

from bot.contracts import markers
from bot.orchestration.context import CONFIG_PATH, ConfigInvalid, JobContext, RepoSettings
from bot.orchestration.services import JobServices
from bot.store.repositories import RepositoryFacts


async def settings_for_issue(ctx: JobContext, app: JobServices, issue_number: int) -> RepoSettings:
    """The job's configuration; raises ConfigInvalid once it has said so on the issue."""
    try:
        settings = await remembered_settings(ctx, app)
    except ConfigInvalid as exc:
        gh = await ctx.github()
        comment = await gh.upsert_marked_comment(issue_number, markers.CONFIG_ERROR, exc.comment())
        await app.runs.remember_config_error(ctx.repository, issue_number, comment.id)
        raise
    await _mark_fixed(ctx, app, issue_number)
    return settings


async def remembered_settings(ctx: JobContext, app: JobServices) -> RepoSettings:
    """The job's configuration, its trigger label noted for ingress when ingress would route on
    another one (the repository's last noted label, or the server's default)."""
    settings = await ctx.settings()
    label = settings.config.trigger_label
    routed = await app.repositories.trigger_label(ctx.repository) or app.default_trigger_label
    if routed != label:
        info = await ctx.repository_info()
        facts = RepositoryFacts(info.id, info.full_name, info.default_branch)
        await app.repositories.remember(ctx.installation_id, facts, trigger_label=label)
    return settings


async def _mark_fixed(ctx: JobContext, app: JobServices, issue_number: int) -> None:
    """Say so on this issue's config-error comment, if it has one, now that the config loads.

    Edited rather than deleted, so the issue still shows what was wrong.
    """
    if await app.runs.config_error_comment(ctx.repository, issue_number) is None:
        return  # none posted, or it says so already
    gh = await ctx.github()
    problem = await gh.find_marked_comment(issue_number, markers.CONFIG_ERROR)
    if problem is None:
        return
    fixed = config_fixed_comment(problem.body)
    if fixed is not None:
        await gh.edit_comment(problem.id, fixed)
    await app.runs.remember_config_error(ctx.repository, issue_number, problem.id, fixed=True)


def config_fixed_comment(problem: str) -> str | None:
    """The config-error comment rewritten to say the config is valid now, the old text kept
    collapsed; None when it says so already.

    The error marker stays, so a later invalid config overwrites this same comment again.
    """
    if markers.CONFIG_FIXED in problem:
        return None
    old = problem.replace(markers.CONFIG_ERROR, "").strip()
    return "\n".join(
        [
            markers.CONFIG_ERROR,
            markers.CONFIG_FIXED,
            "### ✅ Agent Factory configuration fixed",
            "",
            (
                f"`{CONFIG_PATH}` on the default branch is valid now, so Agent Factory acts on "
                "labels and `/factory` commands here again."
            ),
            "",
            "<details>",
            "<summary>The problem reported earlier</summary>",
            "",
            old,
            "",
            "</details>",
        ]
    )
