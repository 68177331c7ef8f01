"""One check run per stage on the PR's head commit, kept in step with the status comment."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from bot.contracts.lifecycle import STAGE_ORDER, Outcome, Stage, stage_for_state
from agents.stages import FeatureView
from bot.contracts.lifecycle import FeatureState, TaskState
from bot.db.models import Task


class CheckRunPort(Protocol):
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
        """Find the check run by name on ``head_sha`` (create it once), bring it to this state."""


def external_id(feature_id: int, stage: Stage) -> str:
    return f"agent-factory:{feature_id}:{stage.value}"


def parse_external_id(value: str | None) -> tuple[int, Stage] | None:
    if not value or not value.startswith("agent-factory:"):
        return None
    try:
        _, feature_id, stage = value.split(":")
        return int(feature_id), Stage(stage)
    except ValueError:
        return None


_CONCLUSION = {
    Outcome.SUCCEEDED.value: ("success", "done"),
    Outcome.CHANGES_REQUESTED.value: ("failure", "changes requested"),
    Outcome.NEEDS_INPUT.value: ("neutral", "waiting for input"),
    Outcome.FAILED.value: ("failure", "failed"),
}


def desired_check(
    stage: Stage, state: FeatureState, task: Task | None, enabled: Collection[Stage]
) -> tuple[str, str | None, str, str]:
    """(status, conclusion, title, summary) for the stage's check run."""
    if stage not in enabled:
        return "completed", "skipped", "not enabled", f"The {stage.title.lower()} stage is not enabled for this repository."
    if stage_for_state(state) == stage and not state.is_terminal:
        return "in_progress", None, "running", f"{stage.title} is running."
    if task is not None and task.state == TaskState.CANCELLED.value:
        return "completed", "cancelled", "cancelled", "The run was cancelled."
    if task is not None and task.outcome is not None:
        conclusion, title = _CONCLUSION[task.outcome]
        summary = task.result_summary or title
        details = (task.effects or {}).get("details") or ""
        return "completed", conclusion, title, summary + (f"\n\n{details}" if details else "")
    if state is FeatureState.CANCELLED:
        return "completed", "cancelled", "cancelled", "The run was cancelled before this stage."
    if state is FeatureState.FAILED:
        return "completed", "skipped", "not reached", "The run failed before this stage."
    return "queued", None, "waiting", f"{stage.title} has not started yet."


class CheckSync:
    def __init__(self, github: CheckRunPort, *, details_url: str | None = None) -> None:
        self.github = github
        self.details_url = details_url

    async def sync(
        self, feature: FeatureView, state: FeatureState, tasks: Sequence[Task], enabled: Collection[Stage]
    ) -> dict[str, Any]:
        assert feature.head_sha
        latest: dict[Stage, Task] = {}
        for task in sorted(tasks, key=lambda t: (t.round, t.id)):
            latest[Stage(task.kind)] = task
        urls: dict[str, Any] = {}
        for stage in STAGE_ORDER:
            name = stage.check_name
            if name is None:
                continue
            status, conclusion, title, summary = desired_check(stage, state, latest.get(stage), enabled)
            _, url = await self.github.ensure_check_run(
                head_sha=feature.head_sha,
                name=name,
                external_id=external_id(feature.id, stage),
                status=status,
                conclusion=conclusion,
                title=f"{stage.title}: {title}",
                summary=summary[:60000],
            )
            urls[name] = url
        return urls
