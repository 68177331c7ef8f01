"""One context per job, as Probot gives each delivery one: the installation the job acts as
(from the delivery, never looked up), the repository's client, its configuration read once,
and the logger.

The client is made on first use and kept for the job, so the repository's metadata is read at
most once; the configuration is read from the default branch only, so a pull request can never
change the bot's behaviour for itself, and at most once per job.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from bot.contracts import markers
from bot.contracts.config import RepoConfig
from bot.contracts.config_load import ConfigResult, load_repo_config
from bot.contracts.config_problems import ConfigError
from bot.contracts.lifecycle import Stage
from bot.github import RepoClient
from bot.github.errors import GitHubNotFound
from bot.github.models import RepoInfo

CONFIG_PATH = ".github/factory.yml"
# Where an organisation keeps its default, in its `.github` repository.
ORG_CONFIG_PATHS = (CONFIG_PATH, "factory.yml")

# The logger of every job handler; the worker binds the delivery and job to its records.
log = logging.getLogger("bot.orchestration.jobs")


class RepoClients(Protocol):
    async def repo_client(self, installation_id: int, owner: str, repo: str) -> RepoClient: ...


class OrgRepositories:
    """Which organisations have no `.github` repository, remembered for a minute.

    Looking for a missing repository is a 404, which GitHub gives no validator, so it would
    cost a request in every job; a `.github` repository created since is seen within a minute.
    """

    def __init__(self, redis: Redis, *, key_prefix: str, ttl_s: int = 60) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s

    def _key(self, installation_id: int, owner: str) -> str:
        return f"{self.key_prefix}:no-dot-github:{installation_id}:{owner.lower()}"

    async def known_missing(self, installation_id: int, owner: str) -> bool:
        return bool(await self.redis.exists(self._key(installation_id, owner)))

    async def missing(self, installation_id: int, owner: str) -> None:
        await self.redis.set(self._key(installation_id, owner), b"1", ex=self.ttl_s)


class ConfigInvalid(Exception):
    """`.github/factory.yml` on the default branch is invalid: nothing runs until it is fixed."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error

    def comment(self) -> str:
        return f"{markers.CONFIG_ERROR}\n{self.error.to_markdown(CONFIG_PATH)}"


@dataclass(frozen=True)
class RepoSettings:
    """The repository's configuration for this job, and the stages it runs."""

    result: ConfigResult
    enabled: frozenset[Stage]

    @property
    def config(self) -> RepoConfig:
        return self.result.config


def enabled_stages(config: RepoConfig, available: Collection[Stage]) -> frozenset[Stage]:
    """Planning and implementation always; review, tests and deploy as configured; only the
    stages this worker has an agent for."""
    optional = {Stage(name) for name in config.enabled_stages()}
    return frozenset(s for s in {Stage.PLAN, Stage.IMPLEMENT} | optional if s in available)


class JobContext:
    """What a job acts with, for one repository as one installation."""

    def __init__(
        self,
        *,
        installation_id: int,
        repository: str,
        clients: RepoClients,
        available: Collection[Stage],
        orgs: OrgRepositories,
    ) -> None:
        self.installation_id = installation_id
        self.repository = repository
        self.log = log
        self._clients = clients
        self._available = frozenset(available)
        self._orgs = orgs
        self._github: RepoClient | None = None
        self._settings: RepoSettings | ConfigInvalid | None = None

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    async def github(self) -> RepoClient:
        if self._github is None:
            name = self.repository.split("/", 1)[1]
            self._github = await self._clients.repo_client(self.installation_id, self.owner, name)
        return self._github

    async def repository_info(self) -> RepoInfo:
        return await (await self.github()).get_repository()

    async def permission_of(self, repository: str, login: str) -> str:
        """``login``'s permission on the job's repository, as GitHub says ("none": no access)."""
        return (await (await self.github()).get_permission(login)).permission

    async def is_team_member(self, org: str, team_slug: str, login: str) -> bool:
        return await (await self.github()).is_team_member(org, team_slug, login)

    async def settings(self) -> RepoSettings:
        """The configuration (read once per job); raises ConfigInvalid, every time, if broken."""
        if self._settings is None:
            try:
                result = load_repo_config(
                    await self._repository_file(), org_default_text=await self._org_default()
                )
                enabled = enabled_stages(result.config, self._available)
                self._settings = RepoSettings(result, enabled)
            except ConfigError as exc:
                self._settings = ConfigInvalid(exc)
        if isinstance(self._settings, ConfigInvalid):
            raise self._settings
        return self._settings

    async def _repository_file(self) -> str | None:
        # No ref: GitHub reads the default branch itself, so its name need not be looked up.
        found = await (await self.github()).get_file(CONFIG_PATH)
        return found.text if found is not None else None

    async def _org_default(self) -> str | None:
        """The organisation's default from its `.github` repository, if it has one."""
        if await self._orgs.known_missing(self.installation_id, self.owner):
            return None
        org = await self._clients.repo_client(self.installation_id, self.owner, ".github")
        try:
            await org.get_repository()
        except GitHubNotFound:
            # No such repository: one request instead of one per path, and none for a while.
            await self._orgs.missing(self.installation_id, self.owner)
            return None
        for path in ORG_CONFIG_PATHS:
            found = await org.get_file(path)
            if found is not None:
                return found.text
        return None
