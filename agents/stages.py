"""What a stage agent is, what it gets, and what it gives back to the coordinator.

Agents never call each other: each returns a :class:`StepResult` and the coordinator decides
what happens next. Everything an agent may touch arrives in its :class:`StepContext`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.toolbox import Toolbox
from bot.contracts.config import RepoConfig
from bot.contracts.lifecycle import Outcome, Stage
from bot.contracts.runs import FeatureView
from bot.github import RepoClient

__all__ = ["FeatureView", "Recorder", "StageAgent", "StepContext", "StepResult"]


@dataclass
class StepResult:
    outcome: Outcome
    summary: str
    # Markdown for the stage's check run and the status comment's failure section.
    details: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    plan_comment_id: int | None = None
    trajectory: list[Any] | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)


class Recorder(Protocol):
    """Store facts about the run at once; a fact left out (None) stays as it is."""

    async def __call__(
        self,
        *,
        branch: str | None = None,
        pr_number: int | None = None,
        head_sha: str | None = None,
        plan: Mapping[str, Any] | None = None,
        plan_comment_id: int | None = None,
        guidance: str | None = None,
    ) -> None: ...


async def _no_checkpoint(trajectory: list[dict[str, Any]]) -> None:
    return None


@dataclass
class StepContext:
    feature: FeatureView
    stage: Stage
    attempt: int
    # The repository's client for this job: it reads the repository's metadata once.
    github: RepoClient
    # `.github/factory.yml` from the default branch, read once for the job.
    config: RepoConfig
    tools: Toolbox
    record: Recorder
    progress: Callable[[str], Awaitable[None]]
    # Hand an agent loop's trajectory here after every turn (as `on_step`): it is stored with the
    # task and its spending counted at once, so a worker that dies mid-step loses neither.
    checkpoint: Callable[[list[dict[str, Any]]], Awaitable[None]] = _no_checkpoint
    # The last checkpoint of an earlier try of this same step that never finished (its worker
    # died), for an agent that can continue from it; None on a step's first try.
    resume: list[dict[str, Any]] | None = None


class StageAgent(Protocol):
    stage: Stage

    async def run(self, ctx: StepContext) -> StepResult: ...
