"""Changes to what the bot is installed on: pushes to a default branch (a changed configuration,
files to index again) and installations gained or lost."""

from __future__ import annotations

from bot.contracts import jobs
from bot.orchestration.context import CONFIG_PATH, ConfigInvalid, JobContext
from bot.orchestration.handlers.issue_config import remembered_settings
from bot.orchestration.registry import handles
from bot.orchestration.services import JobServices
from bot.store.repositories import ListedRepository


@handles(jobs.KnowledgeRefresh)
async def knowledge_refresh(job: jobs.KnowledgeRefresh, ctx: JobContext, app: JobServices) -> str:
    """A push to the default branch: pick up a changed config, then refresh knowledge."""
    if CONFIG_PATH in (*job.added, *job.modified, *job.removed):
        try:
            await remembered_settings(ctx, app)
        except ConfigInvalid:
            # Told on the next label or command; until then the old label still routes here.
            ctx.log.info("%s: pushed an invalid %s", job.repo, CONFIG_PATH)
    if app.knowledge is None:
        return "knowledge off"
    await app.knowledge.refresh(ctx, job)
    return "refreshed"


@handles(jobs.InstallationChanged)
async def installation_changed(
    job: jobs.InstallationChanged, ctx: JobContext, app: JobServices
) -> str:
    """Remember installations and their repositories (ingress reads trigger labels from here)."""
    await app.repositories.installation_changed(
        job.installation_id,
        action=job.action,
        account=job.account,
        added=[ListedRepository(r.id, r.full_name) for r in job.repositories_added],
        removed=[ListedRepository(r.id, r.full_name) for r in job.repositories_removed],
    )
    return job.action or ""
