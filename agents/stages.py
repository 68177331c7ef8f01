"""What a stage agent is, what it gets, and what it gives back to the coordinator.

Agents never call each other: each returns a :class:`StepResult` and the coordinator decides
what happens next. Everything an agent may touch arrives in its :class:`StepContext`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.contracts.lifecycle import Outcome, Stage


@dataclass(frozen=True)
class FeatureView:
    """A read-only snapshot of the feature a step works on."""

    id: int
    installation_id: int
    repository: str
    issue_number: int
    round: int
    branch: str | None
    pr_number: int | None
    head_sha: str | None
    plan: Mapping[str, Any] | None
    triggered_by: str | None
    guidance: str | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    plan_comment_id: int | None = None

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.repository.split("/", 1)[1]


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
    async def __call__(self, **fields: Any) -> None:
        """Persist facts about the feature at once (branch, pr_number, head_sha, plan, ...)."""


async def _no_checkpoint(trajectory: list[dict[str, Any]]) -> None:
    return None


@dataclass
class StepContext:
    feature: FeatureView
    stage: Stage
    attempt: int
    # The objects below are typed loosely here to keep this module free of heavy imports;
    # each stage module narrows them.
    github: Any  # bot.github RepoClient for this repository
    config: Any  # bot.repo_config.RepoConfig
    tools: Any  # agents.toolbox.Toolbox: llm, sandbox, workspaces, knowledge
    record: Callable[..., Awaitable[None]]
    progress: Callable[[str], Awaitable[None]]
    budget: Any = None
    # Hand an agent loop's trajectory here after every turn (as `on_step`): it is stored with the
    # task and its spending counted at once, so a worker that dies mid-step loses neither.
    checkpoint: Callable[[list[dict[str, Any]]], Awaitable[None]] = _no_checkpoint
    # The last checkpoint of an earlier try of this same step that never finished (its worker
    # died), for an agent that can continue from it; None on a step's first try.
    resume: list[dict[str, Any]] | None = None


class StageAgent(Protocol):
    stage: Stage

    async def run(self, ctx: StepContext) -> StepResult: ...
