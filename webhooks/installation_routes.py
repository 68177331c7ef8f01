"""Routes for the App's installations: which accounts and repositories it is installed on."""

from __future__ import annotations

from collections.abc import Iterable

from bot.contracts import jobs
from webhooks.context import EventContext, RouteEnv
from webhooks.payloads import (
    InstallationChanged,
    InstallationRepositoriesChanged,
    RepositorySummary,
)
from webhooks.router import RouteResult, on


@on(
    "installation.created",
    "installation.deleted",
    "installation.suspend",
    "installation.unsuspend",
    "installation.new_permissions_accepted",
    payload=InstallationChanged,
)
async def installation_changed(
    ctx: EventContext[InstallationChanged], env: RouteEnv
) -> RouteResult:
    repositories = _summaries(ctx.payload.repositories or [])
    return [
        _installation_job(
            ctx,
            added=repositories if ctx.action == "created" else [],
            removed=repositories if ctx.action == "deleted" else [],
        )
    ]


@on(
    "installation_repositories.added",
    "installation_repositories.removed",
    payload=InstallationRepositoriesChanged,
)
async def installation_repositories_changed(
    ctx: EventContext[InstallationRepositoriesChanged], env: RouteEnv
) -> RouteResult:
    return [
        _installation_job(
            ctx,
            added=_summaries(ctx.payload.repositories_added),
            removed=_summaries(ctx.payload.repositories_removed),
        )
    ]


def _installation_job(
    ctx: EventContext[InstallationChanged] | EventContext[InstallationRepositoriesChanged],
    *,
    added: list[jobs.RepositoryRef],
    removed: list[jobs.RepositoryRef],
) -> jobs.InstallationChanged:
    account = ctx.payload.installation.account
    return jobs.InstallationChanged(
        installation_id=ctx.payload.installation.id,
        action=ctx.action,
        account=account.login if account is not None else None,
        repositories_added=added,
        repositories_removed=removed,
        delivery_id=ctx.delivery_id,
    )


def _summaries(repositories: Iterable[RepositorySummary]) -> list[jobs.RepositoryRef]:
    return [jobs.RepositoryRef(id=repo.id, full_name=repo.full_name) for repo in repositories]
