"""What stage agents work with besides GitHub: the model, sandboxes, clones and knowledge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.budget import Budget
from agents.llm import LLMClient
from agents.sandbox import Sandbox
from agents.stages import FeatureView
from agents.workspace import Workspace

# (installation id, clone url) -> an unopened Workspace; the caller enters it.
WorkspaceFactory = Callable[[int, str], Awaitable[Workspace]]
# (work tree, its git directory) -> the sandbox commands in that work tree run in; raises
# SandboxUnavailable when no isolating sandbox works (nothing runs unisolated by default).
SandboxFactory = Callable[[Path, Path | None], Sandbox]
# (repository, query) -> markdown context for prompts ("" when nothing is known).
KnowledgeLookup = Callable[[str, str], Awaitable[str]]


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


def feature_budget(config: Any, feature: FeatureView) -> Budget:
    """The run's remaining budget: the repository's limits less what earlier steps spent."""
    limits = config.budgets
    return Budget(
        max_usd=max(0.0, limits.max_usd - feature.cost_usd),
        max_tokens=max(0, limits.max_tokens - feature.tokens),
        max_turns=limits.max_turns,
        max_seconds=limits.max_minutes * 60,
    )


_LIMIT_WORDS = {
    "turns": "the turn limit",
    "dollars": "the dollar limit",
    "tokens": "the token limit",
    "wall_time": "the wall-time limit",
}


def describe_stop(stop_reason: str, detail: str = "") -> str:
    """How an agent's tool loop ended, as words for the status comment and the PR body."""
    if stop_reason == "finished":
        return "finished"
    if stop_reason.startswith("budget:"):
        limit = stop_reason.split(":", 1)[1]
        return f"stopped at {_LIMIT_WORDS.get(limit, limit)} ({stop_reason})"
    if stop_reason.startswith("error:"):
        return f"stopped: {stop_reason.removeprefix('error:')}"
    return f"stopped ({stop_reason}): {detail}" if detail else f"stopped ({stop_reason})"
