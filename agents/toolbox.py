"""What stage agents work with besides GitHub: the model, sandboxes, clones and knowledge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agents.budget import Budget
from agents.llm import LLMClient
from agents.sandbox import Sandbox
from agents.workspace import Workspace
from bot.contracts.config import RepoConfig
from bot.contracts.runs import FeatureView

# (installation id, clone url) -> an unopened Workspace; the caller enters it.
WorkspaceFactory = Callable[[int, str], Awaitable[Workspace]]
# (work tree, its git directory, repository key) -> the sandbox commands in that work tree run
# in, with the repository's package cache when a key is given (see repository_key); raises
# SandboxUnavailable when no isolating sandbox works (nothing runs unisolated by default).
SandboxFactory = Callable[[Path, Path | None, str | None], Sandbox]
# (repository, query) -> markdown context for prompts ("" when nothing is known).
KnowledgeLookup = Callable[[str, str], Awaitable[str]]

# The tools an agent that must not change the checkout (planner, reviewer) is given.
READ_ONLY_TOOLS: tuple[str, ...] = ("list_files", "read_file", "search", "find_symbol")
# Gates must not leave bytecode in the checkout: the commit callback would pick it up, and a .pyc
# written in the same second as a same-size edit is taken for current (stale results).
GATE_ENV: Mapping[str, str] = {"PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Toolbox:
    llm: LLMClient
    sandbox_for: SandboxFactory
    workspace: WorkspaceFactory
    knowledge: KnowledgeLookup | None = None

    async def context_for(self, repository: str, query: str) -> str:
        if self.knowledge is None:
            return ""
        return await self.knowledge(repository, query)


def repository_key(feature: FeatureView) -> str:
    """The repository's key, "<installation id>/<owner>/<name>": the sandboxes of one repository
    share its package cache (and run as one uid); no other repository's sandbox sees it."""
    return f"{feature.installation_id}/{feature.repository}"


def feature_budget(config: RepoConfig, feature: FeatureView) -> Budget:
    """The run's remaining budget: the repository's limits less what earlier steps spent."""
    limits = config.budgets
    return Budget(
        max_usd=max(0.0, limits.max_usd - feature.cost_usd),
        max_tokens=max(0, limits.max_tokens - feature.tokens),
        max_turns=limits.max_turns,
        max_seconds=limits.max_minutes * 60,
    )
