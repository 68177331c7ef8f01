"""Per-repository context for a step or a command: GitHub client, config, enabled stages."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from agents.checks import CheckSync
from agents.coordinator import RunContext
from bot.contracts.lifecycle import Stage
from bot.github.errors import GitHubNotFound
from bot.github.models import RepoInfo
from bot.contracts.config_load import ConfigResult, load_repo_config
from bot.contracts.config_problems import ConfigError

log = logging.getLogger(__name__)

CONFIG_PATH = ".github/factory.yml"
CONFIG_ERROR_MARKER = "<!-- agent-factory:config-error -->"
# Added next to the error marker once the problem is gone, so the comment is rewritten only once.
CONFIG_FIXED_MARKER = "<!-- agent-factory:config-fixed -->"


@dataclass(frozen=True)
class LoadedConfig:
    info: RepoInfo
    result: ConfigResult


class RepoClientFactory(Protocol):
    async def repo_client(self, installation_id: int, owner: str, repo: str) -> Any: ...


class ConfigInvalid(Exception):
    """`.github/factory.yml` on the default branch is invalid: nothing runs until it is fixed."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error

    def comment(self) -> str:
        return f"{CONFIG_ERROR_MARKER}\n{self.error.to_markdown(CONFIG_PATH)}"


def config_fixed_comment(problem: str) -> str | None:
    """The config-error comment rewritten to say the config is valid now, the old text kept
    collapsed; None when it says so already.

    The error marker stays, so a later invalid config overwrites this same comment again.
    """
    if CONFIG_FIXED_MARKER in problem:
        return None
    old = problem.replace(CONFIG_ERROR_MARKER, "").strip()
    return "\n".join(
        [
            CONFIG_ERROR_MARKER,
            CONFIG_FIXED_MARKER,
            "### ✅ Agent Factory configuration fixed",
            "",
            f"`{CONFIG_PATH}` on the default branch is valid now, so Agent Factory acts on "
            "labels and `/factory` commands here again.",
            "",
            "<details>",
            "<summary>The problem reported earlier</summary>",
            "",
            old,
            "",
            "</details>",
        ]
    )


@dataclass
class Runtime:
    github: RepoClientFactory
    tools: Any
    available: Collection[Stage]
    server_url: str = "https://github.com"

    async def repo(self, installation_id: int, full_name: str) -> Any:
        owner, name = full_name.split("/", 1)
        return await self.github.repo_client(installation_id, owner, name)

    async def load_config(self, installation_id: int, gh: Any) -> ConfigResult:
        """Read the config from the default branch only, so a PR cannot change it for itself."""
        return (await self.load_repo_and_config(installation_id, gh)).result

    async def load_repo_and_config(self, installation_id: int, gh: Any) -> LoadedConfig:
        """The repository's facts with its config: one read of the repository for both."""
        info = await gh.get_repository()
        repo_file = await gh.get_file(CONFIG_PATH, ref=info.default_branch)
        org_text = await self._org_default(installation_id, gh.owner)
        try:
            result = load_repo_config(
                repo_file.text if repo_file else None, org_default_text=org_text
            )
        except ConfigError as exc:
            raise ConfigInvalid(exc) from None
        return LoadedConfig(info, result)

    async def _org_default(self, installation_id: int, owner: str) -> str | None:
        try:
            org_repo = await self.github.repo_client(installation_id, owner, ".github")
            for path in (CONFIG_PATH, "factory.yml"):
                found = await org_repo.get_file(path)
                if found is not None:
                    return str(found.text)
        except GitHubNotFound:
            return None
        return None

    def enabled(self, config: Any) -> frozenset[Stage]:
        optional = set(config.enabled_stages()) if config is not None else set()
        stages = {Stage.PLAN, Stage.IMPLEMENT} | {
            Stage(s) for s in optional if s in Stage._value2member_map_
        }
        return frozenset(s for s in stages if s in self.available)

    async def open_repo(self, installation_id: int, full_name: str) -> RunContext:
        gh = await self.repo(installation_id, full_name)
        result = await self.load_config(installation_id, gh)
        return RunContext(
            github=gh,
            config=result.config,
            tools=self.tools,
            enabled=self.enabled(result.config),
            extras={"checks": CheckSync(CheckRunAdapter(gh)), "config_result": result},
        )


class CheckRunAdapter:
    """Find-or-create a check run by (name, head sha), then bring it to the wanted state."""

    def __init__(self, gh: Any) -> None:
        self.gh = gh

    async def ensure_check_run(
        self,
        *,
        head_sha: str,
        name: str,
        external_id: str,
        status: str,
        conclusion: str | None,
        title: str,
        summary: str,
        text: str | None = None,
    ) -> tuple[int, str]:
        from bot.github.models import CheckOutput

        output = CheckOutput(title=title, summary=summary, text=text)
        existing = await self.gh.find_check_run(name, head_sha)
        if existing is None:
            run = await self.gh.create_check_run(
                name,
                head_sha,
                external_id=external_id,
                status=status,
                conclusion=conclusion,
                output=output,
            )
            return run.id, run.html_url or ""
        if existing.status == status and existing.conclusion == conclusion:
            return existing.id, existing.html_url or ""
        run = await self.gh.update_check_run(
            existing.id, status=status, conclusion=conclusion, output=output
        )
        return run.id, run.html_url or ""
